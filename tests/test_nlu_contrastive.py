"""Contrastive (few-shot) training: the pairs it learns from, its loss, and a model trained that way end to end."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from chatwright.models.registry import encoder_location
from chatwright.nlu.intent_classifier import IntentSlotClassifier
from chatwright.nlu.model_files import read_card
from chatwright.nlu.training_data import load_nlu_data
from chatwright.project import AssistantProject
from chatwright.training.contrastive import in_batch_contrastive_loss, pair_batches
from chatwright.training.train_nlu import train_project
from nlu_samples import write_nlu_project


def test_pairs_join_examples_of_one_label_and_never_repeat_a_label_in_a_batch() -> None:
    labels = [0] * 10 + [1] * 10 + [2] * 3 + [3]  # label 3 has no partner
    batches = pair_batches(labels, batch_size=2, rng=random.Random(1))
    anchors: Counter[int] = Counter()
    for batch in batches:
        assert len(batch) == 2
        assert len({labels[a] for a, _ in batch}) == len(batch)  # the other pairs are this pair's negatives
        for anchor, positive in batch:
            assert anchor != positive and labels[anchor] == labels[positive]
            anchors[labels[anchor]] += 1
    assert 3 not in anchors
    assert pair_batches([0, 1, 2], batch_size=4, rng=random.Random(1)) == []  # nothing to pair: no pass at all
    # a label takes part about as often as it has examples
    assert anchors[0] >= 6 and anchors[1] >= 6 and 1 <= anchors[2] <= 6


def test_the_loss_is_low_when_each_anchor_is_closest_to_its_own_positive() -> None:
    generator = torch.Generator().manual_seed(0)
    anchors = torch.randn(8, 16, generator=generator)
    matched = in_batch_contrastive_loss(anchors, anchors + 0.05 * torch.randn(8, 16, generator=generator))
    shuffled = in_batch_contrastive_loss(anchors, anchors.roll(1, dims=0))
    assert matched.item() < 0.1 < 2.0 < shuffled.item()


def test_contrastive_training_tunes_the_encoder_and_recognises_held_out_paraphrases(tmp_path: Path) -> None:
    root = write_nlu_project(tmp_path / "assistant", mode="contrastive")
    project = AssistantProject.load(root)
    train_project(project, show_progress=False)
    model_dir = project.intent_model_dir
    card = read_card(model_dir)
    assert card.mode == "contrastive"
    tuned = load_file(str(model_dir / "encoder" / "model.safetensors"))
    packaged = load_file(str(Path(encoder_location("packaged:all-minilm-l6-v2")) / "model.safetensors"))
    moved = [name for name, tensor in tuned.items() if "layer" in name and name in packaged
             and not torch.allclose(tensor, packaged[name])]
    assert moved  # the encoder's own layers were tuned, and the tuned copy travels with the model
    assert not list(project.models_dir.glob(".nlu.*"))  # checkpoint and staging cleaned up

    classifier = IntentSlotClassifier.load(model_dir, root=root)
    held_out = load_nlu_data(root / "tests" / "nlu" / "intents.yaml", min_examples=1).examples()
    predictions = classifier.predict([example.text for example in held_out])
    right = sum(p.intent == e.intent for p, e in zip(predictions, held_out, strict=True))
    assert right >= 8, [(e.text, p.intent) for p, e in zip(predictions, held_out, strict=True)]
    confidences = np.array([p.ranking[0].confidence for p in predictions])
    assert ((confidences > 0) & (confidences <= 1)).all()
