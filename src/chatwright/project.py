"""An assistant project: the directory a user owns, and where each of its parts lives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from chatwright.config import AssistantConfig, load_config
from chatwright.errors import ConfigError

CONFIG_FILE = "assistant.yaml"
INTENTS_FILE = "intents.yaml"
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
