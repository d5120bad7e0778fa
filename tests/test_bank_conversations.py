"""The bank demo's own conversation tests, through the real pipeline: the demo must keep doing what it shows."""

from __future__ import annotations

from pathlib import Path

from chatwright.dialogue.assistant import Assistant
from chatwright.evaluation.conversation_report import failure_lines
from chatwright.evaluation.conversation_runner import run_tests
from chatwright.evaluation.conversation_tests import load_test_folder
from chatwright.project import AssistantProject


def test_the_bank_demo_passes_every_conversation_test(bank_project: Path) -> None:
    project = AssistantProject.load(bank_project)
    tests = load_test_folder(project.conversation_tests_dir)
    assert len(tests) >= 30
    outcomes = run_tests(Assistant.from_project(project), tests)
    failures = [line for outcome in outcomes if not outcome.passed for line in failure_lines(outcome)]
    assert not failures, "\n".join(failures)
