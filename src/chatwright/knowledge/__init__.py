"""The knowledge base: ingest files into a persistent hybrid index, retrieve passages, trim them to the point.
"""

from chatwright.knowledge.index import IngestReport, KnowledgeIndex
from chatwright.knowledge.passage import Passage
from chatwright.knowledge.sentence_selection import select_for_passages

__all__ = ["IngestReport", "KnowledgeIndex", "Passage", "select_for_passages"]
