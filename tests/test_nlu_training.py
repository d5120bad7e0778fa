"""Training, publishing, resuming and loading NLU models on a small real project with the packaged encoder."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from chatwright.config import NluTrainingConfig
from chatwright.dialogue.types import Route
from chatwright.models.onnx_encoder import OnnxEncoder
from chatwright.models.registry import encoder_location, load_embedder
from chatwright.nlu.bio import TagDecoder, bio_tags, transition_mask, viterbi
from chatwright.nlu.intent_classifier import IntentSlotClassifier
from chatwright.nlu.interpreter import NluInterpreter
from chatwright.nlu.joint_model import JointHeads, JointModel, encode_words
from chatwright.nlu.model_files import intent_data_hash, read_card
from chatwright.nlu.neighbours import NEIGHBOURS_FILE
from chatwright.nlu.precision import bf16_pays, resolve
from chatwright.nlu.sentiment_classifier import SentimentClassifier
from chatwright.nlu.sentiment_data import Sentiment, SentimentExample
from chatwright.nlu.slot_lexicon import LEXICON_FILE
from chatwright.nlu.trained_model import TorchOnOneThread, TrainedModel, load_encoder
from chatwright.nlu.training_data import load_nlu_data, load_project_nlu_data
from chatwright.project import AssistantProject
from chatwright.training.calibration import fit_temperature, oos_threshold
from chatwright.training.joint_trainer import _encoder_as_served, _WeightAverage, _with_lora
from chatwright.training.train_nlu import split_sentiment_examples, train_project
from nlu_samples import trained_nlu_project, write_nlu_project


def test_decoding_never_yields_an_inside_tag_without_its_beginning() -> None:
    tags = bio_tags(["amount", "recipient"])
    start, transitions = transition_mask(tags)
    # per word, the classifier prefers I-amount, then I-recipient: both invalid openings
    scores = np.full((3, len(tags)), -5.0, dtype=np.float32)
    scores[:, tags.index("I-amount")] = -0.1
    scores[:, tags.index("B-amount")] = -1.0
    scores[2, tags.index("I-recipient")] = 0.0
    decoded = [tags[i] for i in viterbi(scores, start, transitions)]
    assert decoded[0] == "B-amount"
    assert decoded[1] == "I-amount"
    assert decoded[2] != "I-recipient"


def test_decoding_keeps_to_the_slots_of_the_predicted_intent() -> None:
    tags = bio_tags(["amount", "playlist"])
    decoder = TagDecoder(tags, ["add_to_playlist", "transfer"], {"add_to_playlist": ["playlist"],
                                                                 "transfer": ["amount"]})
    scores = np.full((2, len(tags)), -5.0, dtype=np.float32)
    scores[0, tags.index("B-playlist")] = -0.1  # the tagger's favourite does not belong to a transfer
    scores[0, tags.index("B-amount")] = -1.0
    assert [tags[i] for i in decoder.decode(scores, 1)] == ["B-amount", "O"]
    assert [tags[i] for i in decoder.decode(scores, 0)] == ["B-playlist", "O"]
    unrestricted = TagDecoder(tags, ["add_to_playlist", "transfer"], None)
    assert [tags[i] for i in unrestricted.decode(scores, 1)] == ["B-playlist", "O"]


def test_tags_of_a_message_do_not_depend_on_the_longer_messages_batched_with_it() -> None:
    torch.manual_seed(0)
    heads = JointHeads(hidden=8, intents=3, tags=bio_tags(["a", "b"]), word_context=4).eval()
    words = torch.randn(1, 3, 8)
    pooled = torch.randn(1, 8)
    alone_intent, alone_tags = heads(pooled, words, torch.ones(1, 3, dtype=torch.bool))
    padded = torch.cat([torch.cat([words, torch.randn(1, 4, 8)], dim=1), torch.randn(1, 7, 8)])
    mask = torch.tensor([[True] * 3 + [False] * 4, [True] * 7])
    batch_intent, batch_tags = heads(torch.cat([pooled, torch.randn(1, 8)]), padded, mask)
    assert torch.allclose(alone_intent, batch_intent[:1], atol=1e-6)
    assert torch.allclose(alone_tags, batch_tags[:1, :3], atol=1e-6)  # padding read after the words changes nothing


def test_heads_without_slots_skip_the_word_path_and_draw_no_dropout_for_it() -> None:
    heads = JointHeads(hidden=8, intents=3, tags=["O"]).train()
    pooled, words = torch.randn(2, 8), torch.randn(2, 5, 8)
    torch.manual_seed(0)
    intent, tags = heads(pooled, words, torch.ones(2, 5, dtype=torch.bool))
    torch.manual_seed(0)
    expected = heads.intent(heads.dropout(pooled))  # the same dropout mask: nothing else drew random numbers
    assert torch.equal(intent, expected)
    assert tags.shape == (2, 5, 1) and not tags.any()


def test_words_read_in_context_lose_the_same_features_in_every_word_of_a_message() -> None:
    heads = JointHeads(hidden=6, intents=2, tags=bio_tags(["a"]), dropout=0.5, word_context=2).train()
    words = torch.ones(4, 7, 6)
    torch.manual_seed(0)
    dropped = heads._locked_dropout(words)
    assert torch.equal(dropped, dropped[:, :1].expand_as(dropped))  # one mask a message, shared by its words
    assert set(dropped.unique().tolist()) == {0.0, 2.0}  # kept features are scaled up to keep the mean
    assert not torch.equal(dropped[0], dropped[1])  # messages draw their own masks
    assert torch.equal(heads.eval()._locked_dropout(words), words)  # nothing is dropped at inference


def test_weight_average_follows_the_steps_with_its_horizon_and_is_only_worn_inside_its_block() -> None:
    network = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    network[0].bias.requires_grad = False  # frozen weights are neither averaged nor touched
    start = [p.detach().clone() for p in network.parameters()]
    average = _WeightAverage(network, horizon=4)
    expected = [p.detach().clone() for p in network.parameters()]
    for step in range(3):
        with torch.no_grad():
            for p in network.parameters():
                if p.requires_grad:
                    p.add_(step + 1.0)
        average.update()
        expected = [e + 0.25 * (p.detach() - e) if p.requires_grad else e
                    for e, p in zip(expected, network.parameters(), strict=True)]
    last = [p.detach().clone() for p in network.parameters()]
    with average.applied():
        worn = [p.detach().clone() for p in network.parameters()]
    assert all(torch.allclose(w, e) for w, e in zip(worn, expected, strict=True))
    assert not torch.allclose(worn[0], last[0])  # the average lags the last step
    assert torch.equal(worn[1], start[1])  # the frozen bias never moved
    assert all(torch.equal(p, q) for p, q in zip(network.parameters(), last, strict=True))  # put back
    with _WeightAverage(network, horizon=0).applied():  # off: the network keeps its own weights
        assert all(torch.equal(p, q) for p, q in zip(network.parameters(), last, strict=True))


def test_temperature_tempers_overconfident_logits_and_threshold_separates_out_of_scope() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=300)
    logits = rng.normal(size=(300, 3)).astype(np.float32)
    logits[np.arange(300), labels] += 1.0  # right about 60 % of the time ...
    logits *= 8.0  # ... but with near-certain softmax scores
    assert fit_temperature(logits, labels) > 2.0

    confidences = np.array([0.95, 0.9, 0.85, 0.3, 0.25, 0.2], dtype=np.float32)
    predicted = np.array([0, 1, 0, 1, 0, 1])
    gold = np.array([0, 1, 0, 2, 2, 2])  # label 2 is out of scope; the model never predicts it
    threshold = oos_threshold(confidences, predicted, gold, oos_label=2)
    assert 0.3 < threshold <= 0.85


@pytest.fixture(scope="module")
def quick_project(tmp_path_factory: pytest.TempPathFactory) -> AssistantProject:
    project = AssistantProject.load(write_nlu_project(tmp_path_factory.mktemp("nlu") / "assistant"))
    train_project(project, show_progress=False)
    return project


def test_quick_model_is_a_self_describing_directory(quick_project: AssistantProject) -> None:
    model_dir = quick_project.intent_model_dir
    card = read_card(model_dir)
    vote = {NEIGHBOURS_FILE} if card.vote_weight > 0 else set()  # kept only when validation gave it a share
    lexicon = {LEXICON_FILE} if card.lexicon_weight > 0 else set()  # likewise
    assert {path.name for path in model_dir.iterdir()} == {"nlu.json", "heads.safetensors", "metrics.json", *vote,
                                                           *lexicon}
    data = load_project_nlu_data(quick_project)
    assert data is not None
    assert card.mode == "quick" and card.kind == "intent_slots"
    assert card.data_hash == intent_data_hash(data)
    assert card.labels == sorted(data.intents)
    assert set(card.tags) == {"O", "B-amount", "I-amount", "B-recipient", "I-recipient", "B-card_type",
                              "I-card_type"}
    assert card.oos_intent == "out_of_scope"
    assert card.intent_slots is not None and card.intent_slots["transfer_money"] == ["amount", "recipient"]
    assert card.word_context > 0  # frozen word states are read in context before tagging
    assert card.precision == resolve("auto")  # trained, calibrated and served in the same arithmetic
    assert card.crf  # the tagger learned scores for moves between tags, saved with the heads
    assert card.joint_decoding  # intent and slots are decided together, the threshold calibrated on that
    assert {"crf.start", "crf.transitions", "crf.end"} <= set(load_file(str(model_dir / "heads.safetensors")))
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["validation_accuracy"] >= 0.75


def test_a_model_from_before_the_crf_still_loads_and_tags(quick_project: AssistantProject, tmp_path: Path) -> None:
    older = shutil.copytree(quick_project.intent_model_dir, tmp_path / "older")
    card = json.loads((older / "nlu.json").read_text())
    del card["crf"], card["joint_decoding"]
    (older / "nlu.json").write_text(json.dumps(card))
    heads = load_file(str(older / "heads.safetensors"))
    save_file({name: tensor for name, tensor in heads.items() if not name.startswith("crf.")},
              str(older / "heads.safetensors"))
    model = TrainedModel.load(older, root=quick_project.root)
    assert not model.card.crf and model._network.heads.crf is None and not model.card.joint_decoding
    [prediction] = model.predict(["send 20 euros to Tom"])
    assert "amount" in [entity.slot for entity in prediction.entities]


def test_joint_decoding_keeps_each_intent_to_its_own_slots(quick_project: AssistantProject) -> None:
    joint = TrainedModel.load(quick_project.intent_model_dir, root=quick_project.root)
    card = joint.card
    assert card.joint_decoding and card.intent_slots is not None
    messages = ["send 20 euros to Tom", "block my Visa card", "what are the fees", "pay 5 pounds to Ann now"]
    apart = TrainedModel(card.model_copy(update={"joint_decoding": False}), joint._tokenizer, joint._network,
                         joint._vote)
    for together, first in zip(joint.predict(messages), apart.predict(messages), strict=True):
        assert abs(float(together.probabilities.sum()) - 1.0) < 1e-5
        label = card.labels[int(together.probabilities.argmax())]
        assert {entity.slot for entity in together.entities} <= set(card.intent_slots[label])
        if label == card.labels[int(first.probabilities.argmax())]:
            assert together.entities == first.entities  # same intent: the same best tags for it


def test_quick_model_recognises_held_out_paraphrases(quick_project: AssistantProject) -> None:
    classifier = IntentSlotClassifier.load(quick_project.intent_model_dir, root=quick_project.root)
    held_out = load_nlu_data(quick_project.root / "tests" / "nlu" / "intents.yaml", min_examples=1).examples()
    predictions = classifier.predict([example.text for example in held_out])
    right = sum(p.intent == e.intent for p, e in zip(predictions, held_out, strict=True))
    assert right >= 8, [(e.text, p.intent) for p, e in zip(predictions, held_out, strict=True)]
    for prediction, example in zip(predictions, held_out, strict=True):
        assert prediction.ranking[0].confidence >= prediction.ranking[-1].confidence
        assert abs(sum(s.confidence for s in prediction.ranking) - 1.0) < 0.5
        for span in prediction.entities:  # decoded spans point into the text
            assert example.text[span.start:span.end] == span.value


@pytest.mark.skipif(not bf16_pays(), reason="bfloat16 does not pay on this CPU (emulated or slower); models serve "
                    "in fp32")
def test_a_bf16_model_serves_the_same_answers_as_in_fp32(quick_project: AssistantProject, tmp_path: Path) -> None:
    served = TrainedModel.load(quick_project.intent_model_dir, root=quick_project.root)
    assert served.card.precision == "bf16"
    as_fp32 = shutil.copytree(quick_project.intent_model_dir, tmp_path / "fp32")
    card = json.loads((as_fp32 / "nlu.json").read_text())
    (as_fp32 / "nlu.json").write_text(json.dumps({**card, "precision": "fp32"}))
    reference = TrainedModel.load(as_fp32, root=quick_project.root)
    texts = ["send 20 euros to Tom", "please block my visa", "hello there", "what's the weather like on mars"]
    for fast, exact in zip(served.predict(texts), reference.predict(texts), strict=True):
        assert fast.probabilities.argmax() == exact.probabilities.argmax()
        assert np.abs(fast.probabilities - exact.probabilities).max() < 0.05
        assert [e.slot for e in fast.entities] == [e.slot for e in exact.entities]


def test_an_int8_model_runs_with_quantised_encoder_weights_and_answers_like_the_fp32_one(
        quick_project: AssistantProject, tmp_path: Path) -> None:
    project = trained_nlu_project(tmp_path / "assistant", precision="int8")
    served = TrainedModel.load(project.intent_model_dir, root=project.root)
    assert served.card.precision == "int8" and served.precision == "int8"
    assert isinstance(served._network.encoder, OnnxEncoder)  # its int8 graph, made in training
    assert type(served._network.heads.intent) is torch.nn.Linear  # the small heads stay exact
    reference = TrainedModel.load(quick_project.intent_model_dir, root=quick_project.root)
    texts = ["send 20 euros to Tom", "please block my visa", "hello there", "transfer 300 dollars to my landlord",
             "my mastercard was stolen", "thanks a lot"]
    fast, exact = served.predict(texts), reference.predict(texts)
    assert sum(f.probabilities.argmax() == e.probabilities.argmax() for f, e in zip(fast, exact, strict=True)) >= 5
    slots = [[e.slot for e in prediction.entities] for prediction in fast]
    assert "amount" in slots[0] and "recipient" in slots[0], slots


def test_an_int8_lora_model_is_calibrated_merged_and_quantised_and_saved_as_trained() -> None:
    tokenizer, encoder = load_encoder(encoder_location("packaged:all-minilm-l6-v2"))
    batch = encode_words(tokenizer, [["block", "my", "card"]], 16)
    with torch.inference_mode():
        base = encoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state.mean(1)
    adapted = _with_lora(encoder, 4)
    torch.manual_seed(0)
    for name, parameter in adapted.named_parameters():
        if "lora_B" in name:  # a freshly made adapter changes nothing: give it something to merge
            torch.nn.init.normal_(parameter, std=0.3)
    network = JointModel(adapted, JointHeads(encoder.config.hidden_size, 3, ["O"])).eval()
    with torch.inference_mode():
        exact = network.features(batch)[0]
        with _encoder_as_served(network, tokenizer, "int8", "lora"):
            assert isinstance(network.encoder, OnnxEncoder)  # the graph of the merged encoder, as at load time
            quantised = network.features(batch)[0]
    assert network.encoder is adapted  # the adapter itself is what gets saved
    assert torch.cosine_similarity(exact, base).item() < 0.9  # the adapter moved the sentence vector ...
    assert torch.cosine_similarity(exact, quantised).item() > 0.95  # ... and the merged int8 copy keeps it


def test_interrupted_fine_tuning_resumes_and_keeps_the_last_good_model(tmp_path: Path) -> None:
    root = write_nlu_project(tmp_path / "assistant", mode="full", epochs=3)
    project = AssistantProject.load(root)
    (project.models_dir / "nlu").mkdir(parents=True)
    (project.models_dir / "nlu" / "nlu.json").write_text("{}")  # stands in for the previous model
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "chatwright.cli", "train", "nlu", str(root)]
    checkpoint = project.models_dir / ".nlu.checkpoint" / "state.pt"
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert checkpoint.exists(), "no checkpoint was written after the first epoch"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (project.models_dir / "nlu" / "nlu.json").read_text() == "{}"  # the last model is untouched

    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming training" in resumed.stdout + resumed.stderr
    card = read_card(project.models_dir / "nlu")
    assert card.mode == "full" and card.epochs_run <= 3
    assert (project.models_dir / "nlu" / "encoder" / "model.safetensors").is_file()
    assert not checkpoint.exists()
    assert not list(project.models_dir.glob(".nlu.*"))  # no staging or previous copies left behind
    classifier = IntentSlotClassifier.load(project.models_dir / "nlu", root=root)
    assert classifier.predict(["hello there"])[0].ranking  # the resumed model loads and predicts


def test_cli_trains_and_reports(tmp_path: Path) -> None:
    root = write_nlu_project(tmp_path / "assistant")
    cli = [sys.executable, "-m", "chatwright.cli"]
    trained = subprocess.run([*cli, "train", "nlu", str(root)], capture_output=True, text=True, timeout=600)
    assert trained.returncode == 0, trained.stderr
    assert "intent_slots" in trained.stdout
    tested = subprocess.run([*cli, "test", "nlu", str(root)], capture_output=True, text=True, timeout=600)
    assert tested.returncode == 0, tested.stderr
    assert "intent_accuracy" in tested.stdout
    report = root / "reports" / "nlu"
    for name in ("metrics.json", "intent_confusion.png", "confidence_histogram.png", "report.html",
                 "errors.jsonl"):
        assert (report / name).stat().st_size > 0, name
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["count"] == 10
    assert metrics["sentiment"]["count"] == 2

    folds = subprocess.run([*cli, "test", "nlu", str(root), "--cross-validation", "2", "--out",
                            str(tmp_path / "cv")], capture_output=True, text=True, timeout=600)
    assert folds.returncode == 0, folds.stderr
    assert json.loads((tmp_path / "cv" / "metrics.json").read_text())["count"] == 48


def test_interpreter_routes_on_the_trained_model_with_entities_and_sentiment(
        quick_project: AssistantProject) -> None:
    embedder = load_embedder(quick_project.config.models.embedder)
    interpreter = NluInterpreter.from_project(quick_project, embedder, load_project_nlu_data(quick_project))
    understanding = interpreter.understand("please send 50 euros to Anna tomorrow")
    assert understanding.intent == "transfer_money"
    assert understanding.route is Route.KNOWLEDGE and not understanding.out_of_scope
    assert understanding.ranking[0].intent == "transfer_money"
    values = {entity.entity: entity.value for entity in understanding.entities}
    assert values.get("amount") == {"amount": 50, "currency": "EUR"} or values.get("MONEY") == {
        "amount": 50, "currency": "EUR"}, understanding.entities
    assert any(entity.text == "Anna" for entity in understanding.entities)
    assert understanding.sentiment is not None

    greeting = interpreter.understand("hello there")
    assert greeting.intent == "greeting" and greeting.route is Route.GREETING
    joke = interpreter.understand("tell me a funny joke")
    assert joke.out_of_scope and joke.route is Route.OUT_OF_SCOPE


def test_interpreter_without_a_trained_model_routes_by_example_similarity(tmp_path: Path) -> None:
    project = AssistantProject.load(write_nlu_project(tmp_path / "assistant"))
    interpreter = NluInterpreter.from_project(project, load_embedder(project.config.models.embedder),
                                              load_project_nlu_data(project))
    understanding = interpreter.understand("good morning to you")
    assert understanding.intent == "greeting" and understanding.route is Route.GREETING
    assert len(understanding.ranking) == 5 and understanding.ranking[0].intent == "greeting"


def test_the_packaged_sentiment_model_reads_requests_as_neutral_and_opinions_by_polarity() -> None:
    classifier = SentimentClassifier.load()
    assert classifier.model.card.mode == "lora" and classifier.model.card.labels == ["negative", "neutral",
                                                                                       "positive"]
    readings = classifier.predict(["What is the fee for a transfer to Germany?", "block my visa",
                                   "thanks, that was really helpful", "this is pathetic"])
    assert [reading.label for reading in readings] == ["neutral", "neutral", "positive", "negative"]
    assert all(0.5 < reading.score <= 1.0 for reading in readings)


def test_overlapping_onnx_predictions_leave_torch_on_its_own_thread_count() -> None:
    """Two server threads predicting at once: the first out must not restore, the last out restores once."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        guard = TorchOnOneThread()
        first, second = guard.held(), guard.held()
        first.__enter__()
        second.__enter__()
        assert torch.get_num_threads() == 1
        first.__exit__(None, None, None)
        assert torch.get_num_threads() == 1  # the second prediction is still running
        second.__exit__(None, None, None)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_fine_tuned_word_states_are_dropped_out_once_at_the_word_rate_before_the_tag_classifier() -> None:
    heads = JointHeads(hidden=6, intents=2, tags=bio_tags(["a"]), dropout=0.1, word_dropout=0.5).train()
    pooled, words = torch.randn(3, 6), torch.ones(3, 4, 6)
    torch.manual_seed(0)
    _, tags = heads(pooled, words, torch.ones(3, 4, dtype=torch.bool))
    torch.manual_seed(0)
    heads.dropout(pooled)  # the intent path draws its mask first
    dropped = heads.word_dropout(words)
    assert set(dropped.unique().tolist()) == {0.0, 2.0}  # one mask at 0.5: kept features doubled, not quadrupled
    assert torch.equal(tags, heads.tags(dropped))  # nothing else was drawn on the way to the classifier


def test_sentiment_validation_is_a_seeded_share_held_apart_from_training() -> None:
    examples = [SentimentExample(f"message {i}", Sentiment.POSITIVE if i % 2 else Sentiment.NEGATIVE)
                for i in range(50)]
    settings = NluTrainingConfig(validation_fraction=0.2, seed=3)
    fitted, validation = split_sentiment_examples(examples, settings)
    assert len(validation) == 10 and sorted(fitted + validation, key=examples.index) == examples
    assert (fitted, validation) == split_sentiment_examples(examples, settings)  # the seed decides
    assert validation != split_sentiment_examples(examples, settings.model_copy(update={"seed": 4}))[1]


def test_fine_tuning_drops_the_word_states_at_the_configured_rate(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[JointHeads] = []

    class RecordedHeads(JointHeads):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr("chatwright.training.joint_trainer.JointHeads", RecordedHeads)
    project = AssistantProject.load(write_nlu_project(tmp_path / "assistant", mode="full", epochs=1))
    settings = project.config.nlu.training.model_copy(update={"word_dropout": 0.42})
    train_project(project, settings, show_progress=False)
    assert built and all(heads.word_dropout.p == 0.42 for heads in built)
