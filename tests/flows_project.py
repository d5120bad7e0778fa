"""A tiny bank assistant with flows, written into a folder: the subject of the policy and flow end-to-end tests.

It has a transfer flow (free-text, amount and yes/no slots, an action that fails for 1000 EUR or more and then
hands off), two card flows that a clarifying question tells apart, a cancel intent, small talk and one
knowledge article for digressions.
"""

from __future__ import annotations

from pathlib import Path

ASSISTANT = """\
name: Acme Bank
persona: You are the Acme Bank help-centre assistant. Answer only from the articles you are given.
generation: {max_answer_tokens: 48}
"""

INTENTS = """\
intents:
  greeting:
    route: greeting
    examples: [hi, hello, hello there, good morning, hey, hi there]
  thanks:
    route: thanks
    examples: [thanks, thank you, thank you very much, thanks a lot, cheers, great thanks]
  goodbye:
    route: goodbye
    examples: [bye, goodbye, see you, bye bye, that's all goodbye, have a nice day bye]
  human:
    route: human
    examples: [I want to talk to a human, let me speak to a person, get me a real agent, connect me to a human,
               can I talk to someone, I need a human agent]
  out_of_scope:
    route: out_of_scope
    examples: [what's the weather tomorrow, tell me a joke, who won the football match, recommend a movie,
               what is the capital of France, write me a poem]
  cancel:
    description: The customer wants to stop what they were doing.
    examples: [forget about it, cancel that please, never mind, I don't want to do that anymore, stop this,
               let's not do that]
  transfer_money:
    description: Sending money to someone.
    examples: ["I want to send money", "send [50 euros](amount) to [Anna](recipient)", "transfer money to a friend",
               "pay [100 EUR](amount) to [Tom](recipient)", "make a transfer", "I need to wire money",
               "send [20 euros](amount) to my brother"]
  block_card:
    description: Blocking a card.
    examples: ["block my card", "please block my [visa](card) card", "freeze my card", "I want to block my card",
               "disable my [mastercard](card)", "stop my card from working"]
  report_stolen:
    description: A stolen card.
    examples: ["my card was stolen", "someone stole my [visa](card) card", "report a stolen card",
               "my wallet was stolen with my card", "a thief took my [mastercard](card)", "my card got stolen"]
  fees:
    description: Fees for cards and transfers.
    examples: [how much does a transfer cost, what are the fees, is there a fee for topping up,
               what does a replacement card cost, what do transfers cost, fees for cards]
"""

ENTITIES = """\
slots:
  amount: {}
  recipient: {}
  card:
    synonyms:
      visa: [visa card]
      mastercard: [master card, mc]
"""

FLOWS = """\
slots:
  recipient: {type: text, entities: [recipient, PERSON], prompt: "Who should receive the money?"}
  amount: {type: amount, entities: [amount, MONEY], validate: {min: 1, max: 5000},
           prompt: "How much would you like to send?"}
  confirm: {type: choice, choices: [yes, no]}
  card: {type: choice, entities: [card], choices: {visa: [visa card], mastercard: [master card, mc]},
         prompt: "Which card, Visa or Mastercard?"}
flows:
  transfer_money:
    description: Send money to someone
    start: {intents: [transfer_money]}
    steps:
      - collect: recipient
      - collect: amount
      - collect: confirm
        prompt: "Send {amount} to {recipient}?"
      - if: {slot: confirm, equals: no}
        then: [{say: "OK, I won't send it."}, {end: cancelled}]
      - action: send_transfer
        result: transfer
        on_error: [{say: The transfer service is down.}, {handoff: transfer service down}]
      - say: "Done! {amount} is on its way to {recipient}, reference {transfer.id}."
  block_card:
    description: Block your card
    start: {intents: [block_card], llm: true}
    steps:
      - collect: card
      - action: block_card
      - say: "Your {card} card is blocked."
  report_stolen:
    description: Report a stolen card
    start: {intents: [report_stolen], llm: true}
    steps:
      - collect: card
      - action: block_card
      - say: "I've blocked your {card} card and reported it stolen."
"""

ACTIONS = """\
from chatwright.nlu.normalise import Amount


def send_transfer(recipient: str, amount: Amount) -> dict:
    if amount.value >= 1000:
        raise RuntimeError("the core banking service is down")
    return {"id": f"T-{recipient}-{amount.value:g}"}


def block_card(card: str) -> dict:
    return {"card": card, "blocked": True}
"""

FEES = """\
# Fees

## Transfers

A SEPA transfer costs 0.50 EUR and usually arrives within one business day.

## Cards

A replacement card costs 5 EUR. Topping up with a Visa card costs 0.3% of the amount.
"""


def write_flows_project(root: Path) -> Path:
    """Write the project into `root` (not ingested) and return `root`."""
    files = {"assistant.yaml": ASSISTANT, "intents.yaml": INTENTS, "entities.yaml": ENTITIES,
             "flows.yaml": FLOWS, "actions.py": ACTIONS, "knowledge/fees.md": FEES}
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root
