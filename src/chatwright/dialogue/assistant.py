"""One turn of a conversation, end to end: understand, decide, retrieve, check support, answer."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import structlog

from chatwright.config import AssistantConfig
from chatwright.dialogue.responses import ResponseBook
from chatwright.dialogue.types import Citation, HistoryTurn, Reply, ReplyEvent, Route, Token, Understanding
from chatwright.errors import GenerationUnavailable
from chatwright.generation.answer import AnswerResult, GroundedAnswerer, answer_system_prompt
from chatwright.generation.llm import LLM
from chatwright.generation.rewrite import QueryRewriter
from chatwright.knowledge.index import KnowledgeIndex
from chatwright.knowledge.passage import Passage
from chatwright.knowledge.sentence_selection import select_for_passages
from chatwright.knowledge.support import SupportChecker
from chatwright.models.embedder import Embedder
from chatwright.models.registry import load_embedder, load_llm
from chatwright.nlu.router import EmbeddingRouter, load_routing_intents
from chatwright.project import AssistantProject

log = structlog.get_logger(__name__)

_CANNED_ROUTES = {Route.GREETING, Route.THANKS, Route.GOODBYE, Route.OUT_OF_SCOPE}


@dataclass
class _Clock:
    """Milliseconds per stage of a turn, stored with the turn and shown in benchmarks."""

    start: float = field(default_factory=time.perf_counter)
    marks: dict[str, float] = field(default_factory=dict)
    _last: float = 0.0

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.marks[stage] = round((now - (self._last or self.start)) * 1000, 1)
        self._last = now

    def mark_since_start(self, name: str) -> None:
        self.marks[name] = round((time.perf_counter() - self.start) * 1000, 1)


class Assistant:
    def __init__(self, config: AssistantConfig, *, llm: LLM, embedder: Embedder, router: EmbeddingRouter,
                 knowledge: KnowledgeIndex) -> None:
        self.config = config
        self.name = config.name
        self._llm = llm
        self._embedder = embedder
        self._router = router
        self._knowledge = knowledge
        self._responses = ResponseBook(config.responses, config.name)
        self._rewriter = QueryRewriter(llm)
        self._support = SupportChecker(config.abstention)
        generation = config.generation
        self._answerer = GroundedAnswerer(llm, system_prompt=answer_system_prompt(config),
                                          max_tokens=generation.max_answer_tokens,
                                          temperature=generation.temperature,
                                          history_tokens=generation.history_tokens)

    @property
    def llm(self) -> LLM:
        return self._llm

    @property
    def knowledge(self) -> KnowledgeIndex:
        return self._knowledge

    @classmethod
    def from_project(cls, project: AssistantProject) -> Assistant:
        """Load the project's models (once per process) and its knowledge index."""
        models = project.config.models
        llm = load_llm(models.llm, root=project.root, threads=models.threads,
                       context_tokens=models.context_tokens)
        embedder = load_embedder(models.embedder, root=project.root)
        router = EmbeddingRouter(load_routing_intents(project.intents_path), embedder,
                                 min_confidence=project.config.routing.min_confidence)
        knowledge = KnowledgeIndex.open(project.index_dir, embedder)
        return cls(project.config, llm=llm, embedder=embedder, router=router, knowledge=knowledge)

    def respond(self, history: Sequence[HistoryTurn], message: str) -> Iterator[ReplyEvent]:
        """Yield the reply's text pieces as they are produced, then the finished Reply."""
        clock = _Clock()
        understanding = self._router.understand(message)
        clock.lap("understand_ms")
        turn_number = sum(1 for turn in history if turn.role == "assistant")
        if understanding.route in _CANNED_ROUTES or understanding.route is Route.HUMAN:
            text = self._responses.pick(understanding.route.value, turn_number)
            yield Token(text)
            clock.mark_since_start("total_ms")
            yield Reply(text=text, route=understanding.route, understanding=understanding,
                        handoff=understanding.route is Route.HUMAN, timings_ms=clock.marks)
            return
        yield from self._answer_from_knowledge(history, message, understanding, clock, turn_number)

    def _answer_from_knowledge(self, history: Sequence[HistoryTurn], message: str, understanding: Understanding,
                               clock: _Clock, turn_number: int) -> Iterator[ReplyEvent]:
        reply = Reply(text="", route=Route.KNOWLEDGE, understanding=understanding, timings_ms=clock.marks)
        try:
            if self.config.generation.rewrite_follow_ups:
                reply.rewritten_query = self._rewriter.rewrite(history, message)
                clock.lap("rewrite_ms")
            query = reply.rewritten_query or message
            passages = self._retrieve(query)
            clock.lap("retrieve_ms")
            support = self._support.check(query, passages)
            clock.lap("support_ms")
            reply.support = support.scores()
            if not support.supported:
                reply.abstained = True
            else:
                result = AnswerResult()
                for piece in self._answerer.stream(query, passages, history, result):
                    if "first_token_ms" not in clock.marks:
                        clock.mark_since_start("first_token_ms")
                    yield Token(piece)
                clock.lap("generate_ms")
                reply.text = result.text
                reply.citations = _citations(passages, result.cited)
        except GenerationUnavailable as exc:
            log.warning("generation unavailable", error=str(exc))
            reply.error = str(exc)
            reply.text = self._responses.pick("cannot_answer", turn_number)
            yield Token(reply.text)
        if reply.abstained:
            reply.text = self._responses.pick("dont_know", turn_number)
            yield Token(reply.text)
        clock.mark_since_start("total_ms")
        yield reply

    def _retrieve(self, query: str) -> list[Passage]:
        retrieval = self.config.retrieval
        passages = self._knowledge.search(query, top_k=retrieval.top_k, candidates=retrieval.candidates,
                                          rrf_k=retrieval.rrf_k, mode=retrieval.mode)
        return select_for_passages(query, passages, self._embedder, retrieval.max_sentences)


def _citations(passages: Sequence[Passage], cited: Sequence[int]) -> list[Citation]:
    """Citations for the passages the answer rests on."""
    return [Citation(index=n, source=passages[n - 1].source, title=passages[n - 1].title,
                     heading_path=list(passages[n - 1].heading_path), text=passages[n - 1].text,
                     score=round(passages[n - 1].score, 4)) for n in cited]
