"""The one place that turns a model reference from configuration into a loaded model, once per process.

Loading a model costs seconds and hundreds of megabytes, so every caller asking for the same reference with
the same settings gets the same object.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TypeVar

import structlog
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from chatwright.config import EndpointModel, ModelsConfig
from chatwright.errors import ModelLoadError
from chatwright.generation.llm import LLM
from chatwright.generation.openai_llm import OpenAICompatibleLLM
from chatwright.models.embedder import Embedder
from chatwright.models.packaged import (
    PACKAGED_EMBEDDERS,
    PACKAGED_LLMS,
    packaged_embedder_path,
    packaged_llm_path,
)

log = structlog.get_logger(__name__)

LLM_FORMS = (f"packaged:NAME (NAME one of {', '.join(sorted(PACKAGED_LLMS))}), a path to a .gguf file, "
             "hf:ORG/REPO/FILE.gguf, or an endpoint mapping {endpoint, model}")
EMBEDDER_FORMS = (f"packaged:NAME (NAME one of {', '.join(sorted(PACKAGED_EMBEDDERS))}), "
                  "a path to a sentence-transformers directory, or hf:ORG/REPO")

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):(.*)", re.DOTALL)
"""`scheme:rest`; one-letter schemes are left alone so Windows drive letters stay paths."""

_T = TypeVar("_T")
_llms: dict[Hashable, LLM] = {}
_embedders: dict[Hashable, Embedder] = {}
_load_lock = threading.Lock()


def available_cpus() -> int:
    """CPUs this process may run on, which in a container can be far fewer than the host has."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def load_llm(ref: str | EndpointModel, *, root: Path | None = None, threads: int | None = None,
             context_tokens: int = 4096) -> LLM:
    """The chat model `ref` names: packaged:NAME, a .gguf path (relative to `root`), hf:ORG/REPO/FILE.gguf,
    or an OpenAI-compatible endpoint. A model reached by two references (a packaged name and its cached
    file) is loaded once."""
    if isinstance(ref, EndpointModel):
        endpoint = ref
        return _cached(_llms, ("endpoint", endpoint.model_dump_json(), context_tokens),
                       lambda: OpenAICompatibleLLM(endpoint, context_tokens=context_tokens))
    cpu_threads = threads or available_cpus()
    scheme, rest = _split_reference(ref, LLM_FORMS)
    if scheme == "hf":  # keyed by reference: resolving it asks the hub
        return _cached(_llms, (ref, cpu_threads, context_tokens),
                       lambda: _llama(_hub_gguf(rest), cpu_threads, context_tokens))
    path = packaged_llm_path(rest) if scheme == "packaged" else _checked_gguf(local_path(rest, root))
    return _cached(_llms, (str(path), cpu_threads, context_tokens),
                   lambda: _llama(path, cpu_threads, context_tokens))


def load_embedder(ref: str, *, root: Path | None = None, threads: int | None = None) -> Embedder:
    """The sentence embedder `ref` names: packaged:NAME, a directory (relative to `root`), or hf:ORG/REPO."""
    cpu_threads = threads or available_cpus()
    name_or_path = encoder_location(ref, root=root)
    return _cached(_embedders, (name_or_path, cpu_threads),
                   lambda: _sentence_transformer(name_or_path, cpu_threads))


def encoder_location(ref: str, *, root: Path | None = None) -> str:
    """What transformers' `from_pretrained` takes for an encoder reference: a local directory or a hub id.

    The embedder and the fine-tuned NLU models start from the same encoders, so they resolve them alike."""
    scheme, rest = _split_reference(ref, EMBEDDER_FORMS)
    if scheme == "hf":
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", rest):
            raise ModelLoadError(f"encoder reference {ref!r} should be hf:ORG/REPO")
        return rest
    if scheme == "packaged":
        return str(packaged_embedder_path(rest))
    return str(_checked_directory(local_path(rest, root)))


def prepare_packaged_models(models: ModelsConfig | None = None) -> list[Path]:
    """Assemble and check the packaged models `models` names (the defaults when None), so that the first
    request does not pay for it; returns their paths. Used by `chatwright models prepare`."""
    models = models or ModelsConfig()
    prepared = []
    if isinstance(models.llm, str) and models.llm.startswith("packaged:"):
        name = models.llm.removeprefix("packaged:")
        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True)) as progress:
            task = progress.add_task(f"assembling {name}", total=None)
            prepared.append(packaged_llm_path(
                name, on_progress=lambda done, total: progress.update(task, completed=done, total=total)))
    if models.embedder.startswith("packaged:"):
        embedder = load_embedder(models.embedder)
        if embedder.encode(["a quick check"]).shape != (1, embedder.dim):
            raise ModelLoadError(f"{models.embedder} loaded but does not produce {embedder.dim}-dim vectors")
        prepared.append(packaged_embedder_path(models.embedder.removeprefix("packaged:")))
    return prepared


def _cached(cache: dict[Hashable, _T], key: Hashable, load: Callable[[], _T]) -> _T:
    with _load_lock:
        if key not in cache:
            cache[key] = load()
        return cache[key]


def _split_reference(ref: str, forms: str) -> tuple[str | None, str]:
    """(scheme, rest) for `packaged:` and `hf:` references, (None, ref) for paths."""
    match = _SCHEME.fullmatch(ref.strip())
    if match is None:
        return None, ref.strip()
    scheme, rest = match.groups()
    if scheme not in ("packaged", "hf"):
        raise ModelLoadError(f"unknown model reference {ref!r}; accepted: {forms}")
    return scheme, rest


def local_path(ref: str, root: Path | None) -> Path:
    """A path from configuration: relative ones are read from the project directory `root`."""
    path = Path(ref).expanduser()
    if not path.is_absolute() and root is not None:
        path = root / path
    return path.resolve()


def _checked_gguf(path: Path) -> Path:
    if not path.is_file() or path.suffix.lower() != ".gguf":
        raise ModelLoadError(f"no .gguf model file at {path}; accepted: {LLM_FORMS}")
    return path


def _checked_directory(path: Path) -> Path:
    if not path.is_dir():
        raise ModelLoadError(f"no sentence-transformers directory at {path}; accepted: {EMBEDDER_FORMS}")
    return path


def _hub_gguf(rest: str) -> Path:
    """Download (or find in the Hugging Face cache) `ORG/REPO/FILE.gguf`."""
    parts = rest.split("/")
    if len(parts) < 3 or not rest.lower().endswith(".gguf"):
        raise ModelLoadError(f"hub chat model reference hf:{rest} should be hf:ORG/REPO/FILE.gguf")
    from huggingface_hub import hf_hub_download  # only users of hub models pay for this import

    repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:])
    log.info("fetching model from the Hugging Face hub", repo=repo_id, file=filename)
    try:
        return Path(hf_hub_download(repo_id=repo_id, filename=filename))
    except Exception as error:  # the hub client raises many types: offline, not found, gated, HTTP
        raise ModelLoadError(f"cannot get {filename} from Hugging Face repo {repo_id} (offline, or no such "
                             f"file?): {error}; use a packaged model or a local .gguf file") from error


def _llama(path: Path, threads: int, context_tokens: int) -> LLM:
    from chatwright.generation.llama_cpp_llm import LlamaCppLLM  # only local models need llama.cpp loaded

    return LlamaCppLLM(path, threads=threads, context_tokens=context_tokens)


def _sentence_transformer(name_or_path: str, threads: int) -> Embedder:
    # torch takes seconds to import; endpoint-only tools should not pay for it
    from chatwright.models.sentence_embedder import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(name_or_path, threads=threads)
