"""The web chat page in headless Chromium against `chatwright serve` with the real models and the bank demo."""

from __future__ import annotations

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
from servers import RestartableServer

pytestmark = pytest.mark.browser

VISA_QUESTION = "What is the fee for topping up with a Visa card?"
REPLY_TIMEOUT_S = 240  # a 0.5B model on two busy cores


def by_id(driver: Chrome, test_id: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'[data-testid="{test_id}"]')


def all_by_id(driver: Chrome, test_id: str) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, f'[data-testid="{test_id}"]')


def wait_until(driver: Chrome, condition: Any, timeout: float = 15) -> Any:
    waiting = WebDriverWait(driver, timeout, poll_frequency=0.05, ignored_exceptions=[StaleElementReferenceException])
    return waiting.until(lambda _driver: condition())


def normalised(text: str) -> str:
    return " ".join(text.split())


def test_the_real_assistant_answers_on_the_page_with_a_citation_and_takes_feedback(
        bank_server: RestartableServer, bank_project: Path, artifacts: Path) -> None:
    with headless_chromium(375, 800) as driver:
        driver.get(bank_server.url)
        driver.execute_script("localStorage.clear()")
        driver.get(bank_server.url)
        wait_until(driver, lambda: by_id(driver, "assistant-name").text == "Northwind Bank Assistant")

        by_id(driver, "message-input").send_keys(VISA_QUESTION, Keys.ENTER)
        bubble = wait_until(driver, lambda: all_by_id(driver, "assistant-text") and by_id(driver, "assistant-text"))
        partial = wait_until(driver, lambda: bubble.get_attribute("aria-busy") == "true" and bubble.text,
                             timeout=REPLY_TIMEOUT_S)
        reply = wait_until(driver, lambda: driver.find_elements(
            By.CSS_SELECTOR, '[data-testid="assistant-message"][data-turn-id]'), timeout=REPLY_TIMEOUT_S)[0]
        final = bubble.text
        assert len(partial) < len(final), "the reply appears piece by piece"
        assert "0.3%" in final, final

        conversation_id = driver.execute_script("return localStorage.getItem('chatwright.conversation')")
        stored = httpx.get(f"{bank_server.url}/api/conversations/{conversation_id}").json()["turns"]
        assert [turn["role"] for turn in stored] == ["user", "assistant"]
        assert stored[1]["id"] == reply.get_attribute("data-turn-id")
        assert normalised(final) == normalised(stored[1]["text"])
        citations = {citation["index"]: citation for citation in stored[1]["citations"]}
        assert citations and len(all_by_id(driver, "source-link")) == len(citations)
        layout = driver.execute_script(
            "const messages = document.querySelector('[data-testid=\"messages\"]');"
            "return {sideways: messages.scrollWidth - messages.clientWidth,"
            " rightmost: Math.max(...[...document.querySelectorAll('[data-testid=\"source-link\"]')]"
            "   .map((link) => link.getBoundingClientRect().right)), width: window.innerWidth};")
        assert layout["sideways"] <= 0, "long source labels must not make the messages scroll sideways"
        assert layout["rightmost"] <= layout["width"], layout

        link = all_by_id(driver, "citation-link")[0]
        cited = citations[int(link.get_attribute("data-citation-index") or 0)]
        link.click()
        wait_until(driver, lambda: by_id(driver, "citation-dialog").get_attribute("open") is not None)
        assert by_id(driver, "citation-title").text == f"[{cited['index']}] {cited['title']}"
        shown = by_id(driver, "citation-text").text
        assert normalised(shown) == normalised(cited["text"]) and "%" in shown
        source = by_id(driver, "citation-source").text.removeprefix("Source: ")
        assert source == cited["source"] and (bank_project / "knowledge" / source).is_file()
        driver.save_screenshot(str(artifacts / "web_chat_real_citation.png"))
        by_id(driver, "citation-close").click()
        wait_until(driver, lambda: by_id(driver, "citation-dialog").get_attribute("open") is None)

        by_id(driver, "feedback-up").click()
        wait_until(driver, lambda: all_by_id(driver, "feedback-thanks"))
        assert by_id(driver, "feedback-up").get_attribute("aria-pressed") == "true"
        stored = httpx.get(f"{bank_server.url}/api/conversations/{conversation_id}").json()["turns"]
        assert [feedback["rating"] for feedback in stored[1]["feedback"]] == ["up"]
        driver.save_screenshot(str(artifacts / "web_chat_real.png"))
