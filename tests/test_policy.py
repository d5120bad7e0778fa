"""The dialogue policy on a small flows project: the decisions themselves on hand-built understandings, and whole
turns through the real assistant (MiniLM intent routing, spaCy entities, the packaged LLM, real actions)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from chatwright.config import DialogueConfig
from chatwright.dialogue.actions import ActionRegistry
from chatwright.dialogue.assistant import Assistant
from chatwright.dialogue.cancellation import is_cancel_phrase
from chatwright.dialogue.clarification import Clarifier, pick
from chatwright.dialogue.events import (
    BotMessage,
    DialogueState,
    Event,
    SlotRejected,
    UserMessage,
    apply,
    event_from_dict,
    replay,
)
from chatwright.dialogue.flow_proposal import FlowProposal, FlowProposer
from chatwright.dialogue.flow_runner import FlowRunner
from chatwright.dialogue.flow_spec import FlowBook, load_flows
from chatwright.dialogue.policy import Decision, DialoguePolicy
from chatwright.dialogue.responses import DEFAULT_RESPONSES
from chatwright.dialogue.types import (
    EntityValue,
    HistoryTurn,
    IntentScore,
    Reply,
    Route,
    SentimentReading,
    Token,
    Understanding,
)
from chatwright.project import AssistantProject
from conftest import ingest
from flows_project import write_flows_project

KNOWLEDGE_INTENTS = {"fees": "Fees for cards and transfers."}


def understood(intent: str = "inform", confidence: float = 0.9, route: Route = Route.KNOWLEDGE, *,
               ranking: Sequence[tuple[str, float]] = (), sentiment: tuple[str, float] | None = None,
               entities: Sequence[EntityValue] = ()) -> Understanding:
    reading = SentimentReading(sentiment[0], sentiment[1]) if sentiment else None
    return Understanding(intent=intent, confidence=confidence, route=route,
                         ranking=tuple(IntentScore(name, score) for name, score in ranking),
                         entities=tuple(entities), sentiment=reading)


@pytest.fixture(scope="module")
def project_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = write_flows_project(tmp_path_factory.mktemp("flows") / "acme")
    ingest(project)
    return project


@pytest.fixture(scope="module")
def book(project_dir: Path) -> FlowBook:
    return load_flows(project_dir / "flows.yaml", ActionRegistry.from_file(project_dir / "actions.py"))


def make_policy(book: FlowBook, **settings: Any) -> DialoguePolicy:
    config = DialogueConfig(**settings)
    return DialoguePolicy(FlowRunner(book), Clarifier(book, KNOWLEDGE_INTENTS, config), config)


@pytest.fixture(scope="module")
def policy(book: FlowBook) -> DialoguePolicy:
    return make_policy(book)


def said(state: DialogueState, understanding: Understanding, text: str = "") -> DialogueState:
    return apply(state, UserMessage.of(text, understanding))


# --- decisions on hand-built understandings ---------------------------------------------------------------


def test_two_close_intents_get_a_clarifying_question_from_the_flow_descriptions(policy: DialoguePolicy) -> None:
    unclear = understood("block_card", 0.46, ranking=[("block_card", 0.46), ("report_stolen", 0.41)])
    choice = policy.decide(said(DialogueState(), unclear), unclear, "my card")
    assert choice.decision is Decision.CLARIFY
    assert choice.clarification is not None
    assert choice.clarification.choices == "block your card or report a stolen card"

    unsure = understood("block_card", 0.55, ranking=[("block_card", 0.55), ("fees", 0.42)])  # not close, unsure
    choice = policy.decide(said(DialogueState(), unsure), unsure, "card fee blocked")
    assert choice.decision is Decision.CLARIFY and choice.clarification is not None
    assert choice.clarification.choices == "block your card or ask about fees for cards and transfers"


@pytest.mark.parametrize(("ranking", "decision"), [
    ([("block_card", 0.9), ("report_stolen", 0.05)], Decision.START_FLOW),  # clear winner
    ([("fees", 0.45), ("transfer_money", 0.4)], Decision.CLARIFY),
    ([("fees", 0.45), ("greeting", 0.4)], Decision.KNOWLEDGE),  # small talk is no option to offer
    ([("block_card", 0.2), ("report_stolen", 0.1)], Decision.KNOWLEDGE),  # neither is likely
    ([("block_card", 0.37), ("report_stolen", 0.35)], Decision.KNOWLEDGE),  # close, but two weak guesses
])
def test_clarifying_needs_two_likely_options_one_of_them_a_flow(
        policy: DialoguePolicy, ranking: list[tuple[str, float]], decision: Decision) -> None:
    understanding = understood(ranking[0][0], ranking[0][1], ranking=ranking)
    assert policy.decide(said(DialogueState(), understanding), understanding, "block").decision is decision


@pytest.mark.parametrize(("text", "ranking", "decision"), [
    ("How much is a transfer?", [("fees", 0.45), ("transfer_money", 0.4)], Decision.KNOWLEDGE),
    ("transfer fees", [("fees", 0.45), ("transfer_money", 0.4)], Decision.CLARIFY),  # not a question
    ("How do I block my card?", [("block_card", 0.46), ("fees", 0.42)], Decision.CLARIFY),  # likeliest is a flow
])
def test_a_question_for_information_is_answered_when_its_likeliest_intent_is_knowledge(
        policy: DialoguePolicy, text: str, ranking: list[tuple[str, float]], decision: Decision) -> None:
    understanding = understood(ranking[0][0], ranking[0][1], ranking=ranking)
    assert policy.decide(said(DialogueState(), understanding), understanding, text).decision is decision


@pytest.mark.parametrize(("answer", "intent", "picked"), [
    ("the first one", "greeting", "block_card"),
    ("2", "greeting", "report_stolen"),
    ("report it stolen please", "greeting", "report_stolen"),
    ("just blocking it", "greeting", "block_card"),
    ("that one", "report_stolen", "report_stolen"),  # no words in common: the NLU's reading decides
    ("hmm", "greeting", None),
])
def test_the_answer_to_a_clarifying_question_picks_an_option(
        book: FlowBook, answer: str, intent: str, picked: str | None) -> None:
    clarification = Clarifier(book, {}, DialogueConfig())._between("block_card", "report_stolen")
    assert clarification is not None
    option = pick(clarification, answer, understood(intent, 0.3))
    assert (option.intent if option else None) == picked


def upset_before(*scores: float) -> list[Event]:
    """Earlier user messages read as negative with these scores."""
    return [UserMessage.of("this is useless", understood("fees", 0.3, sentiment=("negative", score)))
            for score in scores]


def test_an_upset_user_is_acknowledged_and_handed_off_when_it_lasts(book: FlowBook,
                                                                     policy: DialoguePolicy) -> None:
    upset = understood("fees", 0.3, sentiment=("negative", 0.95))
    choice = policy.decide(DialogueState(), upset, "this is useless", upset_before(0.95))
    assert choice.apologise and choice.decision is not Decision.HANDOFF

    events = upset_before(0.95, 0.99)
    choice = policy.decide(DialogueState(), upset, "this is useless", events)
    assert (choice.decision, choice.reason, choice.apologise) == (
        Decision.HANDOFF, "the customer was upset for 3 messages in a row", True)
    never = make_policy(book, handoff_negative_turns=None)
    assert never.decide(DialogueState(), upset, "this is useless", events).decision is not Decision.HANDOFF

    unsure = upset_before(0.95, 0.8)  # a negative label the model is not sure of breaks the streak
    assert policy.decide(DialogueState(), upset, "this is useless", unsure).decision is not Decision.HANDOFF
    handed_off = [*events, *FlowRunner(book).hand_off(DialogueState(), "upset").events]
    assert policy.decide(DialogueState(), upset, "still useless", handed_off).decision is not Decision.HANDOFF
    mildly = understood("fees", 0.3, sentiment=("negative", 0.8))
    choice = policy.decide(DialogueState(), mildly, "hmm", events)
    assert not choice.apologise and choice.decision is not Decision.HANDOFF


def test_the_third_answer_that_is_not_accepted_hands_off(book: FlowBook, policy: DialoguePolicy) -> None:
    runner = FlowRunner(book)
    events: list[Event] = list(runner.start_flow(DialogueState(), "transfer_money").events)
    for text in ("Anna", "lots", "loads"):
        events += runner.continue_flow(replay(events), understood(), text).events
    state = replay(events)
    assert state.failures == 2 and sum(isinstance(event, SlotRejected) for event in events) == 2

    vague = understood("greeting", 0.3)
    choice = policy.decide(said(state, vague), vague, "a lot", events)
    assert (choice.decision, choice.reason) == (Decision.HANDOFF, "3 answers in a row were not accepted")
    assert policy.decide(said(state, vague), vague, "50 euros", events).decision is Decision.CONTINUE_FLOW
    assert make_policy(book, handoff_after_failures=None).decide(
        said(state, vague), vague, "a lot", events).decision is Decision.CONTINUE_FLOW


@pytest.mark.parametrize(("text", "cancels"), [
    ("forget it", True), ("no, never mind", True), ("Cancel!", True), ("ok, stop please", True),
    ("I've changed my mind", True), ("cancel my card", False), ("stop payments to Anna", False), ("ok then", False),
])
def test_cancel_phrases_are_whole_messages(text: str, cancels: bool) -> None:
    assert is_cancel_phrase(text) is cancels


def test_without_flows_the_route_alone_decides(policy: DialoguePolicy) -> None:
    plain = make_policy(FlowBook({}))
    upset = understood("transfer_money", 0.9, sentiment=("negative", 0.99))
    events = upset_before(0.99, 0.99)
    for text in ("forget it", "I want to send money"):
        choice = plain.decide(DialogueState(), upset, text, events)
        assert (choice.decision, choice.apologise) == (Decision.KNOWLEDGE, False)
    human = understood("human", 0.8, Route.HUMAN)
    assert plain.decide(DialogueState(), human, "a person please").decision is Decision.HANDOFF
    thanks = understood("thanks", 0.8, Route.THANKS)
    assert plain.decide(DialogueState(), thanks, "thanks").decision is Decision.SMALL_TALK
    assert policy.decide(DialogueState(), upset, "I want to send money", events).decision is Decision.HANDOFF, (
        "with flows")


@pytest.mark.parametrize(("answer", "proposal"), [
    ('{"flow": "report_stolen", "slots": {"card": "Mastercard"}}',
     FlowProposal("report_stolen", {"card": "Mastercard"})),
    ('{"flow": "report_stolen", "slots": {"card": "visa"}}', FlowProposal("report_stolen")),  # not in the message
    ('{"flow": "block_card", "slots": {"card": "my wallet"}}', FlowProposal("block_card")),  # not a card
    ('{"flow": "block_card", "slots": {"card": null, "amount": null}}', FlowProposal("block_card")),
    ('{"flow": "block_card", "slots": {"amount": "Mastercard"}}', None),  # a slot of another flow
    ('{"flow": "transfer_money", "slots": {}}', None),  # not marked llm: true
    ('{"flow": "none", "slots": {}}', None),
    ('{"flow": "block_card", "slots"', None),
])
def test_a_proposed_flow_is_checked_against_the_flows(assistant: Assistant, book: FlowBook, answer: str,
                                                      proposal: FlowProposal | None) -> None:
    proposer = FlowProposer(assistant.llm, book)
    assert proposer.check(answer, "someone took my wallet with my Mastercard in it") == proposal


# --- whole turns through the assistant ------------------------------------------------------------------


class Chat:
    """A conversation kept as the server keeps it: history for the LLM and the event log, from stored JSON."""

    def __init__(self, assistant: Assistant) -> None:
        self.assistant = assistant
        self.history: list[HistoryTurn] = []
        self.events: list[Event] = []

    def say(self, message: str) -> Reply:
        tokens: list[str] = []
        replies: list[Reply] = []
        for item in self.assistant.respond(self.history, message, self.events):
            if isinstance(item, Token):
                tokens.append(item.text)
            else:
                replies.append(item)
        [reply] = replies
        assert "".join(tokens).strip() == reply.text, "the streamed pieces are the reply"
        assert "policy_ms" in reply.timings_ms
        types = [event["type"] for event in reply.events]
        assert types[0] == "user_message" and "bot_message" in types
        self.events += [event_from_dict(json.loads(json.dumps(event))) for event in reply.events]
        self.history += [HistoryTurn("user", message), HistoryTurn("assistant", reply.text)]
        assert replay(self.events).slots == reply.slots
        return reply

    def of_type(self, kind: str, reply: Reply) -> list[dict[str, Any]]:
        return [event for event in reply.events if event["type"] == kind]


@pytest.fixture(scope="module")
def assistant(project_dir: Path) -> Assistant:
    return Assistant.from_project(AssistantProject.load(project_dir))


@pytest.fixture
def chat(assistant: Assistant) -> Chat:
    return Chat(assistant)


def test_one_message_fills_several_slots_and_the_flow_runs_its_action(chat: Chat) -> None:
    first = chat.say("send 50 euros to Anna")
    assert (first.decision, first.flow) == ("start_flow", "transfer_money")
    assert first.slots == {"recipient": "Anna", "amount": {"amount": 50.0, "currency": "EUR"}}
    assert first.text.endswith("Send 50.00 EUR to Anna?")

    done = chat.say("yes")
    assert (done.decision, done.flow, done.slots) == ("continue_flow", None, {})
    assert done.text.endswith("Done! 50.00 EUR is on its way to Anna, reference T-Anna-50.")
    [called] = chat.of_type("action_called", done)
    assert called["action"] == "send_transfer" and called["result"] == {"id": "T-Anna-50"}


def test_a_correction_replaces_the_value_it_names(chat: Chat) -> None:
    chat.say("send 50 euros to Anna")
    corrected = chat.say("no, make that 60")
    assert corrected.decision == "continue_flow"
    assert corrected.slots["amount"] == {"amount": 60.0, "currency": "EUR"}
    [change] = chat.of_type("slot_set", corrected)
    assert (change["slot"], change["previous"], change["corrected"]) == (
        "amount", {"amount": 50.0, "currency": "EUR"}, True)
    assert corrected.text.endswith("Send 60.00 EUR to Anna?")


@pytest.mark.parametrize("message", ["forget it", "cancel", "never mind", "I don't want to do this anymore"])
def test_cancelling_ends_the_flow_and_clears_its_slots(chat: Chat, message: str) -> None:
    chat.say("send 50 euros to Anna")
    cancelled = chat.say(message)
    assert (cancelled.decision, cancelled.flow, cancelled.slots) == ("cancel", None, {})
    assert cancelled.text.endswith("OK, I've cancelled that.")
    assert [event["flow"] for event in chat.of_type("flow_cancelled", cancelled)] == ["transfer_money"]
    nothing = chat.say("cancel")
    assert nothing.decision == "cancel" and nothing.text.endswith("OK. Is there anything else I can help with?")


def test_small_talk_and_a_question_in_a_flow_are_answered_then_the_question_is_asked_again(chat: Chat) -> None:
    chat.say("I want to send money")
    chat.say("Anna")
    thanks = chat.say("thanks")
    assert (thanks.decision, thanks.route, thanks.flow) == ("small_talk", Route.THANKS, "transfer_money")
    assert thanks.text.endswith(
        "You're welcome! Is there anything else I can help with? How much would you like to send?")

    question = chat.say("how much does a transfer cost?")
    assert (question.decision, question.route, question.flow) == ("knowledge", Route.KNOWLEDGE, "transfer_money")
    assert "0.50" in question.text and question.citations, question.text
    assert question.text.endswith(" How much would you like to send?")
    assert [event["type"] for event in question.events if event["type"] != "bot_message"] == [
        "user_message", "flow_interrupted", "flow_resumed", "flow_step"]

    assert chat.say("50 euros").text.endswith("Send 50.00 EUR to Anna?")


def test_another_flow_interrupts_the_active_one_which_then_resumes(chat: Chat) -> None:
    chat.say("I want to send money")
    chat.say("Anna")
    stolen = chat.say("my card was stolen")
    assert (stolen.decision, stolen.flow) == ("start_flow", "report_stolen")
    assert stolen.text.endswith("Which card, Visa or Mastercard?")
    back = chat.say("the visa")
    assert (back.decision, back.flow, back.slots) == ("continue_flow", "transfer_money", {"recipient": "Anna"})
    assert back.text.endswith("I've blocked your visa card and reported it stolen. How much would you like to send?")


def test_asking_for_a_person_hands_off_with_a_summary_for_them(chat: Chat) -> None:
    chat.say("I want to send money")
    chat.say("Anna")
    human = chat.say("I want to talk to a human")
    assert (human.decision, human.route, human.handoff, human.flow) == ("handoff", Route.HUMAN, True, None)
    assert human.text.endswith(DEFAULT_RESPONSES["human"][0])
    [handoff] = chat.of_type("handoff", human)
    assert handoff["reason"] == "the customer asked for a person"
    assert handoff["summary"] == (
        "Reason: the customer asked for a person. Flow: transfer_money (Send money to someone). "
        'Known: recipient=Anna. Last messages: "I want to send money" / "Anna" / "I want to talk to a human".')


def test_a_failing_action_hands_off_with_the_flows_own_message(chat: Chat) -> None:
    chat.say("send 1000 euros to Anna")
    failed = chat.say("yes")
    assert (failed.decision, failed.handoff, failed.flow) == ("continue_flow", True, None)
    assert failed.text.endswith(f"The transfer service is down. {DEFAULT_RESPONSES['human'][0]}")
    [handoff] = chat.of_type("handoff", failed)
    assert handoff["reason"] == "transfer service down"
    assert 'Last messages: "send 1000 euros to Anna" / "yes".' in handoff["summary"]


def test_the_answer_to_a_stored_clarifying_question_starts_the_flow_it_names(chat: Chat) -> None:
    """The clarifying question and the unclear message come from the event log, as after a restart; the
    entities of the unclear message fill the flow it turns out to be about."""
    visa = EntityValue("card", "visa", "visa", 3, 7, "lookup")
    unclear = understood("block_card", 0.46, ranking=[("block_card", 0.46), ("report_stolen", 0.41)],
                         entities=[visa])
    chat.events = [UserMessage.of("my visa is gone", unclear),
                   BotMessage(text="Do you want to block your card or report a stolen card?")]
    chat.history = [HistoryTurn("user", "my visa is gone"),
                    HistoryTurn("assistant", "Do you want to block your card or report a stolen card?")]
    answer = chat.say("report it stolen")
    assert answer.decision == "start_flow"
    assert [event["flow"] for event in chat.of_type("flow_started", answer)] == ["report_stolen"]
    assert answer.text.endswith("I've blocked your visa card and reported it stolen.")


def test_an_upset_customer_hears_an_apology_and_gets_a_person_when_it_lasts(chat: Chat) -> None:
    """The packaged sentiment model reads the messages. They open like questions (so no flow is proposed for them)
and are no follow-ups (so nothing is rewritten): the knowledge is searched, finds nothing, and no model call is
made. The model misses many upset phrasings (it learned sentiment from film reviews), so these are ones it reads
as clearly negative."""
    first = chat.say("What a joke, still broken")
    assert first.understanding.sentiment is not None and first.understanding.sentiment.label == "negative"
    assert first.text.startswith("I'm sorry about the trouble. ") and first.decision != "handoff"
    second = chat.say("What a waste of time")
    assert second.text.startswith("I'm sorry about the trouble. ") and second.decision != "handoff"
    third = chat.say("What a complete waste of my time, this is the worst experience ever")
    assert (third.decision, third.handoff) == ("handoff", True)
    assert third.text == f"I'm sorry about the trouble. {DEFAULT_RESPONSES['human'][0]}"
    [handoff] = chat.of_type("handoff", third)
    assert handoff["reason"] == "the customer was upset for 3 messages in a row"


def test_a_request_between_two_flows_gets_a_clarifying_question_whose_answer_starts_one(chat: Chat) -> None:
    unclear = chat.say("nobody should be able to pay with my mastercard")
    assert (unclear.decision, unclear.flow) == ("clarify", None)
    assert unclear.text.endswith("Do you want to block your card or report a stolen card?")
    answer = chat.say("just block it")
    assert answer.decision == "start_flow"
    assert answer.text.endswith("Your mastercard card is blocked."), "the card named in the unclear message"


def test_an_unsure_request_can_start_a_flow_the_llm_proposes(chat: Chat) -> None:
    proposed = chat.say("please deactivate the visa")
    assert proposed.understanding.confidence < 0.6, "the intent examples alone are not sure"
    assert proposed.decision == "start_flow" and "propose_ms" in proposed.timings_ms
    [started] = chat.of_type("flow_started", proposed)
    assert started["flow"] in {"block_card", "report_stolen"}
    [called] = chat.of_type("action_called", proposed)
    assert called["args"] == {"card": "visa"}


def test_without_flows_the_assistant_answers_as_before(project_dir: Path, tmp_path: Path) -> None:
    plain_dir = tmp_path / "plain"
    shutil.copytree(project_dir, plain_dir, ignore=shutil.ignore_patterns("flows.yaml", "actions.py"))
    plain = Assistant.from_project(AssistantProject.load(plain_dir))
    money = Chat(plain).say("send 50 euros to Anna")
    assert (money.decision, money.route, money.flow, money.slots) == ("knowledge", Route.KNOWLEDGE, None, {})
    assert money.abstained and money.text == DEFAULT_RESPONSES["dont_know"][0]

    chat = Chat(plain)
    greeting = chat.say("hello there")
    assert (greeting.decision, greeting.route, greeting.text) == (
        "small_talk", Route.GREETING, "Hello! I'm Acme Bank. How can I help you today?")
    human = chat.say("I want to talk to a human")
    assert (human.decision, human.route, human.handoff, human.text) == (
        "handoff", Route.HUMAN, True, DEFAULT_RESPONSES["human"][0])
    assert [event["type"] for event in human.events] == ["user_message", "handoff", "bot_message"]
