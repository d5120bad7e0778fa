"""Sentence splitting, chunking, index terms, BM25 and rank fusion: the text machinery under retrieval."""

from __future__ import annotations

import itertools
import time
from collections import Counter

import numpy as np

from chatwright.knowledge.bm25 import BM25
from chatwright.knowledge.chunker import chunk_document
from chatwright.knowledge.documents import Document, Section
from chatwright.knowledge.fusion import reciprocal_rank_fusion, top_indices
from chatwright.knowledge.sentences import join_sentences, split_sentences
from chatwright.knowledge.terms import terms


def test_sentences_survive_abbreviations_decimals_and_initials() -> None:
    text = ("Mr. Smith pays 2.5% interest, e.g. on loans. Dr. J. Doe agreed! Is it ready? "
            "See form No. 5 for details. The answer is no. We decided.")

    assert split_sentences(text) == [
        "Mr. Smith pays 2.5% interest, e.g. on loans.",
        "Dr. J. Doe agreed!",
        "Is it ready?",
        "See form No. 5 for details.",
        "The answer is no.",
        "We decided.",
    ]


def test_list_items_and_paragraphs_are_separate_but_wrapped_lines_join() -> None:
    text = "Steps to follow:\n- Open the app\n- Tap Cards\n\nThis paragraph is\nwrapped over lines. Done."

    sentences = split_sentences(text)

    assert sentences == ["Steps to follow:", "- Open the app", "- Tap Cards",
                         "This paragraph is wrapped over lines.", "Done."]
    assert join_sentences(sentences[:3]) == "Steps to follow:\n- Open the app\n- Tap Cards"
    assert join_sentences(sentences[2:4]) == "- Tap Cards\nThis paragraph is wrapped over lines."  # not run on


def _document(*sections: Section) -> Document:
    return Document(source="guide.md", title="Guide", sections=list(sections))


def test_short_sections_stay_whole_and_chunks_never_cross_sections() -> None:
    document = _document(Section(("Guide", "Fees"), "Fees are low."),
                         Section(("Guide", "Cards"), "Cards are free."))

    chunks = chunk_document(document, chunk_tokens=50)

    assert [(chunk.heading_path, chunk.text) for chunk in chunks] == [
        (("Guide", "Fees"), "Fees are low."), (("Guide", "Cards"), "Cards are free.")]
    assert [chunk.chunk_id for chunk in chunks] == ["guide.md#0", "guide.md#1"]
    assert chunks[0].index_text == "Guide > Fees\nFees are low."  # the title is not repeated


def test_long_sections_split_on_sentences_with_one_sentence_overlap() -> None:
    sentences = [f"Sentence number {n} has exactly seven words." for n in range(10)]
    chunks = chunk_document(_document(Section(("Long",), " ".join(sentences))), chunk_tokens=32)

    assert len(chunks) > 2
    for chunk in chunks:
        assert len(chunk.text.split()) <= 32
        assert split_sentences(chunk.text)[0] in sentences  # cut only between sentences
    for before, after in itertools.pairwise(chunks):
        assert split_sentences(after.text)[0] == split_sentences(before.text)[-1]
    covered = {sentence for chunk in chunks for sentence in split_sentences(chunk.text)}
    assert covered == set(sentences)


def test_run_on_text_without_sentence_ends_is_still_cut_to_size() -> None:
    chunks = chunk_document(_document(Section((), " ".join(["word"] * 100))), chunk_tokens=40)

    assert [len(chunk.text.split()) for chunk in chunks] == [40, 40, 20]


def test_terms_drop_stopwords_and_match_word_variants() -> None:
    assert terms("What are the fees?") == terms("fee")
    assert terms("charged") == terms("charges") == terms("charge")
    assert terms("Blocking my cards") == terms("blocked card")
    assert terms("NW-TD-7741") == ["nw", "td", "7741"]
    assert "interest" in terms("the interest rate")


def test_bm25_prefers_rare_terms_and_matching_documents() -> None:
    documents = ["the card fee is low", "the card is blue", "the card was blocked",
                 "transfers abroad cost a fee"]
    bm25 = BM25([Counter(terms(text)) for text in documents])

    scores = bm25.scores(terms("blocked card"))

    assert int(np.argmax(scores)) == 2
    assert scores[3] == 0.0
    assert bm25.scores(terms("unknown words")).tolist() == [0.0, 0.0, 0.0, 0.0]


def test_fusion_rewards_agreement_between_rankings() -> None:
    dense = np.array([0.9, 0.1, 0.5, 0.4], dtype=np.float32)
    lexical = np.array([0.0, 3.0, 2.0, 0.0], dtype=np.float32)

    rankings = [top_indices(dense, 3), top_indices(lexical, 3, positive_only=True)]
    fused = reciprocal_rank_fusion(rankings, rrf_k=60)

    assert rankings == [[0, 2, 3], [1, 2]]
    assert fused[0][0] == 2  # second in both beats first in one
    assert fused[0][1] == 2 / 62


def test_ranking_thousands_of_chunks_takes_milliseconds() -> None:
    rng = np.random.default_rng(0)
    bm25 = BM25([Counter(f"term{n}" for n in rng.integers(0, 5000, size=120)) for _ in range(5000)])
    vectors = rng.standard_normal((5000, 384)).astype(np.float32)
    query = vectors[42] / np.linalg.norm(vectors[42])

    start = time.perf_counter()
    for _ in range(10):
        rankings = [top_indices(vectors @ query, 20),
                    top_indices(bm25.scores(["term1", "term2", "term3"]), 20, positive_only=True)]
        reciprocal_rank_fusion(rankings, rrf_k=60)
    per_query = (time.perf_counter() - start) / 10

    assert rankings[0][0] == 42
    assert per_query < 0.02, f"{per_query * 1000:.1f} ms per query"
