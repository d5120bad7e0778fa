"""A small stateful fake of Northwind Bank's core-banking service, so the demo's flows change something real.

One customer with an account, cards, saved recipients and transfers, kept as JSON in one file: under
$CHATWRIGHT_ACTION_STATE_DIR when set (the conversation-test runner gives every test a fresh, empty directory,
so each test starts from the seeded data), else in the project's `.chatwright/`. A missing file means the seeded
data; every change is written atomically (temporary file, then rename), so a crash never leaves half a state.
Amounts are kept in cents so balances add up exactly. Everything is deterministic: references are counted, and
the only clock is the `today` the caller passes.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

STATE_ENV = "CHATWRIGHT_ACTION_STATE_DIR"
STATE_FILE = "core_banking.json"
DEFAULT_STATE_DIR = Path(__file__).resolve().parent / ".chatwright"
CURRENCY = "EUR"
DAILY_TRANSFER_LIMIT_CENTS = 10_000_00  # the Standard plan's limit (transfers/transfer-limits.md)
TOP_UP_MIN_CENTS, TOP_UP_MAX_CENTS = 10_00, 3_000_00  # topups/top-up-fees-and-limits.html
TOP_UP_FEE = {"visa": 0.003, "mastercard": 0.007}  # of the amount, for EEA cards on the Standard plan
PIN_LINK_MINUTES = 15
DELIVERY_ESTIMATES = {  # cards/card-delivery-and-tracking.md
    "ordered": "it is printed and dispatched within one business day, then takes 3-5 business days by post",
    "dispatched": "it is with the express courier and usually arrives within 1-2 business days",
    "delivered": "it has been delivered",
}

SEED: dict[str, Any] = {
    "customer": "Eva de Vries",
    "account": {"iban": "NL91 NWBK 0123 4567 89", "plan": "Standard", "balance_cents": 1_250_00},
    "cards": {
        "visa": {"network": "Visa", "last4": "4821", "status": "active", "delivery": "delivered", "tracking": None},
        # a second card ordered by express courier, frozen by the customer until it arrives
        "mastercard": {"network": "Mastercard", "last4": "7730", "status": "blocked", "delivery": "dispatched",
                       "tracking": "JD014600003829"},
    },
    "top_up_card": {"network": "visa", "bank": "ING", "last4": "9012"},
    "recipients": {
        "Anna Berg": "NL02 ABNA 0417 1643 00",
        "Tom Jansen": "DE89 3704 0044 0532 0130 00",
        "Sara Okafor": "BE68 5390 0754 7034",
        "Green Homes": "NL20 INGB 0001 2345 67",
    },
    "transfers": {
        "TR-100231": {"recipient": "Anna Berg", "amount_cents": 45_00, "status": "completed", "execute_on": None},
        "TR-100232": {"recipient": "Green Homes", "amount_cents": 950_00, "status": "pending", "execute_on": None},
    },
    "next_reference": 100233,
    "next_card_number": 5100,
}

_lock = threading.Lock()  # actions run in worker threads; one change at a time within this process


class BankError(Exception):
    """A request the bank refuses; the message says why in words a customer understands."""


class UnknownCard(BankError):
    pass


class UnknownRecipient(BankError):
    pass


class UnknownTransfer(BankError):
    pass


class InsufficientFunds(BankError):
    pass


class LimitExceeded(BankError):
    pass


class CardCancelled(BankError):
    """A card reported lost or stolen is cancelled for good: nothing can be done with it any more."""


def money(cents: int) -> str:
    return f"{cents / 100:,.2f} {CURRENCY}"


def _cents(amount: float, currency: str | None) -> int:
    """An amount in euro cents; an amount without a currency is in euros, the only currency of the account."""
    if currency not in (None, CURRENCY):
        raise BankError(f"the account is in {CURRENCY}, so amounts are too, not {currency}")
    if amount <= 0:
        raise BankError(f"the amount must be more than zero, not {amount:g}")
    return round(amount * 100)


class CoreBanking:
    """The service as the bank's other systems see it; each call reads the file and writes back what changed."""

    def __init__(self, path: Path | None = None) -> None:
        directory = os.environ.get(STATE_ENV)
        self.path = path or (Path(directory) if directory else DEFAULT_STATE_DIR) / STATE_FILE

    def reset(self) -> None:
        """Back to the seeded demo data."""
        with _lock:
            self._save(copy.deepcopy(SEED))

    # --- reading --------------------------------------------------------------------------------------

    def account(self) -> dict[str, Any]:
        state = self._load()
        account = state["account"]
        return {"customer": state["customer"], "iban": account["iban"], "plan": account["plan"],
                "balance": money(account["balance_cents"]), "balance_eur": account["balance_cents"] / 100}

    def cards(self) -> dict[str, Any]:
        cards = [_card_view(card) for card in self._load()["cards"].values()]
        return {"cards": cards, "summary": "; ".join(f"{card['name']} ({card['status']})" for card in cards)}

    def card(self, card_type: str) -> dict[str, Any]:
        return _card_view(_card(self._load(), card_type))

    def delivery(self, card_type: str) -> dict[str, Any]:
        view = self.card(card_type)
        return {**view, "estimate": DELIVERY_ESTIMATES[view["delivery"]]}

    def transfer(self, reference: str) -> dict[str, Any]:
        """A transfer by its reference, written as TR-100232, tr100232 or just 100232."""
        digits = "".join(character for character in reference if character.isdigit())
        found = self._load()["transfers"].get(f"TR-{digits}")
        if found is None:
            raise UnknownTransfer(f"there is no transfer with reference {reference}")
        return _transfer_view(f"TR-{digits}", found)

    # --- changing -------------------------------------------------------------------------------------

    def block_card(self, card_type: str) -> dict[str, Any]:
        """Freeze a card; freezing a frozen card changes nothing, a cancelled one cannot be frozen."""
        with self._changing() as state:
            card = _card(state, card_type)
            _usable(card_type, card)
            previous, card["status"] = card["status"], "blocked"
            return {**_card_view(card), "previous": previous}

    def unblock_card(self, card_type: str) -> dict[str, Any]:
        with self._changing() as state:
            card = _card(state, card_type)
            _usable(card_type, card)
            previous, card["status"] = card["status"], "active"
            return {**_card_view(card), "previous": previous}

    def report_lost(self, card_type: str, *, stolen: bool, replacement: bool) -> dict[str, Any]:
        """Cancel a card for good; a replacement gets a new number and starts its delivery."""
        with self._changing() as state:
            card = _card(state, card_type)
            _usable(card_type, card)
            card["status"] = "lost"
            card["reason"] = "stolen" if stolen else "lost"
            view = _card_view(card)
            if replacement:
                card.update(last4=str(state["next_card_number"]), status="active", delivery="ordered", tracking=None)
                card.pop("reason")
                state["next_card_number"] += 1
                view["replacement"] = _card_view(card)
            return view

    def request_pin_change(self, card_type: str) -> dict[str, Any]:
        """A PIN is never handled in the chat: the customer sets the new one in the app, through a short-lived link."""
        card = _card(self._load(), card_type)
        _usable(card_type, card)
        return {**_card_view(card), "channel": "the Northwind app",
                "expires_minutes": PIN_LINK_MINUTES}

    def send_transfer(self, recipient: str, amount: float, currency: str | None, execute_on: datetime.date,
                      today: datetime.date) -> dict[str, Any]:
        """Send now (completed at once, as SEPA Instant) or schedule for a later day (pending until then)."""
        if execute_on < today:
            raise BankError("a transfer cannot be dated in the past")
        cents = _cents(amount, currency)
        with self._changing() as state:
            if recipient not in state["recipients"]:
                known = ", ".join(state["recipients"])
                raise UnknownRecipient(f"{recipient} is not a saved recipient; saved recipients are {known}")
            balance = state["account"]["balance_cents"]
            if cents > balance:
                raise InsufficientFunds(f"insufficient funds: the balance is {money(balance)}, the transfer "
                                        f"{money(cents)}")
            same_day = sum(t["amount_cents"] for t in state["transfers"].values()
                           if t["execute_on"] == execute_on.isoformat())
            if same_day + cents > DAILY_TRANSFER_LIMIT_CENTS:
                raise LimitExceeded(f"the daily transfer limit of {money(DAILY_TRANSFER_LIMIT_CENTS)} would be "
                                    "exceeded")
            reference = f"TR-{state['next_reference']}"
            state["next_reference"] += 1
            state["account"]["balance_cents"] = balance - cents  # a scheduled transfer reserves the money
            transfer = {"recipient": recipient, "amount_cents": cents,
                        "status": "completed" if execute_on == today else "pending",
                        "execute_on": execute_on.isoformat()}
            state["transfers"][reference] = transfer
            return {**_transfer_view(reference, transfer), "balance": money(state["account"]["balance_cents"])}

    def top_up(self, amount: float, currency: str | None) -> dict[str, Any]:
        """Add money from the customer's linked card from another bank, paying that card network's fee."""
        cents = _cents(amount, currency)
        if not TOP_UP_MIN_CENTS <= cents <= TOP_UP_MAX_CENTS:
            raise LimitExceeded(f"a card top-up is between {money(TOP_UP_MIN_CENTS)} and {money(TOP_UP_MAX_CENTS)}")
        with self._changing() as state:
            source = state["top_up_card"]
            fee = round(cents * TOP_UP_FEE[source["network"]])
            state["account"]["balance_cents"] += cents - fee
            return {"amount": money(cents), "fee": money(fee), "balance": money(state["account"]["balance_cents"]),
                    "source": f"{source['network'].title()} card ending {source['last4']} ({source['bank']})"}

    # --- storage --------------------------------------------------------------------------------------

    @contextmanager
    def _changing(self) -> Iterator[dict[str, Any]]:
        """The state to change; written back only when the change completes without an error."""
        with _lock:
            state = self._load()
            yield state
            self._save(state)

    def _load(self) -> dict[str, Any]:
        if not self.path.is_file():
            return copy.deepcopy(SEED)
        data: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        return data

    def _save(self, state: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump(state, file, indent=2, sort_keys=True)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise



def _card(state: dict[str, Any], card_type: str) -> dict[str, Any]:
    card: dict[str, Any] | None = state["cards"].get(card_type.strip().casefold())
    if card is None:
        owned = " and ".join(f"a {kind.title()}" for kind in state["cards"])
        raise UnknownCard(f"there is no {card_type} card on this account (it has {owned})")
    return card


def _card_view(card: dict[str, Any]) -> dict[str, Any]:
    return {"name": f"{card['network']} ending {card['last4']}", "last4": card["last4"], "status": card["status"],
            "delivery": card["delivery"], "tracking": card["tracking"]}


def _usable(card_type: str, card: dict[str, Any]) -> None:
    if card["status"] == "lost":
        raise CardCancelled(f"the {card_type} card was reported {card.get('reason', 'lost')} and is cancelled")


def _transfer_view(reference: str, transfer: dict[str, Any]) -> dict[str, Any]:
    return {"reference": reference, "recipient": transfer["recipient"], "amount": money(transfer["amount_cents"]),
            "status": transfer["status"], "execute_on": transfer["execute_on"]}
