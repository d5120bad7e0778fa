"""The persistent hybrid knowledge index: chunks and their embeddings in SQLite beside the assistant, with
BM25 and the vector matrix rebuilt in memory on open so a search takes milliseconds."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import structlog
from tqdm import tqdm

from chatwright.config import RetrievalMode
from chatwright.errors import ConfigError
from chatwright.knowledge.bm25 import BM25
from chatwright.knowledge.chunker import Chunk, chunk_document
from chatwright.knowledge.fusion import reciprocal_rank_fusion, top_indices
from chatwright.knowledge.parsers import is_supported, parse_document
from chatwright.knowledge.passage import Passage
from chatwright.knowledge.terms import terms
from chatwright.models.embedder import Embedder

log = structlog.get_logger(__name__)

INDEX_FILE = "knowledge.sqlite3"
# Embedded at open and compared with the stored vector: vectors from another embedder are meaningless here.
_FINGERPRINT_TEXT = "How do I reset my password? (chatwright embedder fingerprint)"
_SAME_EMBEDDER = 0.999
# Raised whenever parsing or chunking changes what an unchanged file's chunks say (2: table rows that name their
# columns; 3: HTML cells spanning rows or columns fill each of them), so the next ingest re-chunks every file
# instead of keeping chunks made the old way.
_CHUNKING_VERSION = 3
_CHUNKS_PER_TRANSACTION = 256  # a crash loses at most this much embedding work
_ENCODE_BATCH = 32

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS files (source TEXT PRIMARY KEY, content_hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    source TEXT NOT NULL,
    ordinal INTEGER NOT NULL,
    title TEXT NOT NULL,
    heading_path TEXT NOT NULL,  -- JSON list
    text TEXT NOT NULL,
    terms TEXT NOT NULL,  -- JSON object: BM25 term counts, so opening needs no re-tokenising
    embedding BLOB NOT NULL,  -- float32, L2-normalised
    PRIMARY KEY (source, ordinal)
);
"""


@dataclass
class IngestReport:
    """What an ingest changed; sources are paths relative to the knowledge directory."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    embedded: int = 0  # chunks embedded by this ingest
    chunks: int = 0  # chunks in the index afterwards


@dataclass(frozen=True)
class _FileChunks:
    source: str
    content_hash: str
    chunks: list[Chunk]


@dataclass(frozen=True)
class _Searchable:
    """One consistent in-memory snapshot, swapped whole after an ingest so concurrent searches never mix."""

    chunks: list[Chunk]
    vectors: npt.NDArray[np.float32]  # one row per chunk
    bm25: BM25


class KnowledgeIndex:
    def __init__(self, path: Path, embedder: Embedder, fingerprint: npt.NDArray[np.float32]) -> None:
        """Use `KnowledgeIndex.open`."""
        self._path = path
        self._embedder = embedder
        self._fingerprint = fingerprint
        self._searchable = _Searchable([], np.zeros((0, fingerprint.size), dtype=np.float32), BM25([]))

    @classmethod
    def open(cls, index_dir: Path, embedder: Embedder) -> KnowledgeIndex:
        """Open or create the index in `index_dir`; if it was built with another embedder it is emptied,
        and the next ingest rebuilds it."""
        index_dir.mkdir(parents=True, exist_ok=True)
        fingerprint = embedder.encode([_FINGERPRINT_TEXT])[0].astype(np.float32)
        index = cls(index_dir / INDEX_FILE, embedder, fingerprint)
        with index._transaction() as db:
            db.executescript(_SCHEMA)
            row = db.execute("SELECT value FROM meta WHERE key = 'embedder'").fetchone()
            if row is not None and not index._same_embedder(np.frombuffer(row[0], dtype=np.float32)):
                log.warning("knowledge_index_embedder_changed", index=str(index._path),
                            action="index emptied; run ingest to rebuild it")
                db.execute("DELETE FROM chunks")
                db.execute("DELETE FROM files")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('embedder', ?)", (fingerprint.tobytes(),))
        index._load()
        return index

    def __len__(self) -> int:
        return len(self._searchable.chunks)

    def ingest(self, knowledge_dir: Path, *, chunk_tokens: int = 180) -> IngestReport:
        """Bring the index in line with `knowledge_dir`: parse and embed only new or changed files (by content
        hash), drop deleted ones, and skip unreadable ones with a warning."""
        if not knowledge_dir.is_dir():
            raise ConfigError("knowledge directory not found", path=knowledge_dir)
        with self._transaction() as db:
            stored: dict[str, str] = dict(db.execute("SELECT source, content_hash FROM files").fetchall())
            row = db.execute("SELECT value FROM meta WHERE key = 'chunking'").fetchone()
        chunking = f"{chunk_tokens} words, version {_CHUNKING_VERSION}"
        if stored and (row is None or row[0] != chunking):
            stored = {source: "" for source in stored}  # chunks made another way: every file counts as changed
        report = IngestReport()
        changed = _changed_files(knowledge_dir, stored, chunk_tokens, report)
        # A file that became unreadable no longer says what its old chunks say.
        stale = report.removed + [source for source, _ in report.skipped if source in stored]
        with self._transaction() as db:
            for source in stale:
                _delete_file(db, source)
        report.embedded = self._embed_and_store(changed)
        with self._transaction() as db:  # only now: an interrupted re-chunking is redone next time
            db.execute("DELETE FROM meta WHERE key = 'chunk_tokens'")  # how version 1 recorded the chunk size
            db.execute("INSERT OR REPLACE INTO meta VALUES ('chunking', ?)", (chunking,))
        self._load()
        report.chunks = len(self)
        log.info("knowledge_ingested", added=len(report.added), updated=len(report.updated),
                 removed=len(report.removed), unchanged=len(report.unchanged), skipped=len(report.skipped),
                 embedded=report.embedded, chunks=report.chunks)
        return report

    def search(self, query: str, *, top_k: int = 3, candidates: int = 20, rrf_k: int = 60,
               mode: RetrievalMode = "hybrid") -> list[Passage]:
        """The `top_k` chunks by reciprocal-rank fusion of the `candidates` best by BM25 and by cosine
        (or by one of them alone, with `mode`)."""
        searchable = self._searchable
        if not searchable.chunks or not query.strip():
            return []
        dense = searchable.vectors @ self._embedder.encode([query])[0]
        lexical = searchable.bm25.scores(terms(query))
        rankings = []
        if mode != "lexical":
            rankings.append(top_indices(dense, candidates))
        if mode != "dense":
            rankings.append(top_indices(lexical, candidates, positive_only=True))
        passages: list[Passage] = []
        for index, fused_score in reciprocal_rank_fusion(rankings, rrf_k)[:top_k]:
            chunk = searchable.chunks[index]
            passages.append(Passage(chunk_id=chunk.chunk_id, source=chunk.source, title=chunk.title,
                                    heading_path=chunk.heading_path, text=chunk.text, score=fused_score,
                                    dense_score=float(dense[index]), lexical_score=float(lexical[index])))
        return passages

    def _same_embedder(self, stored: npt.NDArray[np.float32]) -> bool:
        return stored.shape == self._fingerprint.shape and float(stored @ self._fingerprint) >= _SAME_EMBEDDER

    def _embed_and_store(self, changed: list[_FileChunks]) -> int:
        """Embed the chunks of changed files and replace their rows, whole files per transaction."""
        total = sum(len(file.chunks) for file in changed)
        with tqdm(total=total, desc="Embedding knowledge", unit="chunk", disable=None) as progress:
            for group in _groups(changed):
                texts = [chunk.index_text for file in group for chunk in file.chunks]
                batches: list[npt.NDArray[np.float32]] = []
                for start in range(0, len(texts), _ENCODE_BATCH):
                    batches.append(self._embedder.encode(texts[start:start + _ENCODE_BATCH]))
                    progress.update(len(batches[-1]))
                vectors = iter(np.concatenate(batches).astype(np.float32))
                with self._transaction() as db:
                    for file in group:
                        _delete_file(db, file.source)
                        db.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?)",
                                       [_chunk_row(chunk, next(vectors)) for chunk in file.chunks])
                        db.execute("INSERT INTO files VALUES (?, ?)", (file.source, file.content_hash))
        return total

    def _load(self) -> None:
        with self._transaction() as db:
            rows = db.execute("SELECT source, ordinal, title, heading_path, text, terms, embedding "
                              "FROM chunks ORDER BY source, ordinal").fetchall()
        chunks = [Chunk(source=row[0], ordinal=row[1], title=row[2], heading_path=tuple(json.loads(row[3])),
                        text=row[4]) for row in rows]
        vectors = np.frombuffer(b"".join(row[6] for row in rows), dtype=np.float32)
        vectors = vectors.reshape(len(rows), self._fingerprint.size)
        self._searchable = _Searchable(chunks=chunks, vectors=vectors,
                                       bm25=BM25([Counter(json.loads(row[5])) for row in rows]))

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A short-lived connection: committed on success, rolled back on error, so a crash leaves the last
        consistent state."""
        connection = sqlite3.connect(self._path)
        try:
            with connection:
                yield connection
        finally:
            connection.close()


def _knowledge_files(root: Path) -> Iterator[tuple[str, Path]]:
    """(source, path) of each supported file below `root`, sorted, hidden files and folders left out."""
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if not is_supported(path):
            log.debug("knowledge_file_ignored", file=str(path), reason="unsupported file type")
            continue
        yield relative.as_posix(), path


def _changed_files(knowledge_dir: Path, stored: dict[str, str], chunk_tokens: int,
                   report: IngestReport) -> list[_FileChunks]:
    """Chunks of the files whose content hash differs from `stored`; fills in every list of `report`."""
    changed: list[_FileChunks] = []
    found: set[str] = set()
    for source, path in _knowledge_files(knowledge_dir):
        found.add(source)
        try:
            data = path.read_bytes()
            content_hash = hashlib.sha256(data).hexdigest()
            if stored.get(source) == content_hash:
                report.unchanged.append(source)
                continue
            chunks = chunk_document(parse_document(path, data, source), chunk_tokens)
            if not chunks:
                raise ConfigError("no text found in knowledge file", path=path)
        except (OSError, ConfigError) as error:
            log.warning("knowledge_file_skipped", file=str(path), reason=str(error))
            report.skipped.append((source, str(error)))
            continue
        (report.updated if source in stored else report.added).append(source)
        changed.append(_FileChunks(source, content_hash, chunks))
    report.removed = sorted(set(stored) - found)
    return changed


def _groups(files: list[_FileChunks]) -> Iterator[list[_FileChunks]]:
    group: list[_FileChunks] = []
    size = 0
    for file in files:
        group.append(file)
        size += len(file.chunks)
        if size >= _CHUNKS_PER_TRANSACTION:
            yield group
            group, size = [], 0
    if group:
        yield group


def _chunk_row(chunk: Chunk, vector: npt.NDArray[np.float32]) -> tuple[str | int | bytes, ...]:
    return (chunk.source, chunk.ordinal, chunk.title, json.dumps(chunk.heading_path), chunk.text,
            json.dumps(Counter(terms(chunk.index_text))), vector.tobytes())


def _delete_file(db: sqlite3.Connection, source: str) -> None:
    db.execute("DELETE FROM chunks WHERE source = ?", (source,))
    db.execute("DELETE FROM files WHERE source = ?", (source,))
