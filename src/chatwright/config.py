"""The assistant's `assistant.yaml`: one validated configuration object, checked once at load time."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from chatwright.yaml_lines import load_yaml, validate


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EndpointModel(_Strict):
    """A generation model served over an OpenAI-compatible HTTP API (vLLM, llama.cpp server, Ollama)."""

    endpoint: HttpUrl
    model: str = Field(description="model name the server expects")
    api_key_env: str | None = Field(default=None, description="environment variable holding the API key")
    timeout_s: float = Field(default=60.0, gt=0)


class ModelsConfig(_Strict):
    """Model references: `packaged:NAME`, a local path, `hf:ORG/REPO[/FILE.gguf]`, or an endpoint."""

    llm: str | EndpointModel = "packaged:qwen2.5-coder-0.5b-instruct"
    embedder: str = "packaged:all-minilm-l6-v2"
    threads: int | None = Field(default=None, ge=1, description="CPU threads for local models; default: all")
    context_tokens: int = Field(default=4096, ge=512)


class GenerationConfig(_Strict):
    answer_instructions: str = Field(
        default=("Answer the customer's question in one to three sentences of your own, using only the sources. "
                 "Do not add facts, fees, numbers or steps that are not in the sources."),
        description="how to answer from the sources; appended to the persona")
    max_answer_tokens: int = Field(default=256, ge=8)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    history_tokens: int = Field(default=1024, ge=0, description="budget for earlier turns in the prompt")
    rewrite_follow_ups: bool = True


RetrievalMode = Literal["hybrid", "dense", "lexical"]


class RetrievalConfig(_Strict):
    mode: RetrievalMode = Field(default="hybrid", description="fuse BM25 and dense rankings, or use one alone")
    top_k: int = Field(default=3, ge=1, le=20, description="passages given to the model")
    candidates: int = Field(default=20, ge=1, description="candidates per retriever before fusion")
    rrf_k: int = Field(default=60, ge=1)
    chunk_tokens: int = Field(default=180, ge=32, description="target chunk size in words")
    max_sentences: int = Field(default=3, ge=1, description="sentences kept per passage in the prompt")


class AbstentionConfig(_Strict):
    """How sure the assistant must be that the knowledge supports an answer before giving one."""

    min_similarity: float = Field(default=0.30, ge=-1.0, le=1.0,
                                  description="minimum question-to-passage cosine similarity")
    min_coverage: float = Field(default=0.5, ge=0.0, le=1.0,
                                description="minimum share of the question's terms found in one passage")
    min_answerability: float | None = Field(
        default=None, ge=0.0, le=1.0, description="when set, the chat model is also asked whether the passages "
        "answer the question, and its probability of yes must reach this; costs one short prompt read per "
        "question (the answer reuses it); worth most with a larger model than the packaged 0.5B")


class RoutingConfig(_Strict):
    """When a message is confidently small talk, a handoff request or out of scope, it skips retrieval."""

    min_confidence: float = Field(default=0.65, ge=0.0, le=1.0,
                                  description="minimum intent confidence to leave the knowledge route")


class DialogueConfig(_Strict):
    """How the dialogue policy chooses between flows, knowledge, clarifying and handing off."""

    min_confidence: float = Field(default=0.6, ge=0.0, le=1.0,
                                  description="minimum intent confidence to start or switch to a flow unasked")
    clarify_margin: float = Field(default=0.1, ge=0.0, le=1.0,
                                  description="ask which one was meant when the top two intents are this close")
    clarify_min_confidence: float = Field(
        default=0.4, ge=0.0, le=1.0, description="confidence the runner-up needs to be offered as an option")
    handoff_after_failures: int | None = Field(
        default=3, ge=1, description="hand off after this many answers in a row were not accepted; null: never")
    handoff_negative_turns: int | None = Field(
        default=3, ge=1, description="hand off after this many negative messages in a row; null: never")
    negative_score: float = Field(default=0.9, ge=0.0, le=1.0,
                                  description="minimum score of a negative reading to apologise or count as upset")
    llm_flow_proposals: bool = Field(
        default=True, description="when the NLU is unsure, let the LLM propose a flow marked `llm: true`")
    cancel_intent: str = Field(default="cancel", description="intent in intents.yaml that cancels the active flow")


Precision = Literal["auto", "fp32", "bf16", "int8"]
TrainingMode = Literal["full", "lora", "quick", "contrastive"]


class NluTrainingConfig(_Strict):
    """How `chatwright train nlu` fine-tunes the intent and slot model (and the sentiment model when labelled)."""

    mode: TrainingMode = Field(
        default="full", description="full fine-tuning, LoRA adapters, quick (frozen encoder, trained heads), or "
        "contrastive: the encoder learns to place messages of one intent together, then quick heads (few examples)")
    base_model: str = Field(default="packaged:all-minilm-l6-v2", description="encoder to fine-tune")
    epochs: int = Field(default=12, ge=1, description="upper bound; early stopping usually ends sooner")
    min_steps: int = Field(
        default=1000, ge=0, description="small data trains for more epochs than `epochs` (at most 100) until the "
        "encoder has taken this many optimiser steps; its patience grows in proportion")
    patience: int = Field(
        default=2, ge=1, description="epochs without validation gain before stopping; the averaged weights make "
        "validation smooth enough that two are enough (without `weight_averaging`, 3 is safer)")
    batch_size: int = Field(default=32, ge=1)
    learning_rate: float = Field(
        default=1e-4, gt=0, description="the encoder's rate in full fine-tuning (LoRA adapters learn at "
        "lora_learning_rate; quick and contrastive heads at their own)")
    head_learning_rate: float = Field(default=2e-3, gt=0)
    label_smoothing: float = Field(
        default=0.1, ge=0.0, lt=1.0, description="intent targets softened this much: less over-fitting to "
        "the training examples; confidences are re-calibrated on validation data afterwards")
    word_dropout: float = Field(
        default=0.3, ge=0.0, lt=1.0, description="share of a fine-tuned encoder's word-state features dropped "
        "before the slot tagger while training (full and LoRA modes; quick mode's LSTM keeps its own dropout)")
    weight_averaging: bool = Field(
        default=True, description="validation and the saved model use a moving average of the trained "
        "weights over about the last epoch of steps instead of the last step's weights, which are noisier "
        "(every mode; contrastive pairs keep their last weights, its heads are averaged)")
    contrastive_epochs: int = Field(
        default=6, ge=1, description="contrastive mode: passes in which every example is paired with another "
        "example of its intent about once per example of that intent")
    contrastive_learning_rate: float = Field(default=2e-5, gt=0)
    lora_rank: int = Field(default=16, ge=1)
    lora_learning_rate: float = Field(default=1e-3, gt=0, description="adapters learn faster than full weights")
    max_tokens: int = Field(default=64, ge=8, description="subword tokens per message; longer ones are cut")
    precision: Precision = Field(
        default="auto", description="bf16 runs the encoder's products in bfloat16 (training and the model's "
        "inference); auto: where the CPU has bfloat16 in hardware (AMX, AVX512-BF16) and a timed probe finds it "
        "faster, else fp32; fp32 and "
        "int8 encoders are served by ONNX Runtime; int8: the trained encoder's matrix products run in 8 bits, "
        "a little faster than fp32 and a smaller file, for some accuracy, most in slots of quick mode (quick "
        "and contrastive heads learn from int8 features; full and LoRA train in fp32 and are quantised before "
        "calibration)")
    crf: bool = Field(
        default=True, description="the slot tagger also learns scores for moves between tags (a linear-chain "
        "CRF) and decodes with them, rather than deciding each word's tag alone")
    slots_by_intent: bool = Field(
        default=True, description="tag a message only with the slots its predicted intent's examples use")
    joint_decoding: bool = Field(
        default=True, description="with slots_by_intent, decide intent and slots together: an intent's "
        "probability is weighed by how likely its best tags are, so slots the tagger is sure of can overturn "
        "a close intent decision")
    teacher: str | None = Field(
        default=None, description="a model trained on the same data, usually on a larger encoder too slow to "
        "serve, whose predictions the models also learn from (knowledge distillation; full and LoRA modes): a "
        "trained model directory, or a models directory (one `chatwright train nlu --out` wrote), whose nlu/ "
        "teaches the intent model and sentiment/ the sentiment model; relative paths are read from the project "
        "directory")
    distillation_weight: float = Field(
        default=0.5, ge=0.0, le=1.0, description="share of the training loss that follows the teacher's "
        "predictions; the rest follows the labels")
    distillation_temperature: float = Field(
        default=2.0, gt=0.0, description="both models' scores are divided by this before comparing, so the "
        "teacher's second and third choices carry weight too")
    distillation_phrases: int = Field(
        default=0, ge=0, description="with a teacher and data without slots: per training message, up to this "
        "many of its phrases (runs of at least half its words) are added with the teacher's label, as SST-2's "
        "phrase-level training set adds phrases to its sentences")
    validation_fraction: float = Field(default=0.1, gt=0.0, lt=0.5)
    seed: int = 42
    augment_copies: int = Field(default=0, ge=0, description="augmented copies per annotated example; 0 = off")
    intent_names_as_examples: bool = Field(
        default=True, description="each intent's name, in words (\"card_arrival\": \"card arrival\"), is one more "
        "training example: helps intents with few examples; turn off when names are codes, not meanings")
    oos_intent: str = Field(default="out_of_scope", description="intent name of trained out-of-scope examples")
    oos_threshold: float | None = Field(
        default=None, ge=0.0, le=1.0, description="fixed out-of-scope confidence threshold; default: calibrated")
    vote_weight: float | None = Field(
        default=None, ge=0.0, le=1.0, description="share of the nearest training examples' vote in intent and "
        "sentiment probabilities (nlu/neighbours.py); default: fitted on validation data, 0 where it does not "
        "help; 0 turns it off")
    lexicon_weight: float | None = Field(
        default=None, ge=0.0, description="weight of the bonus that slot values seen in training add to the "
        "tagger's scores where a message repeats one (nlu/slot_lexicon.py); default: fitted on validation data, "
        "0 where it does not help; 0 turns it off")

    @property
    def unused_learning_rate(self) -> str | None:
        """Why `learning_rate`, set away from its default, goes unused in this mode; None when it is used or left
        alone. Not a validation error: a template's whole training block may be uncommented for another mode."""
        if self.mode == "full" or self.learning_rate == type(self).model_fields["learning_rate"].default:
            return None
        instead = ("LoRA adapters learn at nlu.training.lora_learning_rate" if self.mode == "lora"
                   else "its heads train at their own fixed rates")
        return f"learning_rate is full fine-tuning's; mode {self.mode} does not use it ({instead})"

    @model_validator(mode="after")
    def _teacher_needs_fine_tuning(self) -> NluTrainingConfig:
        if self.teacher is not None and self.mode not in ("full", "lora"):
            raise ValueError(f"a teacher teaches the encoder, so it needs mode full or lora, not {self.mode}")
        return self


class NluConfig(_Strict):
    training: NluTrainingConfig = NluTrainingConfig()
    spacy_entities: list[str] = Field(
        default_factory=lambda: ["PERSON", "ORG", "GPE", "DATE", "TIME", "MONEY", "CARDINAL"],
        description="spaCy entity types reported besides the trained slots; [] turns spaCy off")


class StorageConfig(_Strict):
    url: str | None = Field(default=None, description="SQLAlchemy URL; default: SQLite beside the assistant")


class ServerConfig(_Strict):
    max_message_chars: int = Field(default=2000, ge=1)


class AssistantConfig(_Strict):
    name: str = Field(min_length=1)
    persona: str = "You are a friendly, concise customer-support assistant."
    tone: str = "warm and professional"
    language: str = "en"
    models: ModelsConfig = ModelsConfig()
    generation: GenerationConfig = GenerationConfig()
    retrieval: RetrievalConfig = RetrievalConfig()
    abstention: AbstentionConfig = AbstentionConfig()
    routing: RoutingConfig = RoutingConfig()
    nlu: NluConfig = NluConfig()
    dialogue: DialogueConfig = DialogueConfig()
    storage: StorageConfig = StorageConfig()
    server: ServerConfig = ServerConfig()
    responses: dict[str, list[str]] = Field(
        default_factory=dict, description="replies per route (greeting, thanks, goodbye, human, out_of_scope, ...)")
    log_level: Literal["debug", "info", "warning", "error"] = "info"


def load_config(path: Path) -> AssistantConfig:
    """Load and validate `assistant.yaml`; errors name the file, line and field."""
    return validate(AssistantConfig, load_yaml(path))
