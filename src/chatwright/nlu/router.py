"""Routes a message by its nearest intent examples: knowledge question, small talk, handoff or out of scope.

Similarity to the owner's examples needs no training run, so a new assistant routes sensibly from its first
message. Only a confident match leaves the knowledge route; anything unsure goes to retrieval, where the support
check decides whether the knowledge base can answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from chatwright.dialogue.types import Route, Understanding
from chatwright.models.embedder import Embedder
from chatwright.nlu.ranking import rank_intents
from chatwright.nlu.training_data import NluData

_NEIGHBOURS = 3  # examples averaged per intent: robust to one odd example
KNOWLEDGE_INTENT = "knowledge_question"


@dataclass(frozen=True)
class IntentExamples:
    intent: str
    route: Route
    examples: tuple[str, ...]


class EmbeddingRouter:
    def __init__(self, intents: Sequence[IntentExamples], embedder: Embedder, *, min_confidence: float) -> None:
        self._embedder = embedder
        self._min_confidence = min_confidence
        self._intents = [intent for intent in intents if intent.examples]
        texts = [text for intent in self._intents for text in intent.examples]
        self._owner = np.array([i for i, intent in enumerate(self._intents) for _ in intent.examples], dtype=np.int64)
        self._vectors: npt.NDArray[np.float32] = (
            embedder.encode(texts) if texts else np.zeros((0, embedder.dim), dtype=np.float32))

    def understand(self, message: str) -> Understanding:
        if not self._intents:
            return Understanding(intent=KNOWLEDGE_INTENT, confidence=1.0, route=Route.KNOWLEDGE)
        query = self._embedder.encode([message])[0]
        similarities = self._vectors @ query
        scores = np.array([np.sort(similarities[self._owner == i])[-_NEIGHBOURS:].mean()
                           for i in range(len(self._intents))])
        ranking = rank_intents([intent.intent for intent in self._intents], scores)
        intent = self._intents[int(np.argmax(scores))]
        confidence = ranking[0].confidence
        route = intent.route
        if route is not Route.KNOWLEDGE and confidence < self._min_confidence:
            route = Route.KNOWLEDGE
        return Understanding(intent=intent.intent, confidence=confidence, route=route, ranking=ranking)


def routing_intents(data: NluData) -> list[IntentExamples]:
    """The examples of every intent, as plain text, with the route each intent takes."""
    return [IntentExamples(intent=spec.name, route=spec.route, examples=tuple(e.text for e in spec.examples))
            for spec in data.intents.values()]
