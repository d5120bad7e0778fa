"""One turn of a conversation, end to end: understand, decide, then run a flow or retrieve, check support, answer."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import structlog

from chatwright.config import AssistantConfig
from chatwright.dialogue.actions import ActionRegistry
from chatwright.dialogue.clarification import Clarifier
from chatwright.dialogue.events import Event, UserMessage
from chatwright.dialogue.flow_proposal import FlowProposer
from chatwright.dialogue.flow_runner import FlowRunner, FlowTurn
from chatwright.dialogue.flow_spec import FlowBook, load_flows
from chatwright.dialogue.policy import Choice, Decision, DialoguePolicy
from chatwright.dialogue.responses import ResponseBook
from chatwright.dialogue.slot_entities import slot_entity, with_entities
from chatwright.dialogue.turn_events import TurnEvents
from chatwright.dialogue.types import Citation, HistoryTurn, Reply, ReplyEvent, Route, Token, Understanding
from chatwright.errors import GenerationUnavailable
from chatwright.generation.answer import AnswerResult, GroundedAnswerer, answer_system_prompt
from chatwright.generation.llm import LLM
from chatwright.generation.rewrite import QueryRewriter, looks_like_follow_up
from chatwright.knowledge.index import KnowledgeIndex
from chatwright.knowledge.passage import Passage
from chatwright.knowledge.sentence_selection import select_for_passages
from chatwright.knowledge.support import SupportChecker
from chatwright.models.embedder import Embedder
from chatwright.models.registry import load_embedder, load_llm
from chatwright.nlu.interpreter import NluInterpreter
from chatwright.nlu.training_data import load_project_nlu_data
from chatwright.project import AssistantProject

log = structlog.get_logger(__name__)

_DECISION_ROUTES = {Decision.HANDOFF: Route.HUMAN, Decision.KNOWLEDGE: Route.KNOWLEDGE,
                    Decision.OUT_OF_SCOPE: Route.OUT_OF_SCOPE}


class Understander(Protocol):
    """What reads a message: the project's NLU (`NluInterpreter`) or anything with the same method."""

    def understand(self, message: str) -> Understanding: ...


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
    def __init__(self, config: AssistantConfig, *, llm: LLM, embedder: Embedder, nlu: Understander,
                 knowledge: KnowledgeIndex, flows: FlowBook | None = None, actions: ActionRegistry | None = None,
                 knowledge_intents: Mapping[str, str] | None = None) -> None:
        """`flows` and `actions` from flows.yaml and actions.py (none: the assistant answers from knowledge
        only); `knowledge_intents` maps intents answered from knowledge to descriptions to clarify with."""
        self.config = config
        self.name = config.name
        self._llm = llm
        self._embedder = embedder
        self._nlu = nlu
        self._knowledge = knowledge
        self._responses = ResponseBook(config.responses, config.name)
        self._rewriter = QueryRewriter(llm)
        self._support = SupportChecker(config.abstention)
        generation = config.generation
        self._answerer = GroundedAnswerer(llm, system_prompt=answer_system_prompt(config),
                                          max_tokens=generation.max_answer_tokens,
                                          temperature=generation.temperature,
                                          history_tokens=generation.history_tokens)
        book = flows or FlowBook({})
        self._runner = FlowRunner(book, actions)
        clarifier = Clarifier(book, knowledge_intents or {}, config.dialogue)
        self._policy = DialoguePolicy(self._runner, clarifier, config.dialogue)
        self._proposer = FlowProposer(llm, book, today=self._runner.today)

    @property
    def llm(self) -> LLM:
        return self._llm

    @property
    def knowledge(self) -> KnowledgeIndex:
        return self._knowledge

    @property
    def flows(self) -> FlowBook:
        return self._runner.book

    @classmethod
    def from_project(cls, project: AssistantProject) -> Assistant:
        """Load the project's models (once per process), its flows and actions, and its knowledge index."""
        models = project.config.models
        llm = load_llm(models.llm, root=project.root, threads=models.threads,
                       context_tokens=models.context_tokens)
        embedder = load_embedder(models.embedder, root=project.root)
        data = load_project_nlu_data(project)
        nlu = NluInterpreter.from_project(project, embedder, data)
        knowledge = KnowledgeIndex.open(project.index_dir, embedder)
        if len(knowledge) == 0 and project.knowledge_dir.is_dir() and any(project.knowledge_dir.iterdir()):
            log.warning("the knowledge base is not ingested: every knowledge question will be declined",
                        knowledge=str(project.knowledge_dir), fix=f"chatwright ingest {project.root}")
        actions = ActionRegistry.from_file(project.actions_path) if project.actions_path.is_file() else None
        flows = load_flows(project.flows_path, actions) if project.flows_path.is_file() else None
        described = {name: spec.description for name, spec in (data.intents if data else {}).items()
                     if spec.route is Route.KNOWLEDGE and spec.description
                     and name != project.config.dialogue.cancel_intent}
        return cls(project.config, llm=llm, embedder=embedder, nlu=nlu, knowledge=knowledge, flows=flows,
                   actions=actions, knowledge_intents=described)

    def respond(self, history: Sequence[HistoryTurn], message: str,
                events: Sequence[Event] = ()) -> Iterator[ReplyEvent]:
        """Yield the reply's text pieces as they are produced, then the finished Reply.

        `history` is the conversation's text for the LLM; `events` its stored event log, which gives the
        dialogue state (flows in progress, slots). The Reply carries the events this turn adds.
        """
        clock = _Clock()
        understanding = self._nlu.understand(message)
        clock.lap("understand_ms")
        turn = TurnEvents(events)
        turn.emit(UserMessage.of(message, understanding))
        choice = self._policy.decide(turn.state, understanding, message, events)
        clock.lap("policy_ms")
        if choice.propose and not looks_like_follow_up(message, history):
            choice = self._proposed(choice)
            clock.lap("propose_ms")
        turn_number = sum(1 for item in history if item.role == "assistant")
        reply = Reply(text="", route=_DECISION_ROUTES.get(choice.decision, understanding.route),
                      understanding=understanding, timings_ms=clock.marks, decision=choice.decision.value)
        if choice.apologise:
            yield from self._say(turn, self._responses.pick("sorry", turn_number))
        yield from self._carry_out(choice, turn, reply, history, clock, turn_number)
        if turn.handed_off:
            reply.handoff = True
            yield from self._say(turn, self._responses.pick("human", turn_number))
        reply.text = " ".join(turn.messages)
        reply.events = [event.to_dict() for event in turn.events]
        reply.flow = turn.state.active.flow if turn.state.active is not None else None
        reply.slots = dict(turn.state.slots)
        clock.mark_since_start("total_ms")
        yield reply

    def _proposed(self, choice: Choice) -> Choice:
        """The flow the LLM proposes for an unsure message, with the values it found; else `choice` as it is."""
        proposal = self._proposer.propose(choice.text)
        if proposal is None:
            return choice
        flow = self.flows.flows[proposal.flow]
        found = [slot_entity(self.flows, flow, name, text, choice.text, text, "llm")
                 for name, text in proposal.values.items()]
        understanding = with_entities(choice.understanding, *(entity for entity in found if entity is not None))
        return replace(choice, decision=Decision.START_FLOW, flow=proposal.flow, understanding=understanding,
                       propose=False)

    def _carry_out(self, choice: Choice, turn: TurnEvents, reply: Reply, history: Sequence[HistoryTurn],
                   clock: _Clock, turn_number: int) -> Iterator[ReplyEvent]:
        runner, state = self._runner, turn.state
        match choice.decision:
            case Decision.HANDOFF:
                assert choice.reason is not None  # set with every HANDOFF
                yield from self._record(turn, runner.hand_off(state, choice.reason))
            case Decision.CANCEL if state.active is not None:
                yield from self._record(turn, runner.cancel_active(
                    state, self._responses.pick("cancelled", turn_number)))
            case Decision.CANCEL:
                yield from self._say(turn, self._responses.pick("nothing_to_cancel", turn_number))
            case Decision.START_FLOW:
                assert choice.flow is not None  # set with every START_FLOW
                yield from self._record(turn, runner.start_flow(state, choice.flow, choice.understanding, choice.text))
            case Decision.CONTINUE_FLOW:
                yield from self._record(turn, runner.continue_flow(state, choice.understanding, choice.text))
            case Decision.CLARIFY:
                assert choice.clarification is not None  # set with every CLARIFY
                question = self._responses.pick("clarify", turn_number)
                yield from self._say(turn, question.replace("{options}", choice.clarification.choices))
            case _:
                yield from self._answer(choice, turn, reply, history, clock, turn_number)
        if choice.decision in (Decision.HANDOFF, Decision.CANCEL, Decision.START_FLOW, Decision.CONTINUE_FLOW):
            clock.lap("flow_ms")

    def _answer(self, choice: Choice, turn: TurnEvents, reply: Reply, history: Sequence[HistoryTurn],
                clock: _Clock, turn_number: int) -> Iterator[ReplyEvent]:
        """Small talk, out of scope or a knowledge answer; as a digression, the waiting flow asks again after."""
        if choice.digression:
            turn.record(self._runner.interrupt(turn.state))
        if choice.decision is Decision.KNOWLEDGE:
            yield from self._answer_from_knowledge(history, choice.text, turn, reply, clock, turn_number)
        else:
            key = "out_of_scope" if choice.decision is Decision.OUT_OF_SCOPE else choice.understanding.route.value
            yield from self._say(turn, self._responses.pick(key, turn_number))
        if choice.digression:
            yield from self._record(turn, self._runner.resume(turn.state))

    @staticmethod
    def _say(turn: TurnEvents, text: str) -> Iterator[ReplyEvent]:
        """Say one message: messages of a turn read as one reply, one space apart."""
        yield Token(f" {text}" if turn.messages else text)
        turn.say(text)

    @staticmethod
    def _record(turn: TurnEvents, flow_turn: FlowTurn) -> Iterator[ReplyEvent]:
        separate = bool(turn.messages)
        for text in turn.record(flow_turn):
            yield Token(f" {text}" if separate else text)
            separate = True

    def _answer_from_knowledge(self, history: Sequence[HistoryTurn], message: str, turn: TurnEvents, reply: Reply,
                               clock: _Clock, turn_number: int) -> Iterator[ReplyEvent]:
        separate = bool(turn.messages)
        answer = ""
        try:
            if self.config.generation.rewrite_follow_ups:
                reply.rewritten_query = self._rewriter.rewrite(history, message)
                clock.lap("rewrite_ms")
            query = reply.rewritten_query or message
            passages = self._retrieve(query)
            clock.lap("retrieve_ms")
            support = self._support.check(query, passages)
            if support.supported and self._support.asks_the_model:
                answerability = self._answerer.answerability(query, passages, history)
                support = self._support.with_answerability(support, answerability)
            clock.lap("support_ms")
            reply.support = support.scores()
            if not support.supported:
                reply.abstained = True
            else:
                result = AnswerResult()
                for piece in self._answerer.stream(query, passages, history, result):
                    if "first_token_ms" not in clock.marks:
                        clock.mark_since_start("first_token_ms")
                    yield Token(f" {piece}" if separate and not answer else piece)
                    answer += piece
                clock.lap("generate_ms")
                answer = result.text
                reply.citations = _citations(passages, result.cited)
        except GenerationUnavailable as exc:
            log.warning("generation unavailable", error=str(exc))
            reply.error = str(exc)
            yield from self._say(turn, self._responses.pick("cannot_answer", turn_number))
            return
        if reply.abstained:
            yield from self._say(turn, self._responses.pick("dont_know", turn_number))
            return
        turn.say(answer)

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
