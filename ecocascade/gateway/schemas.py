"""OpenAI request bodies, validated at the HTTP edge (pydantic), and the response shapes.

Only what the gateway reads is declared; other fields OpenAI defines are kept (``extra="allow"``)
and go to the tiers as sampling params, except those that describe the call rather than the
answer (``user``, ``metadata``, ``store``, ``stream_options``, ...).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ChatCompletionBody",
    "EmbeddingsBody",
    "FeedbackBody",
    "chat_completion",
    "completion_chunk",
    "usage_dict",
]

# Fields that say how to deliver or bill the call, not what to answer: never part of the cache key.
_NOT_PARAMS = frozenset(
    {
        "model",
        "messages",
        "tools",
        "tool_choice",
        "response_format",
        "stream",
        "stream_options",
        "n",
        "user",
        "metadata",
        "store",
        "service_tier",
        "parallel_tool_calls",
        "functions",
        "function_call",
    }
)


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionBody(BaseModel):
    """``POST /v1/chat/completions``."""

    model_config = ConfigDict(extra="allow")

    model: Annotated[str, Field(min_length=1)]
    messages: Annotated[list[_Message], Field(min_length=1)]
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    n: Annotated[int, Field(ge=1)] = 1
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    max_tokens: Annotated[int, Field(gt=0)] | None = None
    max_completion_tokens: Annotated[int, Field(gt=0)] | None = None
    seed: int | None = None
    stop: str | list[str] | None = None

    def params(self) -> dict[str, Any]:
        """Sampling parameters for the tiers (None values dropped)."""
        data = self.model_dump(exclude_none=True)
        return {k: v for k, v in data.items() if k not in _NOT_PARAMS}

    def raw_messages(self) -> list[dict[str, Any]]:
        return [m.model_dump(exclude_none=True) for m in self.messages]

    @property
    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))


class EmbeddingsBody(BaseModel):
    """``POST /v1/embeddings`` (passed through)."""

    model_config = ConfigDict(extra="allow")

    model: Annotated[str, Field(min_length=1)]
    input: str | list[str] | list[int] | list[list[int]]


class FeedbackBody(BaseModel):
    """``POST /v1/feedback``: was the answer of ``request_id`` right?"""

    model_config = ConfigDict(extra="forbid")

    request_id: Annotated[str, Field(min_length=1, max_length=200)]
    verdict: Literal["good", "bad"]


def usage_dict(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }


def _finish_reason(message: Mapping[str, Any]) -> str:
    return "tool_calls" if message.get("tool_calls") else "stop"


def chat_completion(
    completion_id: str,
    model: str,
    message: Mapping[str, Any],
    usage: Mapping[str, int],
    *,
    created: int | None = None,
) -> dict[str, Any]:
    """A ``chat.completion`` object with one choice."""
    out: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    if message.get("tool_calls"):
        out["tool_calls"] = [dict(c) for c in message["tool_calls"]]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created or int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": out, "logprobs": None, "finish_reason": _finish_reason(out)}
        ],
        "usage": dict(usage),
    }


def completion_chunk(
    completion_id: str,
    model: str,
    created: int,
    *,
    delta: Mapping[str, Any] | None = None,
    finish_reason: str | None = None,
    usage: Mapping[str, int] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``chat.completion.chunk``; ``delta=None`` with ``usage`` is the usage-only last chunk."""
    choices: list[dict[str, Any]] = []
    if delta is not None:
        choices.append(
            {"index": 0, "delta": dict(delta), "logprobs": None, "finish_reason": finish_reason}
        )
    chunk: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": choices,
    }
    if usage is not None:
        chunk["usage"] = dict(usage)
    if extra:
        chunk.update(extra)
    return chunk


def message_chunks(message: Mapping[str, Any], *, pieces: int = 1) -> Sequence[dict[str, Any]]:
    """The deltas that rebuild an accepted (buffered) assistant message: role, content, then
    each tool call whole (the SDKs accumulate ``arguments`` across deltas, one delta is fine)."""
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    content = message.get("content")
    if content:
        deltas.append({"content": content})
    for index, call in enumerate(message.get("tool_calls") or ()):
        function = call.get("function") or {}
        deltas.append(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call.get("id"),
                        "type": "function",
                        "function": {
                            "name": function.get("name"),
                            "arguments": function.get("arguments") or "",
                        },
                    }
                ]
            }
        )
    return deltas
