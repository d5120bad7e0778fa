"""Fixed replies for turns that need no model (small talk, handoff, abstention, clarifying, cancelling),
overridable per assistant."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

DEFAULT_RESPONSES: dict[str, tuple[str, ...]] = {
    "greeting": ("Hello! I'm {name}. How can I help you today?",),
    "thanks": ("You're welcome! Is there anything else I can help with?",),
    "goodbye": ("Goodbye, and thanks for getting in touch!",),
    "human": ("I'll connect you with a member of our support team. Please stay in this chat; "
              "a person will reply here as soon as possible.",),
    "out_of_scope": ("Sorry, I can only help with questions about {name}'s products and services.",),
    "dont_know": ("I'm sorry, I couldn't find that in our help centre, so I don't want to guess. "
                  "Would you like me to connect you with a member of our support team?",),
    "cannot_answer": ("Sorry, I can't answer right now because of a technical problem. "
                      "Please try again in a moment, or ask to speak to a person.",),
    "sorry": ("I'm sorry about the trouble.",),
    "clarify": ("Do you want to {options}?",),  # {options}: "block your card or report a stolen card"
    "cancelled": ("OK, I've cancelled that.",),
    "nothing_to_cancel": ("OK. Is there anything else I can help with?",),
}


class ResponseBook:
    """Chooses a reply text for a key; variants rotate with the turn number so repeats don't sound canned."""

    def __init__(self, overrides: Mapping[str, Sequence[str]], assistant_name: str) -> None:
        self._responses: dict[str, tuple[str, ...]] = dict(DEFAULT_RESPONSES)
        self._responses.update({key: tuple(texts) for key, texts in overrides.items() if texts})
        self._name = assistant_name

    def pick(self, key: str, turn_number: int = 0) -> str:
        variants = self._responses[key]
        return variants[turn_number % len(variants)].replace("{name}", self._name)
