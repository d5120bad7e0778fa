"""The `chatwright` command as a user runs it: a real process on a project made by `chatwright init`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flows_project import write_flows_project

CLI = [sys.executable, "-m", "chatwright.cli"]


def chatwright(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False)


def init(directory: Path) -> Path:
    result = chatwright("init", directory)
    assert result.returncode == 0, result.stderr
    return directory


def ingest_counts(stdout: str) -> dict[str, int]:
    """The numbers of ingest's report table, by column."""
    columns = ("added", "updated", "removed", "unchanged", "skipped", "chunks")
    rows = [re.findall(r"\d+", line) for line in stdout.splitlines()]
    numbers = [row for row in rows if len(row) == len(columns)]
    assert len(numbers) == 1, stdout
    return dict(zip(columns, map(int, numbers[0]), strict=True))


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A fresh template project and the output of its first ingest."""
    project = init(tmp_path_factory.mktemp("cli") / "shop")
    return project, chatwright("ingest", project)


def test_init_creates_a_project_that_validates(tmp_path: Path) -> None:
    project = init(tmp_path / "new")
    for part in ("assistant.yaml", "intents.yaml", "knowledge"):
        assert (project / part).exists()
    result = chatwright("validate", project)
    assert result.returncode == 0, result.stderr
    assert "configuration valid, 5 knowledge files" in result.stdout
    assert chatwright("init", project).returncode == 2, "init refuses a non-empty directory"


def test_malformed_yaml_is_reported_with_file_and_line(tmp_path: Path) -> None:
    project = init(tmp_path / "a-project-with-a-long-enough-name-that-its-error-line-passes-eighty-columns")
    config = project / "assistant.yaml"
    lines = ["name: Acme", "models:", "  threads: 2", "   context_tokens: 2048"]  # line 4: bad indent
    config.write_text("\n".join(lines) + "\n")
    result = chatwright("validate", project)
    assert result.returncode == 2
    assert f"{config}:4: invalid YAML" in result.stderr, "one unbroken FILE:LINE, however long the path"
    assert "Traceback" not in result.stderr


def test_an_unknown_field_is_named_with_its_line(tmp_path: Path) -> None:
    project = init(tmp_path / "p")
    config = project / "assistant.yaml"
    line_count = len(config.read_text().splitlines())
    config.write_text(config.read_text() + "colour: blue\n")
    result = chatwright("validate", project)
    assert result.returncode == 2
    assert f"{config}:{line_count + 1}: colour: Extra inputs are not permitted" in result.stderr


def test_an_intent_with_one_example_is_named_with_its_line(tmp_path: Path) -> None:
    project = init(tmp_path / "p")
    intents = project / "intents.yaml"
    text = intents.read_text().rstrip("\n") + "\n"
    intent_line = len(text.splitlines()) + 2
    intents.write_text(text + "\n  lonely:\n    route: knowledge\n    examples:\n      - is anybody out there\n")
    result = chatwright("validate", project)
    assert result.returncode == 2
    assert f"{intents}:{intent_line}: intents.lonely: intent 'lonely' has 1 example(s)" in result.stderr


def test_ingest_reports_added_then_unchanged_files_and_skips_an_unreadable_one(
        ingested: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    project, first = ingested
    assert first.returncode == 0, first.stderr
    counts = ingest_counts(first.stdout)
    assert counts["added"] == 5 and counts["skipped"] == 0 and counts["chunks"] > 5
    assert (project / ".chatwright" / "index").is_dir()

    second = chatwright("ingest", project)
    assert second.returncode == 0, second.stderr
    assert ingest_counts(second.stdout) == {**counts, "added": 0, "unchanged": 5}

    corrupt = project / "knowledge" / "price-list.pdf"
    corrupt.write_bytes(b"%PDF-1.4\nthis is not really a PDF\n")
    try:
        third = chatwright("ingest", project)
    finally:
        corrupt.unlink()
    assert third.returncode == 0, third.stderr
    assert ingest_counts(third.stdout) == {**counts, "added": 0, "unchanged": 5, "skipped": 1}
    assert re.search(r"^skipped price-list\.pdf: .*not a readable PDF", third.stderr, re.MULTILINE), third.stderr


def ask_json(project: Path, question: str) -> dict[str, Any]:
    result = chatwright("ask", project, question, "--json")
    assert result.returncode == 0, result.stderr
    reply: dict[str, Any] = json.loads(result.stdout)  # stdout is the reply alone: logs go to stderr
    return reply


def test_ask_json_answers_with_citations_or_says_it_does_not_know(
        ingested: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    project, _ = ingested
    knowledge_files = {p.relative_to(project / "knowledge").as_posix() for p in (project / "knowledge").iterdir()}

    answer = ask_json(project, "How long does standard shipping take?")
    assert answer["route"] == "knowledge" and not answer["abstained"] and answer["error"] is None
    assert answer["citations"], answer
    assert {citation["source"] for citation in answer["citations"]} <= knowledge_files
    assert "3-5 business days" in " ".join(citation["text"] for citation in answer["citations"])
    assert len(answer["text"].split()) >= 5

    unknown = ask_json(project, "Can I rent a boat for the weekend?")
    assert unknown["abstained"] is True
    assert unknown["citations"] == []
    assert unknown["text"].startswith("I couldn't find that in our help centre")


def test_chat_debug_shows_understanding_state_and_decision_and_keeps_the_flow_across_turns(tmp_path: Path) -> None:
    project = write_flows_project(tmp_path / "acme")
    result = subprocess.run([*CLI, "chat", str(project), "--debug"], capture_output=True, text=True, timeout=300,
                            input="send 50 euros to Anna\nno, make that 60\n\n", check=False)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Acme Bank> Send 50.00 EUR to Anna?" in out and "Acme Bank> Send 60.00 EUR to Anna?" in out
    assert "understood: intent=transfer_money confidence=" in out
    assert "entities: MONEY={'amount': 50.0, 'currency': 'EUR'} (spacy), PERSON='Anna' (spacy)" in out
    assert re.search(r"sentiment: (negative|neutral|positive) \d\.\d\d", out), out
    assert "state: flow=transfer_money step=2 awaiting=confirm slots={" in out and "'recipient': 'Anna'" in out
    assert "top 3: transfer_money " in out
    assert "decision: start_flow" in out and "decision: continue_flow" in out
    assert "'amount': {'amount': 60.0, 'currency': 'EUR'}" in out
