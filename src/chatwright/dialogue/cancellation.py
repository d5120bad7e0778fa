"""Recognising "forget it", "cancel", "never mind" without training data.

A cancel intent in intents.yaml catches paraphrases, but a project may have none, and a slot that takes free
text would otherwise store "never mind" as its value. The built-in phrases must make up the whole message, apart
from filler words, so "cancel my card" (a request) or "stop payments" are not read as giving up.
"""

from __future__ import annotations

import re

CANCEL_PHRASES = frozenset({
    "cancel", "cancel that", "cancel it", "cancel this", "cancel everything", "forget it", "forget that",
    "forget about it", "forget this", "never mind", "nevermind", "nvm", "stop", "stop it", "stop that", "abort",
    "quit", "changed my mind", "i changed my mind", "i've changed my mind", "i have changed my mind",
    "don't bother", "dont bother", "leave it", "drop it", "not anymore", "i don't want to anymore",
    "i dont want to anymore", "let's not", "lets not", "scratch that",
})
FILLERS = frozenset({"no", "oh", "ok", "okay", "please", "just", "actually", "thanks", "then", "well", "um", "uh",
                     "hmm", "sorry", "ah", "wait"})
_WORDS = re.compile(r"[^\w']+")


def is_cancel_phrase(text: str) -> bool:
    words = _WORDS.sub(" ", text.casefold()).split()
    while words and words[0] in FILLERS:
        words.pop(0)
    while words and words[-1] in FILLERS:
        words.pop()
    return " ".join(words) in CANCEL_PHRASES
