"""flows.yaml loading: a valid file compiles, and every kind of mistake is reported at its file and line."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from chatwright.dialogue.actions import ActionRegistry, HttpAction
from chatwright.dialogue.flow_spec import (
    Branch,
    CallAction,
    Collect,
    Condition,
    End,
    HandoffStep,
    Jump,
    Link,
    Say,
    SetSlots,
    load_flows,
)
from chatwright.dialogue.slot_values import SlotType
from chatwright.errors import ConfigError

ACTIONS = """\
def send_transfer(recipient: str, amount: float, note: str = "") -> dict:
    return {"id": "T-1"}
"""

SLOTS = """\
slots:
  amount: {type: amount, entities: [amount, MONEY], validate: {min: 1, max: 10000}}
  recipient: {type: text, entities: [recipient, PERSON], prompt: "Who should receive the money?"}
  when: {type: date, entities: [DATE], default: today, validate: {min: today}}
  confirm: {type: choice, choices: [yes, no]}
  card: {type: choice, choices: {visa: [visa card], mastercard: [master card, mc]}}
  pin: {type: pattern, pattern: '^\\d{4}$', invalid: A PIN has exactly four digits.}
"""

VALID = SLOTS + """\
actions:
  check_status: {url: "http://127.0.0.1:9/status", method: GET, timeout: 2, headers: {Authorization: "${TOKEN}"}}
flows:
  transfer_money:
    description: Send money to someone
    start: {intents: [transfer_money, send_money]}
    steps:
      - collect: recipient
      - collect: amount
        prompt: How much would you like to send?
      - collect: confirm
        prompt: "Send {amount} to {recipient} on {when}?"
      - if: {slot: confirm, equals: no}
        then: [{say: "OK, I won't send it."}, {end: cancelled}]
      - action: send_transfer
        args: {recipient: recipient, amount: amount, note: "for {recipient}"}
        result: transfer
        on_error: [{say: The transfer service is down.}, handoff]
      - if: {slot: transfer.status, equals: pending}
        then: [{say: "Your transfer {transfer.id} is pending."}]
        else: [{say: "Sent! Reference {transfer.id}."}]
      - set: {last_recipient: "{recipient}"}
      - link: status
  status:
    description: Check the status of a transfer
    start: {llm: true}
    steps:
      - action: check_status
        args: [last_recipient]
      - end
"""


def write(tmp_path: Path, flows: str, actions: str | None = ACTIONS) -> tuple[Path, ActionRegistry | None]:
    path = tmp_path / "flows.yaml"
    path.write_text(flows, encoding="utf-8")
    if actions is None:
        return path, None
    actions_path = tmp_path / "actions.py"
    actions_path.write_text(actions, encoding="utf-8")
    return path, ActionRegistry.from_file(actions_path)


def test_a_valid_file_compiles_to_flat_steps(tmp_path: Path) -> None:
    path, actions = write(tmp_path, VALID)
    book = load_flows(path, actions)

    transfer = book.flows["transfer_money"]
    assert transfer.steps == (
        Collect("recipient", "Who should receive the money?"),
        Collect("amount", "How much would you like to send?"),
        Collect("confirm", "Send {amount} to {recipient} on {when}?"),
        Branch(Condition("confirm", equals="no"), otherwise=6),  # YAML's `no` is the word here, not False
        Say("OK, I won't send it."),
        End("cancelled"),
        CallAction("send_transfer", {"recipient": "{recipient}", "amount": "{amount}", "note": "for {recipient}"},
                   result="transfer", on_error=8),
        Jump(10),
        Say("The transfer service is down."),
        HandoffStep("transfer_money"),
        Branch(Condition("transfer.status", equals="pending"), otherwise=13),
        Say("Your transfer {transfer.id} is pending."),
        Jump(14),
        Say("Sent! Reference {transfer.id}."),
        SetSlots({"last_recipient": "{recipient}"}),
        Link("status"),
    )
    assert transfer.slots == ("recipient", "amount", "confirm", "when")
    assert transfer.results == ("transfer",)
    assert book.flow_for_intent("send_money") is transfer
    assert book.flow_for_intent("greet") is None
    assert [flow.name for flow in book.proposable()] == ["status"]
    assert book.http_actions == (HttpAction("check_status", "http://127.0.0.1:9/status", "GET", 2.0,
                                            {"Authorization": "${TOKEN}"}),)
    assert book.flows["status"].steps[0] == CallAction("check_status", {"last_recipient": "{last_recipient}"})
    assert book.slots["card"].rules.choices == {"visa": ("visa card",), "mastercard": ("master card", "mc")}
    assert book.slots["confirm"].rules.choices == {"yes": (), "no": ()}
    assert book.slots["when"].rules.earliest == "today"
    assert book.slots["amount"].rules.maximum == 10000
    assert book.slots["recipient"].entities == ("recipient", "PERSON")
    assert book.slots["pin"].rules.type is SlotType.PATTERN


def test_without_args_a_function_gets_the_slots_named_like_its_parameters(tmp_path: Path) -> None:
    flows = SLOTS + """\
flows:
  pay:
    description: Pay
    steps:
      - collect: amount
        prompt: How much?
      - action: send_transfer
"""
    path, actions = write(tmp_path, flows)
    step = load_flows(path, actions).flows["pay"].steps[1]
    assert step == CallAction("send_transfer", {"recipient": "{recipient}", "amount": "{amount}"})


def _flow(steps: str) -> str:
    return SLOTS + "flows:\n  pay:\n    description: Pay\n    steps:\n" + steps


# Each case marks the line the error must name with `# <-`.
ERRORS = {
    "unknown slot in collect": (_flow("      - collect: amonut  # <-\n        prompt: How much?\n"),
                                "unknown slot 'amonut'"),
    "unknown slot in if": (_flow("      - if: {slot: confrim, equals: yes}  # <-\n        then: [end]\n"),
                           "unknown slot 'confrim'"),
    "unknown slot in a template": (_flow("      - say: Sending {amount} to {recipeint}  # <-\n"),
                                   "unknown slot 'recipeint'"),
    "unknown slot in a prompt": (_flow("      - collect: amount\n        prompt: How much for {who}?  # <-\n"),
                                 "unknown slot 'who'"),
    "unknown slot in args": (_flow("      - action: send_transfer\n        args:\n"
                                   "          recipient: recipient\n          amount: amout  # <-\n"),
                             "unknown slot 'amout'"),
    "unknown flow in link": (_flow("      - say: hi\n      - link: nowhere  # <-\n"), "unknown flow 'nowhere'"),
    "missing action": (_flow("      - action: refund  # <-\n"), "unknown action 'refund'"),
    "unknown parameter": (_flow("      - action: send_transfer\n        args:\n          recipient: recipient\n"
                                "          amount: amount\n          memo: recipient  # <-\n"),
                          "has no parameter 'memo'"),
    "missing argument": (_flow("      - action: send_transfer  # <-\n        args: {amount: amount}\n"),
                         "needs argument 'recipient'"),
    "step after end": (_flow("      - say: bye\n      - end\n      - say: never  # <-\n"), "unreachable step"),
    "step after link": (_flow("      - link: pay\n      - say: never  # <-\n"), "unreachable step"),
    "step after if that always ends": (_flow(
        "      - if: {slot: confirm, equals: yes}\n        then: [handoff]\n        else: [{end: cancelled}]\n"
        "      - say: never  # <-\n"), "unreachable step"),
    "step after end in a branch": (_flow(
        "      - if: {slot: confirm, filled: true}\n        then:\n          - end\n"
        "          - say: never  # <-\n"), "unreachable step"),
    "two kinds in one step": (_flow("      - say: hi  # <-\n        link: pay\n"),
                              "a step needs exactly one of"),
    "field of another kind": (_flow("      - say: hi  # <-\n        prompt: How much?\n"),
                              "prompt does not belong in a say step"),
    "unknown step word": (_flow("      - stop  # <-\n"), "unknown step 'stop'"),
    "condition without a test": (_flow("      - if: {slot: confirm}  # <-\n        then: [end]\n"),
                                 "exactly one of equals"),
    "no prompt": (_flow("      - collect: amount  # <-\n"), "needs a prompt"),
    "bad regex": (SLOTS + "  code: {type: pattern, pattern: '[a-z'}  # <-\nflows: {}\n",
                  "invalid regular expression"),
    "unknown slot type": (SLOTS + "  colour: {type: colour}  # <-\nflows: {}\n", "Input should be"),
    "choice without choices": (SLOTS + "  size: {type: choice}  # <-\nflows: {}\n", "needs choices"),
    "bounds of the wrong kind": (SLOTS + "  day:\n    type: date\n    validate: {min: 3}  # <-\nflows: {}\n",
                                 "dates or today"),
    "invalid default": (SLOTS + "  count: {type: number, default: many}  # <-\nflows: {}\n",
                        "default 'many' is not a valid number"),
    "duplicate flow": (_flow("      - end\n  pay:  # <-\n    description: Pay again\n    steps: [end]\n"),
                       "duplicate key 'pay' (first at line 9)"),
    "intent starting two flows": (SLOTS + "flows:\n  a:\n    description: A\n    start: {intents: [pay]}\n"
                                  "    steps: [end]\n  b:\n    description: B\n    start:\n      intents:\n"
                                  "        - pay  # <-\n    steps: [end]\n",
                                  "intent 'pay' already starts flow 'a'"),
    "http action named like a function": (SLOTS + "actions:\n  send_transfer: {url: 'http://x'}  # <-\n"
                                          "flows: {}\n", "defined both in actions.py and here"),
    "unknown key": (_flow("      - collect: amount\n        promt: How much?  # <-\n"), "Extra inputs"),
}


@pytest.mark.parametrize("text, message", list(ERRORS.values()), ids=list(ERRORS))
def test_each_mistake_names_its_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path, actions = write(tmp_path, text)
    expected_line = next(number for number, line in enumerate(text.splitlines(), 1) if "# <-" in line)
    with pytest.raises(ConfigError) as caught:
        load_flows(path, actions)
    assert caught.value.path == path
    assert caught.value.line == expected_line, str(caught.value)
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"{path}:{expected_line}: ")


def test_without_actions_py_every_python_action_is_missing(tmp_path: Path) -> None:
    path, actions = write(tmp_path, _flow("      - action: send_transfer\n"), actions=None)
    with pytest.raises(ConfigError, match=r"flows.yaml:\d+: .*unknown action 'send_transfer'"):
        load_flows(path, actions)


def test_actions_py_errors_name_their_line(tmp_path: Path) -> None:
    (tmp_path / "actions.py").write_text("import os\n\ndef broken(:\n    pass\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        ActionRegistry.from_file(tmp_path / "actions.py")
    assert (caught.value.line, "syntax error" in str(caught.value)) == (3, True)

    (tmp_path / "actions.py").write_text("import os\nLIMIT = int(os.environ['NO_SUCH_VARIABLE_X'])\n",
                                         encoding="utf-8")
    with pytest.raises(ConfigError, match="KeyError") as caught:
        ActionRegistry.from_file(tmp_path / "actions.py")
    assert caught.value.line == 2


def test_dates_in_bounds_and_defaults_are_checked_against_the_slot_type(tmp_path: Path) -> None:
    flows = SLOTS + "  due: {type: date, validate: {min: 2020-01-01, max: today}, default: today}\nflows: {}\n"
    path, actions = write(tmp_path, flows)
    rules = load_flows(path, actions).slots["due"].rules
    assert (rules.earliest, rules.latest) == (datetime.date(2020, 1, 1), "today")
