"""The llama.cpp and OpenAI-compatible generation backends, with the real packaged model and real servers."""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from chatwright.config import EndpointModel
from chatwright.errors import GenerationUnavailable, ModelLoadError
from chatwright.generation.llama_cpp_llm import LlamaCppLLM
from chatwright.generation.llm import LLM, ChatMessage, complete
from chatwright.generation.openai_llm import OpenAICompatibleLLM
from chatwright.models.packaged import packaged_llm_path
from chatwright.models.registry import load_llm
from servers import free_port

API_KEY = "test-key-for-chatwright"
API_KEY_ENV = "CHATWRIGHT_TEST_API_KEY"
GREETING = [ChatMessage("system", "You are a helpful assistant. Answer briefly."),
            ChatMessage("user", "Say hello to Ada.")]


def endpoint(port: int, **settings: object) -> EndpointModel:
    url = f"http://127.0.0.1:{port}/v1"
    return EndpointModel.model_validate({"endpoint": url, "model": "qwen", **settings})


@pytest.fixture(scope="module")
def gguf() -> Path:
    return packaged_llm_path("qwen2.5-coder-0.5b-instruct")


@pytest.fixture(scope="module")
def local_llm(gguf: Path) -> LLM:
    return load_llm("packaged:qwen2.5-coder-0.5b-instruct")


@pytest.fixture(scope="module")
def llama_server(gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The llama-cpp-python OpenAI-compatible server on a free port, requiring an API key."""
    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
               "--port", str(port), "--n_ctx", "2048", "--api_key", API_KEY]
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    with log_path.open("wb") as log_file:
        server = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {log_path.read_text()[-2000:]}")
            try:
                headers = {"Authorization": f"Bearer {API_KEY}"}
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", headers=headers, timeout=2).is_success:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "llama_cpp.server did not start in time"
            time.sleep(0.5)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_local_model_streams_a_reply_in_pieces(local_llm: LLM) -> None:
    pieces = list(local_llm.stream(GREETING, max_tokens=24))
    assert len(pieces) > 1
    assert "hello" in "".join(pieces).lower()


def test_local_model_output_follows_a_json_schema(local_llm: LLM) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "confident": {"type": "boolean"}},
              "required": ["city", "confident"]}
    question = [ChatMessage("user", "Which city is the capital of France? Answer as JSON.")]
    reply = json.loads(complete(local_llm, question, max_tokens=48, json_schema=schema))
    assert set(reply) == {"city", "confident"}
    assert isinstance(reply["city"], str) and isinstance(reply["confident"], bool)
    assert "paris" in reply["city"].lower()


def test_local_model_stops_at_a_stop_sequence(local_llm: LLM) -> None:
    question = [ChatMessage("user", "Count from 1 to 10, separated by commas.")]
    reply = complete(local_llm, question, max_tokens=40, stop=["5"])
    assert "4" in reply and "5" not in reply and "9" not in reply


def test_concurrent_callers_get_the_same_reply_as_one_caller(local_llm: LLM) -> None:
    alone = complete(local_llm, GREETING, max_tokens=10)
    replies: list[str] = []
    threads = [threading.Thread(target=lambda: replies.append(complete(local_llm, GREETING, max_tokens=10)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert replies == [alone, alone]


def test_local_model_counts_tokens_with_its_tokenizer(local_llm: LLM) -> None:
    assert local_llm.count_tokens("") == 0
    assert 1 <= local_llm.count_tokens("Hello world") <= 4
    sentence = "The quick brown fox jumps over the lazy dog. "
    assert local_llm.count_tokens(sentence * 10) > 5 * local_llm.count_tokens(sentence)


def test_prompt_beyond_the_context_window_raises_generation_unavailable(local_llm: LLM) -> None:
    too_long = [ChatMessage("user", "word " * 6000)]
    with pytest.raises(GenerationUnavailable, match="local model failed"):
        complete(local_llm, too_long, max_tokens=8)


def test_unloadable_gguf_raises_model_load_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelLoadError, match="cannot load"):
        LlamaCppLLM(broken, threads=1, context_tokens=512)


def test_endpoint_streams_a_reply(llama_server: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_KEY_ENV, API_KEY)
    llm = OpenAICompatibleLLM(endpoint(llama_server, api_key_env=API_KEY_ENV), context_tokens=2048)
    pieces = list(llm.stream(GREETING, max_tokens=24))
    assert len(pieces) > 1
    assert "hello" in "".join(pieces).lower()
    assert llm.context_tokens == 2048


def test_endpoint_rejecting_the_request_raises_generation_unavailable(llama_server: int) -> None:
    llm = OpenAICompatibleLLM(endpoint(llama_server))  # no API key
    url = rf"http://127\.0\.0\.1:{llama_server}/v1/chat/completions"
    with pytest.raises(GenerationUnavailable, match=rf"{url} answered HTTP 401"):
        complete(llm, GREETING, max_tokens=8)


def test_missing_api_key_variable_is_a_load_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    with pytest.raises(ModelLoadError, match=API_KEY_ENV):
        OpenAICompatibleLLM(endpoint(free_port(), api_key_env=API_KEY_ENV))


def test_unreachable_endpoint_fails_fast() -> None:
    port = free_port()
    llm = OpenAICompatibleLLM(endpoint(port))
    started = time.monotonic()
    with pytest.raises(GenerationUnavailable, match=f"cannot reach http://127.0.0.1:{port}/v1/chat/completions"):
        complete(llm, GREETING, max_tokens=8)
    assert time.monotonic() - started < 5


def test_silent_endpoint_times_out() -> None:
    with socket.socket() as listener:  # accepts connections and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        llm = OpenAICompatibleLLM(endpoint(listener.getsockname()[1], timeout_s=1.0))
        started = time.monotonic()
        with pytest.raises(GenerationUnavailable, match="did not answer in time"):
            complete(llm, GREETING, max_tokens=8)
        assert time.monotonic() - started < 5


class _CannedServer(http.server.BaseHTTPRequestHandler):
    """Answers every POST with one fixed status and body (set on a subclass)."""

    status = 200
    content_type = "application/json"
    body = b""

    def do_POST(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Type", self.content_type)
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""


class _Overloaded(_CannedServer):
    status, content_type, body = 503, "text/plain", b"model is overloaded"


class _WithoutLogprobs(_CannedServer):
    """Answers but ignores the logprobs request, as some OpenAI-compatible servers do."""

    body = json.dumps({"choices": [{"message": {"role": "assistant", "content": "yes"}}]}).encode()


@contextmanager
def canned_endpoint(handler: type[_CannedServer]) -> Iterator[OpenAICompatibleLLM]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield OpenAICompatibleLLM(endpoint(server.server_address[1]))
    finally:
        server.shutdown()
        server.server_close()


def test_server_error_raises_generation_unavailable_with_the_reason() -> None:
    with canned_endpoint(_Overloaded) as llm:
        with pytest.raises(GenerationUnavailable, match="answered HTTP 503: model is overloaded"):
            complete(llm, GREETING, max_tokens=8)
        with pytest.raises(GenerationUnavailable, match="answered HTTP 503: model is overloaded"):
            llm.first_token_logprobs(GREETING)


def test_endpoint_without_logprobs_raises_generation_unavailable() -> None:
    with canned_endpoint(_WithoutLogprobs) as llm, pytest.raises(GenerationUnavailable,
                                                                match="returned no first-token logprobs"):
        llm.first_token_logprobs(GREETING)


def test_endpoint_counts_tokens_by_estimate_and_loads_once() -> None:
    port = free_port()
    llm = load_llm(endpoint(port))
    assert load_llm(endpoint(port)) is llm
    assert llm.count_tokens("") == 0
    assert llm.count_tokens("Hello world") == 4  # ceil(11 / 3.5)


def test_endpoint_first_token_logprobs_match_the_local_model(llama_server: int, local_llm: LLM,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The same model behind llama.cpp's server ranks the same first token first, with the same probability."""
    monkeypatch.setenv(API_KEY_ENV, API_KEY)
    remote = OpenAICompatibleLLM(endpoint(llama_server, api_key_env=API_KEY_ENV), context_tokens=2048)
    question = [ChatMessage("system", "You are a helpful assistant."),
                ChatMessage("user", "Is Paris the capital of France? Reply yes or no.")]  # Yes 0.65, No 0.32

    served, local = remote.first_token_logprobs(question, top=5), local_llm.first_token_logprobs(question, top=5)

    assert 1 <= len(served) <= 5 and len(local) == 5
    assert all(logprob <= 0.0 for logprob in [*served.values(), *local.values()])
    best_served, best_local = max(served, key=served.__getitem__), max(local, key=local.__getitem__)
    assert best_served == best_local == "Yes"
    assert served["Yes"] == pytest.approx(local["Yes"], abs=0.05)
    assert served["No"] == pytest.approx(local["No"], abs=0.05)

