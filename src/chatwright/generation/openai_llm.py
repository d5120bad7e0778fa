"""A chat model behind an OpenAI-compatible HTTP API (vLLM, llama.cpp server, Ollama), for bigger hardware."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import structlog

from chatwright.config import EndpointModel
from chatwright.errors import GenerationUnavailable, ModelLoadError
from chatwright.generation.llm import ChatMessage, chat_request

log = structlog.get_logger(__name__)

_CONNECT_TIMEOUT_S = 5.0
_CHARS_PER_TOKEN = 3.5
"""Servers tokenise differently and few expose a tokenizer, so counts are estimated. English averages about
four characters per token; 3.5 over-counts slightly so prompts stay inside the context window."""


class OpenAICompatibleLLM:
    """Implements the LLM protocol by streaming from `{endpoint}/chat/completions`."""

    def __init__(self, config: EndpointModel, *, context_tokens: int = 4096) -> None:
        self._url = str(config.endpoint).rstrip("/") + "/chat/completions"
        self._model = config.model
        self._context_tokens = context_tokens
        headers = {"Accept": "text/event-stream"}
        if config.api_key_env is not None:
            api_key = os.environ.get(config.api_key_env)
            if not api_key:
                raise ModelLoadError(f"environment variable {config.api_key_env} (models.llm.api_key_env) "
                                     f"is not set; it must hold the API key for {config.endpoint}")
            headers["Authorization"] = f"Bearer {api_key}"
        # Connecting fails fast so an unreachable server turns into a polite reply, not a long wait.
        timeout = httpx.Timeout(config.timeout_s, connect=min(_CONNECT_TIMEOUT_S, config.timeout_s))
        self._client = httpx.Client(headers=headers, timeout=timeout)

    @property
    def context_tokens(self) -> int:
        return self._context_tokens

    def stream(self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float = 0.0,
               stop: Sequence[str] = (), json_schema: dict[str, Any] | None = None) -> Iterator[str]:
        """Yield the reply piece by piece; any transport or server failure raises GenerationUnavailable."""
        request = {"model": self._model,
                   **chat_request(messages, max_tokens=max_tokens, temperature=temperature, stop=stop)}
        if json_schema is not None:
            schema = {"name": "reply", "schema": json_schema, "strict": True}
            request["response_format"] = {"type": "json_schema", "json_schema": schema}
        try:
            with self._client.stream("POST", self._url, json=request) as response:
                if not response.is_success:
                    body = response.read().decode("utf-8", errors="replace")[:300]
                    raise self._unavailable(f"{self._url} answered HTTP {response.status_code}: {body}")
                yield from self._pieces(response.iter_lines())
        except httpx.TimeoutException as error:
            raise self._unavailable(f"{self._url} did not answer in time ({type(error).__name__})") from error
        except httpx.HTTPError as error:
            raise self._unavailable(f"cannot reach {self._url}: {error}") from error

    def first_token_logprobs(self, messages: Sequence[ChatMessage], *, top: int = 20) -> dict[str, float]:
        """From the server's `logprobs` of a one-token reply (vLLM, llama.cpp server and OpenAI return them)."""
        request = {"model": self._model, **chat_request(messages, max_tokens=1, temperature=0.0, stop=()),
                   "stream": False, "logprobs": True, "top_logprobs": top}
        try:
            response = self._client.post(self._url, json=request, headers={"Accept": "application/json"})
        except httpx.HTTPError as error:
            raise self._unavailable(f"cannot reach {self._url}: {error}") from error
        if not response.is_success:
            raise self._unavailable(f"{self._url} answered HTTP {response.status_code}: {response.text[:300]}")
        try:
            first = response.json()["choices"][0]["logprobs"]["content"][0]
            return {entry["token"]: float(entry["logprob"]) for entry in first["top_logprobs"]}
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise self._unavailable(f"{self._url} returned no first-token logprobs: {response.text[:300]}") from error

    def count_tokens(self, text: str) -> int:
        """An estimate from the length; see _CHARS_PER_TOKEN for why it is not exact."""
        return math.ceil(len(text) / _CHARS_PER_TOKEN)

    def close(self) -> None:
        self._client.close()

    def _pieces(self, lines: Iterator[str]) -> Iterator[str]:
        """The content deltas of a server-sent-events stream of chat completion chunks."""
        for line in lines:
            if not line.startswith("data:"):
                continue
            data = line.removeprefix("data:").strip()
            if data == "[DONE]":
                return
            try:
                chunk = json.loads(data)
            except json.JSONDecodeError as error:
                raise self._unavailable(f"{self._url} sent a malformed chunk: {data[:200]!r}") from error
            if "error" in chunk:
                raise self._unavailable(f"{self._url} reported an error: {chunk['error']}")
            for choice in chunk.get("choices") or ():
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    yield piece

    def _unavailable(self, message: str) -> GenerationUnavailable:
        log.warning("generation endpoint unavailable", endpoint=self._url, reason=message)
        return GenerationUnavailable(message)
