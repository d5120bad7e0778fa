"""The language-model interface every generation backend implements (local llama.cpp, OpenAI-compatible HTTP)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


class LLM(Protocol):
    """A chat model. Implementations raise GenerationUnavailable when they cannot produce text."""

    @property
    def context_tokens(self) -> int:
        """Size of the context window in tokens."""
        ...

    def stream(self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float = 0.0,
               stop: Sequence[str] = (), json_schema: dict[str, Any] | None = None) -> Iterator[str]:
        """Yield the reply piece by piece; `json_schema` constrains the output to matching JSON."""
        ...

    def first_token_logprobs(self, messages: Sequence[ChatMessage], *, top: int = 20) -> dict[str, float]:
        """Natural-log probabilities of the `top` likeliest first tokens of the reply, by token text: a measured
        judgement from the model ("yes" against "no") instead of the one word it would sample."""
        ...

    def count_tokens(self, text: str) -> int:
        """Number of tokens `text` takes in this model's prompt."""
        ...


def chat_request(messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float,
                 stop: Sequence[str]) -> dict[str, Any]:
    """The OpenAI chat-completions request body shared by the local and HTTP backends (streaming)."""
    request: dict[str, Any] = {
        "messages": [{"role": message.role, "content": message.content} for message in messages],
        "max_tokens": max_tokens, "temperature": temperature, "stream": True,
    }
    if stop:
        request["stop"] = list(stop)
    return request


def complete(llm: LLM, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float = 0.0,
             stop: Sequence[str] = (), json_schema: dict[str, Any] | None = None) -> str:
    """The whole reply as one string."""
    return "".join(llm.stream(messages, max_tokens=max_tokens, temperature=temperature, stop=stop,
                              json_schema=json_schema))
