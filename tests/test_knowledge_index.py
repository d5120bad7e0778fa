"""Ingest a real knowledge base with the real MiniLM embedder, search it, keep it in step with the files."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.feature_extraction.text import HashingVectorizer
from structlog.testing import capture_logs

from chatwright.errors import ConfigError
from chatwright.knowledge import KnowledgeIndex
from chatwright.models.embedder import Embedder
from chatwright.models.registry import load_embedder
from knowledge_samples import FEES_MD, write_bank_knowledge


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return load_embedder("packaged:all-minilm-l6-v2")


@pytest.fixture(scope="module")
def bank_index(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> KnowledgeIndex:
    root = tmp_path_factory.mktemp("bank")
    index = KnowledgeIndex.open(root / "index", embedder)
    index.ingest(write_bank_knowledge(root / "knowledge"))
    return index


@pytest.mark.parametrize(("question", "source", "heading"), [
    ("How much do you charge if I spend more money than I have?", "fees.md", "Overdraft"),
    ("Someone stole my wallet, how do I stop my card from being used?", "cards.html", None),
    ("Can I send money to a bank in another country?", "transfers.txt", None),
    ("I forgot my password for internet banking", "faq.csv", "How do I reset my online banking password?"),
    ("When are you open?", "faq.csv", "What are your opening hours?"),
])
def test_paraphrased_questions_find_the_right_passage(bank_index: KnowledgeIndex, question: str, source: str,
                                                      heading: str | None) -> None:
    best = bank_index.search(question, top_k=3)[0]

    assert best.source == source
    if heading is not None:
        assert best.heading_path[-1] == heading


def test_passages_carry_provenance_and_scores(bank_index: KnowledgeIndex) -> None:
    passages = bank_index.search("What is the overdraft interest rate?", top_k=3, candidates=10, rrf_k=60)

    best = passages[0]
    assert (best.source, best.title, best.heading_path) == ("fees.md", "Fees and charges",
                                                            ("Fees and charges", "Overdraft"))
    assert best.chunk_id == "fees.md#2"
    assert "9.9% per year" in best.text and not best.text.startswith("Fees and charges")  # raw text shown
    assert 0.3 < best.dense_score <= 1.0 and best.lexical_score > 0
    assert best.score == pytest.approx(2 / 61)  # first by both retrievers
    assert [p.score for p in passages] == sorted((p.score for p in passages), reverse=True)


def test_exact_product_code_is_found_by_its_terms(bank_index: KnowledgeIndex) -> None:
    passages = bank_index.search("NW-TD-7741", top_k=3)

    assert passages[0].source == "products.pdf" and "NW-TD-7741" in passages[0].text
    assert passages[0].lexical_score > 0
    assert all(p.lexical_score == 0 for p in passages[1:])  # no other chunk has the code's terms


def test_blank_query_and_empty_index_return_nothing(tmp_path: Path, embedder: Embedder,
                                                    bank_index: KnowledgeIndex) -> None:
    assert bank_index.search("   ") == []
    assert KnowledgeIndex.open(tmp_path / "index", embedder).search("fees") == []


def test_reingest_touches_only_changed_new_and_deleted_files(tmp_path: Path, embedder: Embedder) -> None:
    knowledge = write_bank_knowledge(tmp_path / "knowledge")
    index = KnowledgeIndex.open(tmp_path / "index", embedder)
    first = index.ingest(knowledge)
    assert sorted(first.added) == ["cards.html", "faq.csv", "fees.md", "products.pdf", "transfers.txt"]
    assert first.embedded == first.chunks == len(index)

    again = index.ingest(knowledge)
    assert (again.added, again.updated, again.removed, again.embedded) == ([], [], [], 0)
    assert len(again.unchanged) == 5 and again.chunks == first.chunks

    (knowledge / "fees.md").write_text(FEES_MD.replace("4.50 EUR per month", "6.75 EUR per month"))
    (knowledge / "transfers.txt").unlink()
    (knowledge / "sub").mkdir()
    (knowledge / "sub" / "loans.md").write_text("# Loans\n\nPersonal loans start at 5.9% interest.\n")
    changed = index.ingest(knowledge)

    assert changed.updated == ["fees.md"] and changed.added == ["sub/loans.md"]
    assert changed.removed == ["transfers.txt"]
    assert changed.embedded == 4 + 1  # the four sections of fees.md and the one of loans.md
    assert "6.75 EUR" in index.search("monthly account maintenance price", top_k=1)[0].text
    assert all(p.source != "transfers.txt" for p in index.search("international SWIFT transfer", top_k=20))
    assert index.search("personal loan interest", top_k=1)[0].source == "sub/loans.md"


def test_unreadable_files_are_skipped_with_a_warning_and_ingest_goes_on(tmp_path: Path,
                                                                        embedder: Embedder) -> None:
    knowledge = write_bank_knowledge(tmp_path / "knowledge")
    (knowledge / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf\n")
    (knowledge / "garbage.csv").write_bytes(b"\x00\xffname;;\x9c\x80\nrubbish\xfe\n")
    (knowledge / "notes.docx").write_bytes(b"PK\x03\x04 not supported")
    (knowledge / ".hidden.md").write_text("# Secret\n\nNot for customers.\n")
    index = KnowledgeIndex.open(tmp_path / "index", embedder)

    with capture_logs() as logs:
        report = index.ingest(knowledge)

    assert [source for source, _ in report.skipped] == ["broken.pdf", "garbage.csv"]
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert sorted(Path(entry["file"]).name for entry in warnings) == ["broken.pdf", "garbage.csv"]
    assert len(report.added) == 5 and index.search("stolen card", top_k=1)[0].source == "cards.html"
    assert all(p.source != ".hidden.md" for p in index.search("secret", top_k=20))


def test_a_file_that_becomes_unreadable_loses_its_old_chunks(tmp_path: Path, embedder: Embedder) -> None:
    knowledge = write_bank_knowledge(tmp_path / "knowledge")
    index = KnowledgeIndex.open(tmp_path / "index", embedder)
    index.ingest(knowledge)

    (knowledge / "faq.csv").write_text("title,body\nHours,Nine to five\n")
    report = index.ingest(knowledge)

    [(source, reason)] = report.skipped
    assert source == "faq.csv" and "question and answer" in reason
    assert all(p.source != "faq.csv" for p in index.search("reset my password", top_k=20))


def test_index_survives_reopening_from_disk(tmp_path: Path, embedder: Embedder) -> None:
    knowledge = write_bank_knowledge(tmp_path / "knowledge")
    first = KnowledgeIndex.open(tmp_path / "index", embedder)
    first.ingest(knowledge)
    question = "How do I block my card?"

    reopened = KnowledgeIndex.open(tmp_path / "index", embedder)

    assert len(reopened) == len(first)
    assert reopened.search(question) == first.search(question)
    assert reopened.ingest(knowledge).embedded == 0


def test_changing_the_chunk_size_rechunks_every_file(tmp_path: Path, embedder: Embedder) -> None:
    knowledge = tmp_path / "knowledge"
    knowledge.mkdir()
    (knowledge / "fees.md").write_text(FEES_MD)
    index = KnowledgeIndex.open(tmp_path / "index", embedder)
    index.ingest(knowledge, chunk_tokens=180)

    report = index.ingest(knowledge, chunk_tokens=32)

    assert report.updated == ["fees.md"] and report.embedded == report.chunks
    assert all(len(p.text.split()) <= 32 for p in index.search("overdraft", top_k=20))


def test_an_index_chunked_by_an_earlier_version_is_rechunked(tmp_path: Path, embedder: Embedder) -> None:
    """Unchanged files keep their content hash, so only the recorded chunking version says their chunks are old."""
    knowledge = tmp_path / "knowledge"
    knowledge.mkdir()
    (knowledge / "fees.md").write_text(FEES_MD)
    index = KnowledgeIndex.open(tmp_path / "index", embedder)
    index.ingest(knowledge)
    assert index.ingest(knowledge).unchanged == ["fees.md"]
    with sqlite3.connect(tmp_path / "index" / "knowledge.sqlite3") as db:  # as version 1 left it
        db.execute("DELETE FROM meta WHERE key = 'chunking'")
        db.execute("INSERT INTO meta VALUES ('chunk_tokens', '180')")

    report = index.ingest(knowledge)

    assert report.updated == ["fees.md"] and report.embedded == report.chunks
    assert index.ingest(knowledge).unchanged == ["fees.md"]


class _HashingEmbedder:
    """A genuinely different embedder (hashed character n-grams), standing for a model swap."""

    dim = 256

    def __init__(self) -> None:
        self._vectorizer = HashingVectorizer(n_features=self.dim, analyzer="char_wb", ngram_range=(3, 4))

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> npt.NDArray[np.float32]:
        return np.asarray(self._vectorizer.transform(list(texts)).toarray(), dtype=np.float32)


def test_an_index_built_with_another_embedder_is_rebuilt(tmp_path: Path, embedder: Embedder) -> None:
    knowledge = write_bank_knowledge(tmp_path / "knowledge")
    KnowledgeIndex.open(tmp_path / "index", embedder).ingest(knowledge)

    with capture_logs() as logs:
        swapped = KnowledgeIndex.open(tmp_path / "index", _HashingEmbedder())

    assert len(swapped) == 0 and any(e["event"] == "knowledge_index_embedder_changed" for e in logs)
    report = swapped.ingest(knowledge)
    assert len(report.added) == 5 and report.embedded == report.chunks > 0
    assert swapped.search("NW-TD-7741", top_k=1)[0].source == "products.pdf"


def test_missing_knowledge_directory_is_a_clear_error(tmp_path: Path, embedder: Embedder) -> None:
    index = KnowledgeIndex.open(tmp_path / "index", embedder)

    with pytest.raises(ConfigError, match="knowledge directory not found"):
        index.ingest(tmp_path / "nowhere")

