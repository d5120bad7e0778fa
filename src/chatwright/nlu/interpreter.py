"""Understanding a message: intent (or out of scope) with runners-up, entities and slots, and sentiment.

A project with a trained model (`chatwright train nlu`) routes on it; a fresh project routes by similarity to
its examples, so it works before any training. Either way the entities come from the trained tagger plus
spaCy, regexes and lookups, and every message gets a sentiment from the project's model or the packaged one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import structlog

from chatwright.dialogue.types import EntityValue, Route, Understanding
from chatwright.models.embedder import Embedder
from chatwright.nlu.entity_extractor import EntityExtractor
from chatwright.nlu.intent_classifier import IntentSlotClassifier
from chatwright.nlu.model_files import intent_data_hash, read_card
from chatwright.nlu.router import EmbeddingRouter, routing_intents
from chatwright.nlu.sentiment_classifier import SentimentClassifier
from chatwright.nlu.spacy_entities import SpacyEntities
from chatwright.nlu.training_data import NluData
from chatwright.project import AssistantProject

log = structlog.get_logger(__name__)

class NluInterpreter:
    def __init__(self, *, router: EmbeddingRouter, classifier: IntentSlotClassifier | None,
                 extractor: EntityExtractor, sentiment: SentimentClassifier | None,
                 routes: Mapping[str, Route]) -> None:
        self._router = router
        self._classifier = classifier
        self._extractor = extractor
        self._sentiment = sentiment
        self._routes = dict(routes)

    @classmethod
    def from_project(cls, project: AssistantProject, embedder: Embedder, data: NluData | None) -> NluInterpreter:
        """`data`: the project's intents (`load_project_nlu_data`), loaded once by the caller who also needs it."""
        config = project.config
        router = EmbeddingRouter(routing_intents(data) if data else [], embedder,
                                 min_confidence=config.routing.min_confidence)
        classifier = None
        model_dir = project.intent_model_dir
        if model_dir.is_dir():
            _warn_when_stale(model_dir, data)
            classifier = IntentSlotClassifier.load(model_dir, root=project.root)
        spacy = SpacyEntities(config.nlu.spacy_entities) if config.nlu.spacy_entities else None
        extractor = EntityExtractor(data.slots if data else {}, spacy=spacy)
        routes = {spec.name: spec.route for spec in data.intents.values()} if data else {}
        return cls(router=router, classifier=classifier, extractor=extractor,
                   sentiment=project_sentiment_classifier(project), routes=routes)

    def understand(self, message: str) -> Understanding:
        sentiment = self._sentiment.predict([message])[0] if self._sentiment else None
        if self._classifier is None:
            understanding = self._router.understand(message)
            return replace(understanding, entities=self._extractor.extract(message), sentiment=sentiment)
        prediction = self._classifier.predict([message])[0]
        model_entities = [EntityValue(entity=span.slot, value=span.value, text=span.value, start=span.start,
                                      end=span.end, extractor="model") for span in prediction.entities]
        if prediction.out_of_scope:
            # a trained out-of-scope class is declined; a merely unsure prediction may still be a question
            # the knowledge base answers, and the support check decides that
            trained_oos = prediction.ranking[0].intent == self._classifier.oos_intent
            route = Route.OUT_OF_SCOPE if trained_oos else Route.KNOWLEDGE
        else:
            route = self._routes.get(prediction.intent, Route.KNOWLEDGE)
        return Understanding(intent=prediction.intent, confidence=prediction.confidence, route=route,
                             ranking=prediction.ranking, entities=self._extractor.extract(message, model_entities),
                             sentiment=sentiment, out_of_scope=prediction.out_of_scope)


def project_sentiment_classifier(project: AssistantProject) -> SentimentClassifier:
    """The project's own sentiment model when trained, else the packaged one."""
    trained = project.sentiment_model_dir
    return SentimentClassifier.load(trained, root=project.root) if trained.is_dir() else SentimentClassifier.load()


def _warn_when_stale(model_dir: Path, data: NluData | None) -> None:
    if data is not None and read_card(model_dir).data_hash != intent_data_hash(data):
        log.warning("the trained NLU model is older than intents.yaml; run `chatwright train nlu`",
                    model=str(model_dir))
