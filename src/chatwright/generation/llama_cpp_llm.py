"""A GGUF chat model run in-process with llama.cpp: the offline default on a small CPU."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import structlog
from llama_cpp import Llama

from chatwright.errors import GenerationUnavailable, ModelLoadError
from chatwright.generation.llm import ChatMessage, chat_request

log = structlog.get_logger(__name__)


class LlamaCppLLM:
    """Implements the LLM protocol; prompts are formatted with the chat template stored in the GGUF."""

    def __init__(self, model_path: Path, *, threads: int, context_tokens: int = 4096) -> None:
        try:
            self._llama = Llama(model_path=str(model_path), n_ctx=context_tokens, n_threads=threads,
                                n_threads_batch=threads, verbose=False)
        except (ValueError, RuntimeError, OSError) as error:
            raise ModelLoadError(f"llama.cpp cannot load {model_path}: {error}") from error
        self._context_tokens = context_tokens
        # One llama context holds one conversation's KV cache; concurrent callers would corrupt it.
        self._lock = threading.Lock()
        self.model_path = model_path
        log.info("llm loaded", model=str(model_path), threads=threads, context_tokens=context_tokens)

    @property
    def context_tokens(self) -> int:
        return self._context_tokens

    def stream(self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float = 0.0,
               stop: Sequence[str] = (), json_schema: dict[str, Any] | None = None) -> Iterator[str]:
        """Yield the reply piece by piece, holding the model until the reply is finished or abandoned."""
        request = chat_request(messages, max_tokens=max_tokens, temperature=temperature, stop=stop)
        if json_schema is not None:
            request["response_format"] = {"type": "json_object", "schema": json_schema}
        with self._lock:
            try:
                # with stream=True llama.cpp returns an iterator of chunks
                chunks = cast(Iterator[dict[str, Any]], self._llama.create_chat_completion(**request))
                for chunk in chunks:
                    piece = chunk["choices"][0]["delta"].get("content")
                    if piece:
                        yield piece
            except Exception as error:
                log.error("llama.cpp generation failed", model=str(self.model_path), error=repr(error))
                raise GenerationUnavailable(f"the local model failed while generating: {error}") from error

    def count_tokens(self, text: str) -> int:
        """Exact count with the model's own tokenizer (no lock: tokenizing does not touch the context)."""
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))
