"""The bank demo's fake core bank and its actions: state kept per directory, atomic writes, clear refusals, and
flows.yaml compiling against actions.py with every flow started by an intent of intents.yaml."""

from __future__ import annotations

import datetime
import importlib
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from chatwright.dialogue.actions import ActionFailed, ActionRegistry
from chatwright.dialogue.flow_spec import load_flows
from chatwright.evaluation.conversation_runner import ACTION_STATE_ENV, fresh_action_state
from chatwright.nlu.training_data import load_nlu_data

BANK = Path(__file__).resolve().parents[1] / "examples" / "bank"
TODAY = datetime.date(2026, 3, 2)


@pytest.fixture()
def core_banking(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ModuleType:
    """The module, with its state in a fresh directory of this test."""
    monkeypatch.syspath_prepend(str(BANK))
    monkeypatch.setenv(ACTION_STATE_ENV, str(tmp_path))
    return importlib.import_module("core_banking")


@pytest.fixture()
def actions(core_banking: ModuleType) -> ActionRegistry:
    return ActionRegistry.from_file(BANK / "actions.py")


def state_file(tmp_path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((tmp_path / "core_banking.json").read_text(encoding="utf-8"))
    return data


def test_the_seeded_bank_needs_no_file_and_a_change_is_written_whole(core_banking: ModuleType,
                                                                     tmp_path: Path) -> None:
    bank = core_banking.CoreBanking()
    assert bank.path == tmp_path / "core_banking.json"
    assert bank.account()["balance"] == "1,250.00 EUR"
    assert bank.cards()["summary"] == "Visa ending 4821 (active); Mastercard ending 7730 (blocked)"
    assert not bank.path.exists()

    assert bank.block_card("Visa") == {"name": "Visa ending 4821", "last4": "4821",
                                       "status": "blocked", "delivery": "delivered", "tracking": None,
                                       "previous": "active"}
    assert state_file(tmp_path)["cards"]["visa"]["status"] == "blocked"
    assert [path.name for path in tmp_path.iterdir()] == ["core_banking.json"], "no temporary file is left"

    bank.reset()
    assert bank.card("visa")["status"] == "active"


def test_a_refused_request_changes_nothing(core_banking: ModuleType, tmp_path: Path) -> None:
    bank = core_banking.CoreBanking()
    bank.top_up(100, "EUR")
    before = state_file(tmp_path)
    with pytest.raises(core_banking.InsufficientFunds, match=r"balance is 1,349\.70 EUR"):
        bank.send_transfer("Anna Berg", 5000, "EUR", TODAY, today=TODAY)
    with pytest.raises(core_banking.UnknownRecipient, match="Bob is not a saved recipient"):
        bank.send_transfer("Bob", 10, None, TODAY, today=TODAY)
    with pytest.raises(core_banking.BankError, match="not USD"):
        bank.send_transfer("Anna Berg", 10, "USD", TODAY, today=TODAY)
    with pytest.raises(core_banking.BankError, match="in the past"):
        bank.send_transfer("Anna Berg", 10, None, TODAY - datetime.timedelta(days=1), today=TODAY)
    with pytest.raises(core_banking.LimitExceeded, match=r"between 10\.00 EUR and 3,000\.00 EUR"):
        bank.top_up(5, None)
    assert state_file(tmp_path) == before


def test_transfers_are_completed_today_or_pending_until_their_date(core_banking: ModuleType) -> None:
    bank = core_banking.CoreBanking()
    now = bank.send_transfer("Anna Berg", 50, None, TODAY, today=TODAY)
    later = bank.send_transfer("Tom Jansen", 20.5, "EUR", TODAY + datetime.timedelta(days=3), today=TODAY)
    assert (now["reference"], now["status"], now["balance"]) == ("TR-100233", "completed", "1,200.00 EUR")
    assert (later["reference"], later["status"], later["balance"]) == ("TR-100234", "pending", "1,179.50 EUR")
    assert bank.transfer("tr100234") == {"reference": "TR-100234", "recipient": "Tom Jansen", "amount": "20.50 EUR",
                                         "status": "pending", "execute_on": "2026-03-05"}
    assert bank.transfer("100231")["status"] == "completed"
    with pytest.raises(core_banking.UnknownTransfer):
        bank.transfer("TR-999999")


def test_the_daily_transfer_limit_counts_the_transfers_of_that_day(core_banking: ModuleType) -> None:
    bank = core_banking.CoreBanking()
    bank.top_up(3000, None)
    bank.top_up(3000, None)
    bank.top_up(3000, None)
    bank.send_transfer("Green Homes", 6000, None, TODAY, today=TODAY)
    with pytest.raises(core_banking.LimitExceeded, match="daily transfer limit"):
        bank.send_transfer("Green Homes", 4100, None, TODAY, today=TODAY)
    assert bank.send_transfer("Green Homes", 4100, None, TODAY + datetime.timedelta(days=1),
                              today=TODAY)["status"] == "pending"


def test_a_card_reported_lost_is_cancelled_and_its_replacement_is_delivered(core_banking: ModuleType) -> None:
    bank = core_banking.CoreBanking()
    report = bank.report_lost("visa", stolen=True, replacement=True)
    assert (report["status"], report["replacement"]["name"]) == ("lost", "Visa ending 5100")
    assert bank.delivery("visa")["estimate"].startswith("it is printed and dispatched")

    bank.report_lost("mastercard", stolen=False, replacement=False)
    for change in (bank.block_card, bank.unblock_card, bank.request_pin_change):
        with pytest.raises(core_banking.CardCancelled, match="reported lost"):
            change("mastercard")
    with pytest.raises(core_banking.UnknownCard, match="no virtual card on this account"):
        bank.card("virtual")


def test_actions_convert_slot_values_and_report_refusals_with_their_reason(actions: ActionRegistry) -> None:
    sent = actions.call("send_transfer", {"recipient": "Sara Okafor", "amount": {"amount": 30, "currency": None},
                                          "execute_on": "2999-01-01"})
    assert (sent["status"], sent["amount"]) == ("pending", "30.00 EUR")
    report = actions.call("report_lost_card", {"card_type": "mastercard", "reason": "lost", "replacement": "no"})
    assert "replacement" not in report and report["status"] == "lost"

    with pytest.raises(ActionFailed, match="InsufficientFunds: insufficient funds"):
        actions.call("send_transfer", {"recipient": "Anna Berg", "amount": {"amount": 9000, "currency": "EUR"},
                                       "execute_on": datetime.date.today().isoformat()})
    with pytest.raises(ActionFailed, match="UnknownCard"):
        actions.call("block_card", {"card_type": "virtual"})
    with pytest.raises(ActionFailed, match="reason must be one of lost, stolen"):
        actions.call("report_lost_card", {"card_type": "visa", "reason": "damaged", "replacement": "no"})


def test_every_conversation_test_gets_a_fresh_bank(actions: ActionRegistry) -> None:
    with fresh_action_state():
        assert actions.call("block_card", {"card_type": "visa"})["previous"] == "active"
        assert actions.call("block_card", {"card_type": "visa"})["previous"] == "blocked"
    with fresh_action_state():
        assert actions.call("block_card", {"card_type": "visa"})["previous"] == "active"


def test_the_flows_compile_against_the_actions_and_start_from_known_intents(actions: ActionRegistry) -> None:
    book = load_flows(BANK / "flows.yaml", actions)
    intents = load_nlu_data(BANK / "intents.yaml", BANK / "entities.yaml").intents
    expected = {"block_card", "unblock_card", "report_lost_card", "card_delivery_status", "change_pin",
                "transfer_money", "transfer_status", "top_up"}
    assert set(book.flows) == expected
    for flow in book.flows.values():
        assert flow.intents == (flow.name,)
        assert len(intents[flow.name].examples) >= 12
