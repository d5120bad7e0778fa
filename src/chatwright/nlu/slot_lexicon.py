"""The values each slot was given in training, as a bonus on the tagger's word scores.

A fine-tuned tagger reads a name's slot from its context and its sub-words, so a name it was trained on under
one slot (an album, a playlist, a city) can still come out under a neighbouring one, or be cut short, in a new
message. The training values keep that evidence, as the lookup tables of classic slot fillers and gazetteer
features of NER taggers do: where a message repeats a value, its words' tags for that slot gain a bonus in
proportion to how often those words were that slot wherever they occurred in training (little for words that
were mostly plain words). How much the bonus counts is fitted on validation data after training, like the
neighbour vote's share (nlu/neighbours.py), and 0 switches it off where it does not help.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from chatwright.nlu.bio import tagged_runs

LEXICON_FILE = "slot_lexicon.json"
LONGEST_VALUE = 8
"""Words in the longest value looked up; longer ones are rare and the tagger finds them by their context."""
_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
"""Candidate weights of the bonus, in log-probability, from none up. At most 4: a value always seen as one slot
multiplies that slot's odds by e^4 (about 55), enough to tip a close call, not to overrule a tag the tagger is
sure of."""

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class SlotLexicon:
    """Lower-cased value words → slot → the share of the words' occurrences in training tagged as that slot."""

    shares: dict[tuple[str, ...], dict[str, float]]

    @classmethod
    def of(cls, messages: Sequence[tuple[Sequence[str], Sequence[str]]]) -> SlotLexicon:
        """The lexicon of tagged training messages, each as (words, BIO tags)."""
        tagged: defaultdict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
        lowered = [[word.lower() for word in words] for words, _ in messages]
        for words, (_, tags) in zip(lowered, messages, strict=True):
            for start, end, slot in tagged_runs(tags):
                if end - start <= LONGEST_VALUE:
                    tagged[tuple(words[start:end])][slot] += 1
        occurrences: Counter[tuple[str, ...]] = Counter()
        for words in lowered:
            occurrences.update(value for value in _phrases(words) if value in tagged)
        return cls({value: {slot: count / occurrences[value] for slot, count in slots.items()}
                    for value, slots in tagged.items()})

    def bonus(self, words: Sequence[str], tags: Sequence[str]) -> FloatArray:
        """Per word and tag (words × tags), the largest share of a training value covering the word as that tag:
        B- on a value's first word, I- on the rest."""
        index = {tag: position for position, tag in enumerate(tags)}
        lowered = [word.lower() for word in words]
        bonus = np.zeros((len(words), len(tags)), dtype=np.float32)
        for start in range(len(lowered)):
            for end in range(start + 1, min(len(lowered), start + LONGEST_VALUE) + 1):
                for slot, share in self.shares.get(tuple(lowered[start:end]), {}).items():
                    if f"B-{slot}" not in index:
                        continue
                    first, rest = index[f"B-{slot}"], index[f"I-{slot}"]
                    bonus[start, first] = max(bonus[start, first], share)
                    bonus[start + 1:end, rest] = np.maximum(bonus[start + 1:end, rest], share)
        return bonus

    def save(self, directory: Path) -> None:
        entries = [{"value": list(value), "slots": slots} for value, slots in sorted(self.shares.items())]
        (directory / LEXICON_FILE).write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> SlotLexicon:
        entries = json.loads((directory / LEXICON_FILE).read_text(encoding="utf-8"))
        return cls({tuple(entry["value"]): dict(entry["slots"]) for entry in entries})


def fit_lexicon_weight(decode: Callable[[float], Sequence[tuple[int, Sequence[int]]]],
                       gold: Sequence[tuple[int, Sequence[int]]]) -> float:
    """The weight whose decoding (label, tags per message) gets the most validation messages wholly right; among
    equals, the most tags right, then the smallest weight (no bonus when it never helps)."""
    if not gold:
        return 0.0

    def quality(weight: float) -> tuple[int, int, float]:
        decoded = decode(weight)
        whole = sum(label == want_label and list(tags) == list(want_tags)
                    for (label, tags), (want_label, want_tags) in zip(decoded, gold, strict=True))
        tags_right = sum(sum(a == b for a, b in zip(tags, want_tags, strict=True))
                         for (_, tags), (_, want_tags) in zip(decoded, gold, strict=True))
        return whole, tags_right, -weight

    return max(_WEIGHTS, key=quality)


def _phrases(words: Sequence[str]) -> list[tuple[str, ...]]:
    return [tuple(words[start:end]) for start in range(len(words))
            for end in range(start + 1, min(len(words), start + LONGEST_VALUE) + 1)]
