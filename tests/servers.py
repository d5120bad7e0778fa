"""Running chatwright servers for tests: an app in a uvicorn thread, or `chatwright serve` as a subprocess."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from benchmarks.common import free_port
from fastapi import FastAPI

from database_urls import sqlite_url


@contextmanager
def uvicorn_thread(app: FastAPI) -> Iterator[str]:
    """Serve `app` on a free localhost port in a background thread; yields the base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on port {port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@dataclass
class ServedProcess:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_for_health(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"`chatwright serve` exited ({process.returncode}):\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"`chatwright serve` not healthy after {timeout_s}s:\n{log_path.read_text()}")


@contextmanager
def chatwright_serve(project_dir: Path, log_path: Path, *, database_url: str | None = None,
                     port: int | None = None, timeout_s: float = 300) -> Iterator[ServedProcess]:
    """Run `python -m chatwright.cli serve DIR` until the block ends (SIGTERM: a graceful shutdown)."""
    port = port or free_port()
    command = [sys.executable, "-m", "chatwright.cli", "serve", str(project_dir), "--host", "127.0.0.1",
               "--port", str(port)]
    if database_url:
        command += ["--database-url", database_url]
    url = f"http://127.0.0.1:{port}"
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        wait_for_health(url, process, log_path, timeout_s)
        yield ServedProcess(url=url, process=process, log_path=log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class RestartableServer:
    """`chatwright serve` with an SQLite database in `state` unless given another; restartable on the same port
    and database, as a deployment restarts."""

    def __init__(self, project: Path, state: Path, database_url: str | None = None) -> None:
        self.project = project
        self.database_url = database_url or sqlite_url(state)
        self.log_path = state / "serve.log"
        self.port = free_port()
        self._running = ExitStack()
        self.process: ServedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = self._running.enter_context(
            chatwright_serve(self.project, self.log_path, database_url=self.database_url, port=self.port))

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it: uvicorn finishes the turns in production, then exits."""
        self._running.close()
        self.process = None

    def log(self) -> str:
        """The output of every start so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def restart(self) -> None:
        self.stop()
        self.start()
