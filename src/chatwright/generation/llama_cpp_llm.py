"""A GGUF chat model run in-process with llama.cpp: the offline default on a small CPU."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import structlog
from llama_cpp import Llama
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

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
        self._formatter = _chat_formatter(self._llama)
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

    def first_token_logprobs(self, messages: Sequence[ChatMessage], *, top: int = 20) -> dict[str, float]:
        """Read from the logits after the prompt, which llama.cpp keeps only for the last token: a model loaded
        to keep every token's logits (what its own logprobs option needs) would cost 4 bytes x vocabulary x
        context of memory. The prompt stays in the KV cache, so an answer to the same prompt with a different
        ending only reads its new tokens."""
        if self._formatter is None:
            raise GenerationUnavailable(f"{self.model_path} has no chat template to format the prompt with")
        chat: Any = [{"role": message.role, "content": message.content} for message in messages]
        prompt = self._formatter(messages=chat).prompt
        tokens = self._llama.tokenize(prompt.encode("utf-8"), special=True)  # as create_chat_completion does
        with self._lock:
            try:
                generation = self._llama.generate(tokens, temp=0.0)  # reuses the cached common prefix
                next(generation)  # the prompt is read; the sampled token is not, so the logits are the prompt's
                generation.close()
                # llama-cpp-python has no public reader of the last logits when logits_all is off
                last = self._llama._ctx.get_logits_ith(-1)
                logits = np.ctypeslib.as_array(last, shape=(self._llama.n_vocab(),)).astype(np.float64)
                logprobs = logits - np.logaddexp.reduce(logits)
            except Exception as error:
                log.error("llama.cpp evaluation failed", model=str(self.model_path), error=repr(error))
                raise GenerationUnavailable(f"the local model failed while reading a prompt: {error}") from error
        best = np.argsort(-logprobs)[:top]
        return {self._llama.detokenize([int(token)]).decode("utf-8", errors="replace"): float(logprobs[token])
                for token in best}

    def count_tokens(self, text: str) -> int:
        """Exact count with the model's own tokenizer (no lock: tokenizing does not touch the context)."""
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))


def _chat_formatter(llama: Llama) -> Jinja2ChatFormatter | None:
    """The prompt formatter of the chat template stored in the GGUF, as llama-cpp-python builds its own."""
    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        return None

    def token_text(token: int) -> str:
        return llama.detokenize([token], special=True).decode("utf-8", errors="replace") if token != -1 else ""
    return Jinja2ChatFormatter(template=template, eos_token=token_text(llama.token_eos()),
                               bos_token=token_text(llama.token_bos()), stop_token_ids=[llama.token_eos()])
