"""Fixtures shared by the tests that run the real assistant: the bank demo, copied and ingested once per session,
and one `chatwright serve` process for it that the end-to-end and browser tests share (models load once)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatwright.knowledge.index import KnowledgeIndex
from chatwright.models.registry import load_embedder
from chatwright.project import AssistantProject
from servers import RestartableServer

EXAMPLE_BANK = Path(__file__).resolve().parents[1] / "examples" / "bank"
ARTIFACTS = Path(__file__).parent / "artifacts"


def copy_bank(destination: Path) -> Path:
    """A copy of examples/bank without its generated state, so tests never write into examples/."""
    shutil.copytree(EXAMPLE_BANK, destination, ignore=shutil.ignore_patterns(".chatwright"))
    return destination


def ingest(project_dir: Path) -> None:
    project = AssistantProject.load(project_dir)
    embedder = load_embedder(project.config.models.embedder, root=project.root)
    report = KnowledgeIndex.open(project.index_dir, embedder).ingest(
        project.knowledge_dir, chunk_tokens=project.config.retrieval.chunk_tokens)
    assert report.added and not report.skipped, report


@pytest.fixture(scope="session")
def bank_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ingested bank demo; tests must not change it (copy it again to change its configuration)."""
    project = copy_bank(tmp_path_factory.mktemp("bank") / "bank")
    ingest(project)
    return project


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def bank_server(bank_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestartableServer]:
    server = RestartableServer(bank_project, tmp_path_factory.mktemp("bank_server"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
