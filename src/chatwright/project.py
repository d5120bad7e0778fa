"""An assistant project: the directory a user owns, and where each of its parts lives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from chatwright.config import AssistantConfig, load_config
from chatwright.errors import ConfigError

CONFIG_FILE = "assistant.yaml"
INTENTS_FILE = "intents.yaml"
ENTITIES_FILE = "entities.yaml"
SENTIMENT_FILE = "sentiment.jsonl"
FLOWS_FILE = "flows.yaml"
ACTIONS_FILE = "actions.py"
MODELS_DIR = "models"
INTENT_MODEL_DIR = "nlu"  # inside MODELS_DIR
SENTIMENT_MODEL_DIR = "sentiment"
CONVERSATION_TESTS_DIR = "tests/conversations"
KNOWLEDGE_DIR = "knowledge"
STATE_DIR = ".chatwright"


@dataclass(frozen=True)
class AssistantProject:
    root: Path
    config: AssistantConfig

    @classmethod
    def load(cls, root: Path | str) -> AssistantProject:
        root = Path(root).resolve()
        config_path = root / CONFIG_FILE
        if not config_path.is_file():
            raise ConfigError(f"no {CONFIG_FILE} here; create one with `chatwright init {root}`", path=root)
        return cls(root=root, config=load_config(config_path))

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def intents_path(self) -> Path:
        return self.root / INTENTS_FILE

    @property
    def entities_path(self) -> Path:
        return self.root / ENTITIES_FILE

    @property
    def sentiment_path(self) -> Path:
        """Optional labelled sentiment examples; without them the packaged model is used."""
        return self.root / SENTIMENT_FILE

    @property
    def flows_path(self) -> Path:
        return self.root / FLOWS_FILE

    @property
    def actions_path(self) -> Path:
        return self.root / ACTIONS_FILE

    @property
    def models_dir(self) -> Path:
        """Trained models: kept beside the project (not in the disposable state directory) and versionable."""
        return self.root / MODELS_DIR

    @property
    def intent_model_dir(self) -> Path:
        return self.models_dir / INTENT_MODEL_DIR

    @property
    def sentiment_model_dir(self) -> Path:
        return self.models_dir / SENTIMENT_MODEL_DIR

    @property
    def conversation_tests_dir(self) -> Path:
        return self.root / CONVERSATION_TESTS_DIR

    @property
    def knowledge_dir(self) -> Path:
        return self.root / KNOWLEDGE_DIR

    @property
    def state_dir(self) -> Path:
        """Generated state (index, default database); safe to delete and rebuild."""
        return self.root / STATE_DIR

    @property
    def index_dir(self) -> Path:
        return self.state_dir / "index"

    @property
    def database_url(self) -> str:
        if self.config.storage.url:
            return self.config.storage.url
        return f"sqlite:///{self.state_dir / 'chatwright.db'}"

    def resolve(self, relative: str) -> Path:
        """A path from configuration, relative to the project root."""
        path = Path(relative).expanduser()
        return path if path.is_absolute() else self.root / path
