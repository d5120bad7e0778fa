"""`conversations`: the bank demo's flows over its conversation tests plus seeded variations of them.

    .venv/bin/python -m benchmarks.conversations --project examples/bank [--variations 200] [--seed 7]

The variations are new conversations for each flow's task, drawn with a seeded generator: paraphrased requests
(none of them an example of intents.yaml), slots given all at once, one by one or in another order, small talk
and knowledge questions in the middle of a flow, and corrections before confirming. Each is checked like a
conversation test (every turn's flow and slots, the final action with its arguments) through the real pipeline.

Metrics: task success rate (conversations that pass), turns per completed task (user turns of passing
conversations that complete a flow, per flow completed), slot accuracy (expected slot values that were right,
over the turns that ran), and the policy's decision latency (`policy_ms`, which contains no language-model call;
knowledge answers do call the LLM, so only a few digressions are knowledge questions).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import Target, ingest, write_results
from chatwright.dialogue.assistant import Assistant
from chatwright.dialogue.events import FlowCompleted
from chatwright.evaluation.conversation_runner import TestOutcome, run_tests
from chatwright.evaluation.conversation_tests import (
    ConversationTest,
    Expectation,
    ExpectedCall,
    TestTurn,
    load_test_folder,
    matches,
)
from chatwright.project import AssistantProject

SOURCE = Path("<variation>")
RECIPIENTS = {"Anna Berg": ("Anna", "Anna Berg"), "Tom Jansen": ("Tom", "Tom Jansen"),
              "Sara Okafor": ("Sara", "Sara Okafor"), "Green Homes": ("my landlord", "Green Homes")}
YES = ("yes", "yes please", "sure", "go ahead", "correct", "yep, do it")
SMALL_TALK = ("thanks", "thank you", "hello", "ok thanks")
KNOWLEDGE_QUESTIONS = {
    "transfer_money": ("how long does an instant transfer take?", "are SEPA transfers free?"),
    "top_up": ("what is the maximum I can top up?", "is a top-up by bank transfer free?"),
}


class Variations:
    """Conversations for the bank's tasks; at most `knowledge_budget` of them digress into a knowledge question."""

    def __init__(self, rng: random.Random, knowledge_budget: int) -> None:
        self.rng = rng
        self.knowledge_left = knowledge_budget

    def make(self, number: int) -> ConversationTest:
        task = self.rng.choice((self.transfer, self.top_up, self.block, self.unblock, self.report_lost,
                                self.delivery, self.change_pin, self.transfer_status))
        name, turns = task()
        return ConversationTest(f"variation {number}: {name}", tuple(turns), SOURCE, None)

    # --- tasks --------------------------------------------------------------------------------------------

    def transfer(self) -> tuple[str, list[TestTurn]]:
        recipient = self.rng.choice(list(RECIPIENTS))
        said = self.rng.choice(RECIPIENTS[recipient])
        amount = self.rng.randrange(5, 400)
        order = self.rng.choice(("together", "recipient first", "amount first", "asked"))
        openings = {
            "together": ("please send {amount} to {name}", "could you transfer {amount} to {name}",
                         "I need to pay {name} {amount}", "move {amount} over to {name} please"),
            "recipient first": ("I want to send some money to {name}", "can you pay {name} for me",
                                "I'd like to transfer money to {name}"),
            "amount first": ("I want to send {amount}", "please transfer {amount} from my account",
                             "I need to make a payment of {amount}"),
            "asked": ("I want to make a transfer", "can you send money for me", "I'd like to pay someone"),
        }
        text = self.rng.choice(openings[order]).format(amount=self.money(amount), name=said)
        known = {"recipient": recipient} if order in ("together", "recipient first") else {}
        if order in ("together", "amount first"):
            known["amount"] = {"amount": amount}
        turns = [self.step(text, "transfer_money", known)]
        if "recipient" not in known:
            turns += self.digression("transfer_money", known)
            known["recipient"] = recipient
            answer = self.rng.choice(("{name}", "to {name}", "send it to {name}")).format(name=said)
            turns.append(self.step(answer, "transfer_money", known))
        if "amount" not in known:
            turns += self.digression("transfer_money", known)
            known["amount"] = {"amount": amount}
            turns.append(self.step(self.rng.choice(("{amount}", "make it {amount}")).format(
                amount=self.money(amount)), "transfer_money", known))
        corrected = self.correction(turns, "transfer_money", known, "amount", amount)
        final = corrected or amount
        turns.append(self.done(self.rng.choice(YES), ExpectedCall(
            "send_transfer", {"recipient": recipient, "amount": {"amount": final}}, error=False)))
        return f"transfer ({order}{', corrected' if corrected else ''})", turns

    def top_up(self) -> tuple[str, list[TestTurn]]:
        amount = self.rng.randrange(10, 1000)
        given = self.rng.random() < 0.5
        if given:
            text = self.rng.choice(("top up my account with {amount}", "add {amount} to my balance",
                                    "please load {amount} onto my account")).format(amount=self.money(amount))
        else:
            text = self.rng.choice(("I'd like to top up", "add some money to my account please",
                                    "can you top up my account for me"))
        known: dict[str, Any] = {"top_up_amount": {"amount": amount}} if given else {}
        turns = [self.step(text, "top_up", known)]
        if not given:
            turns += self.digression("top_up", known)
            known["top_up_amount"] = {"amount": amount}
            turns.append(self.step(self.money(amount), "top_up", known))
        corrected = self.correction(turns, "top_up", known, "top_up_amount", amount)
        turns.append(self.done(self.rng.choice(YES), ExpectedCall(
            "top_up", {"amount": {"amount": corrected or amount}}, error=False)))
        return f"top up ({'amount given' if given else 'amount asked'}{', corrected' if corrected else ''})", turns

    def block(self) -> tuple[str, list[TestTurn]]:
        return self.card_task("block_card", "visa", (
            "please freeze my {card} card", "can you block my {card} for now", "lock my {card} card please",
        ), ("can you freeze my card", "I need to block my card", "put a block on my card"))

    def unblock(self) -> tuple[str, list[TestTurn]]:
        return self.card_task("unblock_card", "mastercard", (
            "please unfreeze my {card}", "unlock my {card} card again", "can you unblock my {card}",
        ), ("unfreeze my card please", "I want to unblock my card", "my card is frozen, unfreeze it"))

    def change_pin(self) -> tuple[str, list[TestTurn]]:
        return self.card_task("change_pin", self.rng.choice(("visa", "mastercard")), (
            "I'd like to change my {card} PIN", "new PIN for my {card} card please", "change the PIN on my {card}",
        ), ("I want to change my PIN", "can I set a new PIN", "I'd like a different PIN"))

    def delivery(self) -> tuple[str, list[TestTurn]]:
        return self.card_task("card_delivery_status", self.rng.choice(("visa", "mastercard")), (
            "where is my {card} card", "has my new {card} been shipped yet", "when does my {card} arrive",
        ), ("where's my new card", "when will my card be delivered", "is my card on its way"), confirm=False)

    def card_task(self, flow: str, card: str, with_card: Sequence[str], without: Sequence[str], *,
                  confirm: bool = True) -> tuple[str, list[TestTurn]]:
        given = self.rng.random() < 0.5
        shown = {"visa": ("Visa", "visa"), "mastercard": ("Mastercard", "mastercard")}[card]
        text = self.rng.choice(with_card if given else without).format(card=self.rng.choice(shown))
        call = ExpectedCall(flow, {"card_type": card}, error=False)
        if not given:
            turns = [self.step(text, flow, {})]
            turns += self.digression(flow, {})
            answer = self.rng.choice(("{card}", "the {card} one", "my {card}")).format(card=self.rng.choice(shown))
            turns.append(self.step(answer, flow, {"card_type": card}) if confirm else self.done(answer, call))
        else:
            turns = [self.step(text, flow, {"card_type": card}) if confirm else self.done(text, call)]
        if confirm:
            turns.append(self.done(self.rng.choice(YES), call))
        return f"{flow.replace('_', ' ')} ({'card given' if given else 'card asked'})", turns

    def report_lost(self) -> tuple[str, list[TestTurn]]:
        card = self.rng.choice(("visa", "mastercard"))
        reason = self.rng.choice(("lost", "stolen"))
        shown = "Visa" if card == "visa" else "Mastercard"
        if self.rng.random() < 0.5:
            text = (f"I've lost my {shown} card" if reason == "lost" else f"someone stole my {shown} card")
            turns = [self.step(text, "report_lost_card", {"card_type": card, "loss_reason": reason})]
        else:
            text = "I've lost my card" if reason == "lost" else "my card has been stolen"
            turns = [self.step(text, "report_lost_card", {"loss_reason": reason}),
                     self.step(self.rng.choice((shown, f"the {shown}")), "report_lost_card", {"card_type": card})]
        replacement = self.rng.random() < 0.6
        turns.append(self.step("yes" if replacement else "no thanks", "report_lost_card",
                               {"replacement": "yes" if replacement else "no"}))
        turns.append(self.done(self.rng.choice(YES), ExpectedCall(
            "report_lost_card", {"card_type": card, "reason": reason, "replacement": replacement}, error=False)))
        return f"report {reason} card", turns

    def transfer_status(self) -> tuple[str, list[TestTurn]]:
        reference, status = self.rng.choice((("TR-100231", "completed"), ("TR-100232", "pending")))
        call = ExpectedCall("transfer_status", {"reference": reference}, {"status": status}, error=False)
        if self.rng.random() < 0.5:
            text = self.rng.choice(("what's the status of transfer {ref}", "has {ref} gone through yet",
                                    "check transfer {ref} for me")).format(ref=reference)
            return "transfer status (reference given)", [self.done(text, call)]
        opening = self.rng.choice(("I want to check on a transfer", "is my transfer done",
                                   "can you look up a transfer"))
        answer = self.rng.choice(("{ref}", "it's {ref}", "reference {ref}")).format(ref=reference)
        return "transfer status (reference asked)", [self.step(opening, "transfer_status", {}),
                                                     self.done(answer, call)]

    # --- turns --------------------------------------------------------------------------------------------

    def money(self, amount: int) -> str:
        return self.rng.choice(("{n} euros", "€{n}", "{n} EUR")).format(n=amount)

    @staticmethod
    def step(text: str, flow: str, slots: dict[str, Any]) -> TestTurn:
        """A turn after which `flow` is still waiting, with the slot values known so far."""
        return TestTurn(text, Expectation(flow=flow, checks_flow=True, slots=dict(slots)), None)

    @staticmethod
    def done(text: str, call: ExpectedCall) -> TestTurn:
        """The turn that completes the task with `call`."""
        return TestTurn(text, Expectation(flow=None, checks_flow=True, actions=(call,)), None)

    def digression(self, flow: str, known: dict[str, Any]) -> list[TestTurn]:
        """Sometimes small talk or (within the budget) a knowledge question while the flow waits."""
        if self.rng.random() >= 0.25:
            return []
        questions = KNOWLEDGE_QUESTIONS.get(flow, ())
        if questions and self.knowledge_left > 0 and self.rng.random() < 0.5:
            self.knowledge_left -= 1
            text = self.rng.choice(questions)
        else:
            text = self.rng.choice(SMALL_TALK)
        return [self.step(text, flow, known)]

    def correction(self, turns: list[TestTurn], flow: str, known: dict[str, Any], slot: str,
                   amount: int) -> int | None:
        """Sometimes correct the amount at the confirmation; returns the new amount."""
        if self.rng.random() >= 0.3:
            return None
        new = amount + self.rng.choice((-3, 5, 10, 20))
        text = self.rng.choice(("no, make that {amount}", "actually {amount}", "sorry, I meant {amount}"))
        known[slot] = {"amount": new}
        turns.append(self.step(text.format(amount=self.money(new)), flow, known))
        return new


def completed_tasks(outcome: TestOutcome) -> int:
    return sum(1 for turn in outcome.turns for event in turn.reply.events if event.get("type") == FlowCompleted.type)


def slot_counts(outcomes: Sequence[TestOutcome]) -> tuple[int, int]:
    """(right, expected) slot values over the turns that ran."""
    right = expected = 0
    for outcome in outcomes:
        for turn in outcome.turns:
            for name, value in (turn.turn.expect.slots or {}).items():
                if value is not None:
                    expected += 1
                    right += matches(value, turn.reply.slots.get(name))
    return right, expected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, default=Path("examples/bank"))
    parser.add_argument("--variations", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--knowledge-digressions", type=int, default=3, help="at most this many (they call the LLM)")
    args = parser.parse_args()

    ingest(args.project)
    project = AssistantProject.load(args.project)
    tests = load_test_folder(project.conversation_tests_dir)
    generator = Variations(random.Random(args.seed), args.knowledge_digressions)
    variations = [generator.make(number) for number in range(1, args.variations + 1)]
    assistant = Assistant.from_project(project)
    started = time.perf_counter()
    outcomes = run_tests(assistant, [*tests, *variations])
    elapsed = time.perf_counter() - started

    passed = [outcome for outcome in outcomes if outcome.passed]
    completing = [(len(outcome.turns), completed_tasks(outcome)) for outcome in passed]
    tasks = sum(count for _, count in completing)
    right, expected = slot_counts(outcomes)
    latencies = np.array([turn.reply.timings_ms["policy_ms"] for outcome in outcomes for turn in outcome.turns
                          if "policy_ms" in turn.reply.timings_ms])
    metrics: dict[str, Any] = {
        "conversations": len(outcomes),
        "task_success_rate": round(len(passed) / len(outcomes), 4),
        "task_success_rate_tests": round(sum(o.passed for o in outcomes[:len(tests)]) / len(tests), 4),
        "task_success_rate_variations": round(sum(o.passed for o in outcomes[len(tests):]) / len(variations), 4)
        if variations else None,
        "turns_per_completed_task": round(sum(turns for turns, count in completing if count) / tasks, 2)
        if tasks else None,
        "slot_accuracy": round(right / expected, 4) if expected else None,
        "decision_p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "decision_p95_ms": round(float(np.percentile(latencies, 95)), 2),
        "turns": int(latencies.size),
        "knowledge_digressions": args.knowledge_digressions - generator.knowledge_left,
        "wall_s": round(elapsed, 1),
    }
    failures = {outcome.test.name: (outcome.error or [f"turn {t.number} ({t.turn.user!r}): {r}"
                                                     for t in outcome.turns for r in t.failures])
                for outcome in outcomes if not outcome.passed}
    notes = (f"{len(tests)} conversation tests of {args.project} plus {len(variations)} variations (seed "
             f"{args.seed}). Decision latency is the policy's own time per turn (`policy_ms`), without NLU, "
             "actions or the language model.")
    path = write_results("conversations", metrics, [Target("task_success_rate", ">=", 0.95),
                                                    Target("decision_p95_ms", "<=", 20.0)],
                         notes=notes, details={"failures": failures})
    print(path.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
