"""Turning NLU and sentiment data into what the joint network trains on: words, tag ids and label ids."""

from __future__ import annotations

from collections.abc import Sequence

from chatwright.nlu.bio import bio_tags
from chatwright.nlu.markup import to_bio, word_tokens
from chatwright.nlu.model_files import data_hash, intent_data_hash
from chatwright.nlu.sentiment_data import Sentiment, SentimentExample
from chatwright.nlu.training_data import Example, NluData
from chatwright.training.joint_trainer import TaggedExample, TrainingTask

BINARY_NEUTRAL_BELOW = 0.75
"""A binary (negative/positive) sentiment model calls a message neutral when it is less sure than this."""


def intent_task(data: NluData, oos_intent: str, *, slots_by_intent: bool = True) -> TrainingTask:
    """Labels are the intents, tags come from the slots the examples use; with `slots_by_intent`, each intent's
    decoding is kept to the slots its own examples use."""
    intent_slots = {name: sorted({span.slot for example in intent.examples for span in example.entities})
                    for name, intent in data.intents.items()} if slots_by_intent else None
    return TrainingTask(kind="intent_slots", labels=data.labels, tags=bio_tags(data.used_slots()),
                        data_hash=intent_data_hash(data), oos_intent=oos_intent if oos_intent in data.intents else None,
                        intent_slots=intent_slots)


def tagged_intent_examples(examples: Sequence[Example], task: TrainingTask) -> list[TaggedExample]:
    tag_ids = {tag: index for index, tag in enumerate(task.tags)}
    label_ids = {label: index for index, label in enumerate(task.labels)}
    tagged = []
    for example in examples:
        words, tags = to_bio(example.text, example.entities, tokenizer=word_tokens)
        tagged.append(TaggedExample(tuple(words), tuple(tag_ids.get(tag, 0) for tag in tags),
                                    label_ids[example.intent]))
    return tagged


def sentiment_task(examples: Sequence[SentimentExample]) -> TrainingTask:
    """Three classes when the data has neutral examples; otherwise two, with neutral read from low confidence."""
    present = {example.label for example in examples}
    labels = [label.value for label in Sentiment if label in present or Sentiment.NEUTRAL in present]
    lines = [f"{example.label.value}\t{example.text}" for example in examples]
    neutral_below = None if Sentiment.NEUTRAL in present else BINARY_NEUTRAL_BELOW
    return TrainingTask(kind="sentiment", labels=labels, tags=["O"], data_hash=data_hash(lines),
                        neutral_below=neutral_below)


def tagged_sentiment_examples(examples: Sequence[SentimentExample], task: TrainingTask) -> list[TaggedExample]:
    label_ids = {label: index for index, label in enumerate(task.labels)}
    tagged = []
    for example in examples:
        words = tuple(example.text[start:end] for start, end in word_tokens(example.text))
        tagged.append(TaggedExample(words, (0,) * len(words), label_ids[example.label.value]))
    return tagged
