"""The events one turn adds to a conversation's log, and the state they lead to.

A turn may combine several moves (an apology, a digression's answer between interrupting and resuming a flow,
a hand-off after a flow's failure); collecting them in one place keeps the state each move sees up to date and
gives the turn's reply text as what the bot said, in order.
"""

from __future__ import annotations

from collections.abc import Sequence

from chatwright.dialogue.events import BotMessage, Event, EventRecorder, Handoff, replay
from chatwright.dialogue.flow_runner import FlowTurn
from chatwright.dialogue.handoff_summary import with_last_messages


class TurnEvents(EventRecorder):
    def __init__(self, earlier: Sequence[Event]) -> None:
        """`earlier`: the conversation's stored events, which give the state the turn starts from."""
        self._earlier = tuple(earlier)
        super().__init__(replay(self._earlier))

    def record(self, turn: FlowTurn) -> tuple[str, ...]:
        """Append a flow runner's events (hand-offs get the customer's last messages); returns what it said."""
        for event in turn.events:
            self.events.append(with_last_messages(event, (*self._earlier, *self.events))
                               if isinstance(event, Handoff) else event)
        self.state = turn.state
        return turn.messages

    @property
    def messages(self) -> list[str]:
        return [event.text for event in self.events if isinstance(event, BotMessage)]

    @property
    def handed_off(self) -> bool:
        return any(isinstance(event, Handoff) for event in self.events)
