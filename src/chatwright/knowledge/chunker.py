"""Cut documents into retrieval chunks that stay inside one section and carry their context."""

from __future__ import annotations

from dataclasses import dataclass

from chatwright.knowledge.documents import Document, Section
from chatwright.knowledge.sentences import join_sentences, split_sentences


@dataclass(frozen=True)
class Chunk:
    source: str
    ordinal: int  # position within its document
    title: str
    heading_path: tuple[str, ...]
    text: str  # as shown to the user and the model

    @property
    def chunk_id(self) -> str:
        return f"{self.source}#{self.ordinal}"

    @property
    def index_text(self) -> str:
        """Text that is embedded and indexed: title and headings first, so a chunk matches questions about
        its topic even when its own sentences never name it."""
        context = [self.title, *(heading for heading in self.heading_path if heading != self.title)]
        return "\n".join([" > ".join(part for part in context if part), self.text])


def chunk_document(document: Document, chunk_tokens: int) -> list[Chunk]:
    """Chunks of at most about `chunk_tokens` words, in document order."""
    chunks: list[Chunk] = []
    for section in document.sections:
        for text in _split_section(section, chunk_tokens):
            chunks.append(Chunk(source=document.source, ordinal=len(chunks), title=document.title,
                                heading_path=section.heading_path, text=text))
    return chunks


def _split_section(section: Section, chunk_tokens: int) -> list[str]:
    """Whole section if short; otherwise sentence-aligned windows, each repeating the previous window's last
    sentence so a fact spanning the cut is still whole somewhere."""
    if _words(section.text) <= chunk_tokens:
        return [section.text]
    sentences = [piece for sentence in split_sentences(section.text)
                 for piece in _cap(sentence, chunk_tokens)]
    windows: list[list[str]] = [[]]
    size = 0
    for sentence in sentences:
        words = _words(sentence)
        if windows[-1] and size + words > chunk_tokens:
            overlap = windows[-1][-1]
            keep_overlap = len(windows[-1]) > 1 and _words(overlap) + words <= chunk_tokens
            windows.append([overlap] if keep_overlap else [])
            size = _words(overlap) if keep_overlap else 0
        windows[-1].append(sentence)
        size += words
    return [join_sentences(window) for window in windows]


def _cap(sentence: str, chunk_tokens: int) -> list[str]:
    """A run-on "sentence" (a table row, a long list) cut into pieces that fit a chunk."""
    words = sentence.split()
    return [" ".join(words[start:start + chunk_tokens]) for start in range(0, len(words), chunk_tokens)]


def _words(text: str) -> int:
    return len(text.split())
