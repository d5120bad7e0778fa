"""Long passages are cut to the sentences that answer the question, with the real MiniLM embedder."""

from __future__ import annotations

import pytest

from chatwright.knowledge import Passage, select_for_passages
from chatwright.knowledge.sentences import split_sentences
from chatwright.models.embedder import Embedder
from chatwright.models.registry import load_embedder

LONG_TEXT = (
    "Northwind Bank was founded in 1921 in a small harbour town. "
    "Its first branch served fishermen and local traders. "
    "Over the decades it grew into a national bank with two hundred branches. "
    "The bank moved its headquarters to the capital in 1968. "
    "Today, a lost debit card can be blocked at any time by calling +31 20 555 0100. "
    "The bank sponsors the regional rowing club every summer. "
    "Its logo, a blue compass, was redesigned in 2004. "
    "Annual reports are published every March."
)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return load_embedder("packaged:all-minilm-l6-v2")


def _passage(text: str, chunk_id: str = "history.md#0") -> Passage:
    return Passage(chunk_id=chunk_id, source="history.md", title="History", heading_path=(), text=text)


def test_long_passage_keeps_the_answer_sentence_in_original_order(embedder: Embedder) -> None:
    [selected] = select_for_passages("What number do I call to block my lost card?", [_passage(LONG_TEXT)],
                                     embedder, max_sentences=2)

    kept = split_sentences(selected.text)
    assert len(kept) == 2
    assert "Today, a lost debit card can be blocked at any time by calling +31 20 555 0100." in kept
    original = split_sentences(LONG_TEXT)
    assert [original.index(sentence) for sentence in kept] == sorted(original.index(s) for s in kept)
    assert selected.chunk_id == "history.md#0" and selected.source == "history.md"


def test_short_passages_come_back_unchanged(embedder: Embedder) -> None:
    short = _passage("Fees are low. Cards are free.", chunk_id="a#0")
    long = _passage(LONG_TEXT, chunk_id="b#0")

    selected = select_for_passages("When was the logo redesigned?", [short, long], embedder, max_sentences=3)

    assert selected[0] == short
    assert "redesigned in 2004" in selected[1].text and len(split_sentences(selected[1].text)) == 3


def test_a_short_best_sentence_brings_its_neighbour(embedder: Embedder) -> None:
    text = ("Opening hours. Monday to Friday from nine to five, Saturday until noon. "
            "Parking is available behind the building. The coffee machine is on the second floor. "
            "Staff wear green badges.")

    [selected] = select_for_passages("opening hours", [_passage(text)], embedder, max_sentences=1)

    assert selected.text == "Opening hours. Monday to Friday from nine to five, Saturday until noon."
