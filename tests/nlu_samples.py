"""A small but real NLU project: four intents with slots and an out-of-scope class, written as an owner would."""

from __future__ import annotations

from pathlib import Path

from chatwright.project import AssistantProject
from chatwright.training.train_nlu import train_project

INTENTS_YAML = """\
intents:
  transfer_money:
    examples:
      - send [50 euros](amount) to [Anna](recipient)
      - transfer [20 euros](amount) to [Tom](recipient) please
      - I want to send money to [Maria](recipient)
      - pay [Lucas](recipient) [100 euros](amount)
      - can you wire [75 euros](amount) to [Sophie](recipient)
      - move [30 euros](amount) over to [Peter](recipient)
      - send [Julia](recipient) [15 euros](amount)
      - I need to pay [Marco](recipient)
      - transfer money to [Emma](recipient)
      - please send [200 euros](amount) to my friend [Paul](recipient)
      - make a payment of [60 euros](amount) to [Lena](recipient)
      - give [Noah](recipient) [40 euros](amount)
  block_card:
    examples:
      - block my [visa](card_type)
      - please freeze my [mastercard](card_type)
      - I want to block my card
      - lock my [debit card](card_type) now
      - my [visa](card_type) needs to be blocked
      - can you stop my [mastercard](card_type)
      - block the card please
      - freeze my card immediately
      - disable my [credit card](card_type)
      - I need my [visa](card_type) blocked
  check_balance:
    examples:
      - what is my balance
      - how much money do I have
      - show me my account balance
      - what's left on my account
      - check my balance please
      - how much is in my account
      - balance please
      - tell me my current balance
      - do I have money left
      - what is the balance of my account
  greeting:
    route: greeting
    examples:
      - hello
      - hi there
      - good morning
      - hey
      - hi
      - good evening
      - hello there
      - hey hi
  out_of_scope:
    route: out_of_scope
    examples:
      - what is the weather tomorrow
      - tell me a joke
      - who won the football game
      - recommend a good movie
      - how do I cook pasta
      - what is the capital of France
      - play some music
      - write me a poem
"""

HELD_OUT_YAML = """\
intents:
  transfer_money:
    examples:
      - send [80 euros](amount) to [Clara](recipient)
      - I'd like to transfer money to [David](recipient)
  block_card:
    examples:
      - please block my [visa](card_type)
      - freeze my card
  check_balance:
    examples:
      - how much do I have in my account
      - what is my current balance
  greeting:
    examples:
      - hello there friend
      - hi good morning
  out_of_scope:
    examples:
      - what's the weather like
      - tell me something funny
"""


def write_nlu_project(root: Path, *, mode: str = "quick", epochs: int = 12) -> Path:
    """An assistant project with the sample intents and NLU settings for fast training."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "assistant.yaml").write_text(
        f"name: Sample bank\nnlu:\n  training:\n    mode: {mode}\n    epochs: {epochs}\n    min_steps: 0\n"
        "    patience: 2\n    validation_fraction: 0.2\n", encoding="utf-8")
    (root / "intents.yaml").write_text(INTENTS_YAML, encoding="utf-8")
    (root / "knowledge").mkdir(exist_ok=True)
    held_out = root / "tests" / "nlu"
    held_out.mkdir(parents=True, exist_ok=True)
    (held_out / "intents.yaml").write_text(HELD_OUT_YAML, encoding="utf-8")
    (held_out / "sentiment.jsonl").write_text(
        '{"text": "this is wonderful, thank you so much", "label": "positive"}\n'
        '{"text": "this is terrible and I am angry", "label": "negative"}\n', encoding="utf-8")
    return root


def trained_nlu_project(root: Path, **training: str | float) -> AssistantProject:
    """The sample project, its models trained (quick mode) with these `nlu.training` settings added."""
    config = write_nlu_project(root) / "assistant.yaml"
    settings = "".join(f"    {name}: {value}\n" for name, value in training.items())
    config.write_text(config.read_text().replace("  training:\n", f"  training:\n{settings}"))
    project = AssistantProject.load(root)
    train_project(project, show_progress=False)
    return project
