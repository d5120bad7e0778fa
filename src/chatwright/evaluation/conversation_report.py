"""The files a conversation test run leaves behind: results JSON for machines, a Markdown report for people.

The Markdown puts the failures first, each with the file:line of its turn, what the user said, why the turn
failed and what the assistant answered, because that is what someone fixing flows or intents reads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatwright.evaluation.conversation_runner import TestOutcome, TurnOutcome
from chatwright.evaluation.conversation_tests import action_calls

MAX_REPLY_CHARS = 300


@dataclass(frozen=True)
class ReportFiles:
    json: Path
    markdown: Path


def summary(outcomes: Sequence[TestOutcome]) -> dict[str, int]:
    passed = sum(1 for outcome in outcomes if outcome.passed)
    return {"tests": len(outcomes), "passed": passed, "failed": len(outcomes) - passed,
            "turns": sum(len(outcome.turns) for outcome in outcomes)}


def write_report(outcomes: Sequence[TestOutcome], out_dir: Path, *, title: str) -> ReportFiles:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(out_dir / "conversations.json", out_dir / "conversations.md")
    payload = {"title": title, "summary": summary(outcomes), "tests": [_test_json(o) for o in outcomes]}
    files.json.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    files.markdown.write_text(_markdown(outcomes, title), encoding="utf-8")
    return files


def failure_lines(outcome: TestOutcome) -> list[str]:
    """One line per reason the test failed: where, which turn, what the user said and what went wrong."""
    if outcome.error is not None:
        return [f"{outcome.test.where}: {outcome.error}"]
    turn = outcome.failed_turn
    if turn is None:
        return []
    where = f"{outcome.test.source}:{turn.turn.line}" if turn.turn.line else outcome.test.where
    return [f"{where}: turn {turn.number} ({turn.turn.user!r}): {reason}" for reason in turn.failures]


def _test_json(outcome: TestOutcome) -> dict[str, Any]:
    return {"name": outcome.test.name, "source": str(outcome.test.source), "line": outcome.test.line,
            "passed": outcome.passed, "error": outcome.error, "turns": [_turn_json(turn) for turn in outcome.turns],
            "not_run": len(outcome.test.turns) - len(outcome.turns)}


def _turn_json(turn: TurnOutcome) -> dict[str, Any]:
    reply = turn.reply
    calls = [{key: event.get(key) for key in ("action", "args", "result", "error")} for event in action_calls(reply)]
    return {"turn": turn.number, "line": turn.turn.line, "user": turn.turn.user, "reply": reply.text,
            "intent": reply.understanding.intent, "confidence": reply.understanding.confidence,
            "decision": reply.decision, "flow": reply.flow, "slots": reply.slots, "actions": calls,
            "policy_ms": reply.timings_ms.get("policy_ms"), "failures": list(turn.failures)}


def _markdown(outcomes: Sequence[TestOutcome], title: str) -> str:
    counts = summary(outcomes)
    lines = [f"# {title}", "", f"{counts['passed']} of {counts['tests']} tests passed ({counts['turns']} turns run).",
             ""]
    failed = [outcome for outcome in outcomes if not outcome.passed]
    if failed:
        lines += ["## Failures", ""]
        for outcome in failed:
            lines.append(f"### {outcome.test.name}")
            lines += ["", *(f"- {line}" for line in failure_lines(outcome))]
            turn = outcome.failed_turn
            if turn is not None:
                reply = turn.reply
                lines.append(f"- the assistant said {_clipped(reply.text)!r} (intent {reply.understanding.intent}, "
                             f"decision {reply.decision or 'none'}, flow {reply.flow or 'none'})")
            lines.append("")
    lines += ["## All tests", "", "| test | result | turns | where |", "|---|---|---|---|"]
    for outcome in outcomes:
        result = "passed" if outcome.passed else "**failed**"
        lines.append(f"| {outcome.test.name} | {result} | {len(outcome.turns)}/{len(outcome.test.turns)} | "
                     f"{outcome.test.where} |")
    return "\n".join(lines) + "\n"


def _clipped(text: str) -> str:
    return text if len(text) <= MAX_REPLY_CHARS else text[: MAX_REPLY_CHARS - 1] + "…"
