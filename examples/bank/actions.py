"""The bank demo's actions: what its flows call to block cards, send money and the like, on the fake core bank.

Each function takes the flow's slot values (converted to its type hints by chatwright) and returns JSON data the
flow can branch on and show. A refusal (an unknown card, insufficient funds) raises with a clear reason: the
flow's `on_error` steps tell the customer, and the conversation log keeps the reason for whoever reads it.
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path
from typing import Any

from chatwright.dialogue.actions import action
from chatwright.nlu.normalise import Amount

sys.path.insert(0, str(Path(__file__).resolve().parent))  # core_banking.py ships beside this file
from core_banking import CoreBanking

LOSS_REASONS = ("lost", "stolen")


@action
def account_balance() -> dict[str, Any]:
    return CoreBanking().account()


@action
def list_cards() -> dict[str, Any]:
    return CoreBanking().cards()


@action
def card_details(card_type: str) -> dict[str, Any]:
    return CoreBanking().card(card_type)


@action
def block_card(card_type: str) -> dict[str, Any]:
    return CoreBanking().block_card(card_type)


@action
def unblock_card(card_type: str) -> dict[str, Any]:
    return CoreBanking().unblock_card(card_type)


@action
def report_lost_card(card_type: str, reason: str, replacement: bool) -> dict[str, Any]:
    if reason not in LOSS_REASONS:
        raise ValueError(f"reason must be one of {', '.join(LOSS_REASONS)}, not {reason!r}")
    return CoreBanking().report_lost(card_type, stolen=reason == "stolen", replacement=replacement)


@action
def card_delivery_status(card_type: str) -> dict[str, Any]:
    return CoreBanking().delivery(card_type)


@action
def change_pin(card_type: str) -> dict[str, Any]:
    return CoreBanking().request_pin_change(card_type)


@action
def send_transfer(recipient: str, amount: Amount, execute_on: datetime.date) -> dict[str, Any]:
    return CoreBanking().send_transfer(recipient, amount.value, amount.currency, execute_on,
                                       today=datetime.date.today())


@action
def transfer_status(reference: str) -> dict[str, Any]:
    return CoreBanking().transfer(reference)


@action
def top_up(amount: Amount) -> dict[str, Any]:
    return CoreBanking().top_up(amount.value, amount.currency)
