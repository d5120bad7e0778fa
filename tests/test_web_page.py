"""The web chat page in headless Chromium at phone width, against a real server with the echoing stand-in."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from browsers import headless_chromium
from chatwright.server.app import create_app
from chatwright.store.repository import ConversationStore
from database_urls import sqlite_url
from echo_assistant import ECHO_NAME, REFUND_PASSAGE, EchoAssistant, echo_text
from servers import uvicorn_thread

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).parent / "artifacts"
MAX_CHARS = 200


@dataclass
class Page:
    driver: Chrome
    url: str

    def open_fresh(self) -> None:
        self.driver.get(self.url)
        self.driver.execute_script("localStorage.clear()")
        self.driver.get(self.url)
        self.wait_until(lambda: self.by_id("assistant-name").text == ECHO_NAME)

    def wait_until(self, condition: Any, timeout: float = 15) -> Any:
        waiting = WebDriverWait(self.driver, timeout, poll_frequency=0.02,
                                ignored_exceptions=[StaleElementReferenceException])
        return waiting.until(lambda _driver: condition())

    def by_id(self, test_id: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, f'[data-testid="{test_id}"]')

    def all_by_id(self, test_id: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, f'[data-testid="{test_id}"]')

    def ask(self, text: str) -> None:
        self.by_id("message-input").send_keys(text, Keys.ENTER)

    def finished_replies(self) -> list[WebElement]:
        """Assistant messages whose stored turn has arrived (they carry its id)."""
        return self.driver.find_elements(By.CSS_SELECTOR, '[data-testid="assistant-message"][data-turn-id]')

    def conversation_id(self) -> str | None:
        conversation_id: str | None = self.driver.execute_script(
            "return localStorage.getItem('chatwright.conversation')")
        return conversation_id

    def stored_turns(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/conversations/{self.conversation_id()}")
        turns: list[dict[str, Any]] = response.json()["turns"]
        return turns


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    store = ConversationStore(sqlite_url(tmp_path_factory.mktemp("db")))
    app = create_app(EchoAssistant(token_delay_s=0.08), store, max_message_chars=MAX_CHARS)
    with uvicorn_thread(app) as url, headless_chromium(375, 800) as driver:
        yield Page(driver, url)
    store.close()


def test_a_reply_streams_in_with_its_sources_and_takes_feedback(page: Page) -> None:
    page.open_fresh()
    question = "How long do refunds take?"
    page.by_id("message-input").send_keys(question)
    page.by_id("send").click()

    bubble = page.wait_until(lambda: page.all_by_id("assistant-text") and page.by_id("assistant-text"))
    partial = page.wait_until(lambda: bubble.get_attribute("aria-busy") == "true" and bubble.text)
    page.wait_until(page.finished_replies)
    final = bubble.text
    assert final == echo_text(question, 0)
    assert final.startswith(partial) and len(partial) < len(final), "the reply should appear piece by piece"
    assert [m.text for m in page.all_by_id("user-text")] == [question]
    assert page.by_id("source-link").text.startswith("[1] Refund policy")

    page.by_id("citation-link").click()
    page.wait_until(lambda: page.by_id("citation-dialog").get_attribute("open") is not None)
    assert page.by_id("citation-title").text == f"[1] {REFUND_PASSAGE.title}"
    assert page.by_id("citation-path").text == "Policies › Refunds"
    assert page.by_id("citation-text").text == REFUND_PASSAGE.text
    ARTIFACTS.mkdir(exist_ok=True)
    page.driver.save_screenshot(str(ARTIFACTS / "web_chat_citation.png"))
    page.by_id("citation-close").click()
    page.wait_until(lambda: page.by_id("citation-dialog").get_attribute("open") is None)

    page.by_id("feedback-up").click()
    page.wait_until(lambda: page.all_by_id("feedback-thanks"))
    assert page.by_id("feedback-thanks").text == "Thanks for your feedback"
    assert page.by_id("feedback-up").get_attribute("aria-pressed") == "true"
    page.by_id("feedback-comment").send_keys("Clear and quick")
    page.by_id("feedback-comment-send").click()
    page.wait_until(lambda: page.by_id("feedback-thanks").text == "Thanks for your feedback and comment")
    assert [(f["rating"], f["comment"]) for f in page.stored_turns()[1]["feedback"]] == [
        ("up", None), ("up", "Clear and quick")]

    layout = page.driver.execute_script(
        "const send = document.getElementById('send').getBoundingClientRect();"
        "return {width: window.innerWidth,"
        " overflow: document.documentElement.scrollWidth - window.innerWidth,"
        " sendVisible: send.right <= window.innerWidth && send.bottom <= window.innerHeight,"
        " resources: performance.getEntriesByType('resource').map((entry) => entry.name)};")
    assert layout["width"] == 375
    assert layout["overflow"] <= 0, "no sideways scrolling at phone width"
    assert layout["sendVisible"]
    assert layout["resources"] and all(name.startswith(page.url) for name in layout["resources"])
    page.driver.save_screenshot(str(ARTIFACTS / "web_chat.png"))


def test_a_reload_restores_the_conversation_and_a_new_one_starts_empty(page: Page) -> None:
    page.open_fresh()
    page.ask("Do you have a branch in Lyon?")
    page.wait_until(page.finished_replies)
    page.by_id("feedback-down").click()
    page.wait_until(lambda: page.all_by_id("feedback-thanks"))
    first_conversation = page.conversation_id()

    page.driver.refresh()
    page.wait_until(page.finished_replies)
    assert [m.text for m in page.all_by_id("user-text")] == ["Do you have a branch in Lyon?"]
    assert page.by_id("assistant-text").text == echo_text("Do you have a branch in Lyon?", 0)
    assert page.by_id("feedback-down").get_attribute("aria-pressed") == "true"
    assert page.conversation_id() == first_conversation

    page.by_id("new-conversation").click()
    assert page.all_by_id("user-message") == [] and page.all_by_id("assistant-message") == []
    assert page.by_id("empty-state").is_displayed()
    assert page.conversation_id() is None
    page.ask("Hello again")
    page.wait_until(page.finished_replies)
    assert page.by_id("assistant-text").text == echo_text("Hello again", 0)
    assert page.conversation_id() not in {None, first_conversation}


def test_a_too_long_message_shows_the_servers_reason_inline(page: Page) -> None:
    page.open_fresh()
    page.ask("x" * (MAX_CHARS + 1))
    error = page.by_id("composer-error")
    page.wait_until(error.is_displayed)
    assert error.text == f"The message is too long ({MAX_CHARS + 1} characters); the limit is {MAX_CHARS}."
    assert page.all_by_id("user-message") == []
    assert len(page.by_id("message-input").get_attribute("value") or "") == MAX_CHARS + 1, "the text is kept"
