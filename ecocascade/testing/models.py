"""In-process chat models for tests: drive a cascade with no HTTP and no LiteLLM.

Like pydantic-ai's ``TestModel`` / ``FunctionModel`` and llm's ``MockModel``: a
:class:`ScriptedModel` answers from a queue you :meth:`~ScriptedModel.enqueue` and keeps the
calls it got in ``history``; a :class:`FunctionModel` answers with your function of the
messages and params. Both are :class:`~ecocascade.types.ChatModel`\\ s: pass them as tiers
(``Cascade([ScriptedModel("small"), ScriptedModel("large")], judge)``). Replies are a string,
a :class:`~ecocascade.testing.server.Reply` (tool calls, token counts, finish reason) or an
exception to raise (a :class:`~ecocascade.exceptions.ProviderError` to escalate). Token counts
are word counts, as :class:`~ecocascade.testing.FakeLLMServer` counts them; cost is the tier's
price (free unless you give one). For tests of the LiteLLM path itself, use ``FakeLLMServer``.
"""

from __future__ import annotations

import inspect
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from ecocascade.exceptions import ProviderRejectedError
from ecocascade.models.tier import Price, Tier
from ecocascade.testing.server import Reply
from ecocascade.types import Completion, Message, ToolCallDelta, Usage, message_text

__all__ = ["FunctionModel", "ModelCall", "ModelReply", "ScriptedModel"]

ModelReply: TypeAlias = "str | Reply | BaseException"
_FREE = Price(input_per_mtok=0.0, output_per_mtok=0.0)


@dataclass(frozen=True, slots=True)
class ModelCall:
    """One call a test model received: the messages and the call's params (tools, …)."""

    messages: list[Message]
    params: dict[str, Any] = field(default_factory=dict)
    stream: bool = False


class _TestModel:
    """What both test models share: a tier of their own, accounting, streaming."""

    def __init__(self, name: str, *, price: Price | None, params: Mapping[str, Any] | None) -> None:
        self._tier = Tier(f"test/{name}", price=price or _FREE, params=dict(params or {}))
        self.history: list[ModelCall] = []

    @property
    def tier(self) -> Tier:
        return self._tier

    @property
    def label(self) -> str:
        return self._tier.label

    @property
    def max_output_tokens(self) -> int | None:
        value = self._tier.params.get("max_tokens")
        return int(value) if value else None

    def estimate_cost(self, messages: Sequence[Message], output_tokens: int) -> float | None:
        price = self._tier.price or _FREE
        return price.cost(_prompt_tokens(messages), output_tokens)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.label!r})"

    async def _reply(self, messages: list[Message], params: dict[str, Any]) -> ModelReply:
        raise NotImplementedError

    async def complete(self, messages: Sequence[Message], **params: Any) -> Completion:
        return await self._call(list(messages), params, stream=False)

    async def stream(
        self, messages: Sequence[Message], **params: Any
    ) -> AsyncGenerator[str | ToolCallDelta | Completion, None]:
        """The completion in pieces: its text word by word, each tool call's name then its
        arguments, then the whole Completion."""
        completion = await self._call(list(messages), params, stream=True)
        words = completion.text.split(" ")
        for i, word in enumerate(words):
            piece = word if i == len(words) - 1 else word + " "
            if piece:
                yield piece
        for index, call in enumerate(completion.tool_calls):
            function = call["function"]
            yield ToolCallDelta(index, id=call["id"], name=function["name"])
            yield ToolCallDelta(index, arguments=function["arguments"])
        yield completion

    async def _call(
        self, messages: list[Message], params: dict[str, Any], *, stream: bool
    ) -> Completion:
        started = time.perf_counter()
        self.history.append(ModelCall(messages, dict(params), stream))
        reply = await self._reply(messages, params)
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, str):
            reply = Reply(reply)
        prompt = (
            reply.prompt_tokens if reply.prompt_tokens is not None else _prompt_tokens(messages)
        )
        words = len(reply.text.split())
        output = reply.completion_tokens if reply.completion_tokens is not None else max(1, words)
        calls = tuple(
            {
                "id": call.id or f"call_{len(self.history)}_{i}",
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_json()},
            }
            for i, call in enumerate(reply.tool_calls or ())
        )
        price = self._tier.price or _FREE
        return Completion(
            text=reply.text,
            model=self.label,
            usage=Usage(prompt, output),
            cost_usd=price.cost(prompt, output),
            latency_s=time.perf_counter() - started,
            finish_reason=reply.resolved_finish_reason,
            tool_calls=calls,
        )


class ScriptedModel(_TestModel):
    """Answers each call with the next reply in its queue; ``history`` keeps every call.

    ``ScriptedModel("small", "Lyon", "Paris")`` answers "Lyon" then "Paris"; :meth:`enqueue`
    adds more; ``default`` answers once the queue is empty (otherwise an empty queue raises
    :class:`~ecocascade.exceptions.ProviderRejectedError`, so a test sees an unexpected call).
    """

    def __init__(
        self,
        name: str = "scripted",
        *replies: ModelReply,
        default: ModelReply | None = None,
        price: Price | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(name, price=price, params=params)
        self._queue: deque[ModelReply] = deque(replies)
        self.default = default

    def enqueue(self, *replies: ModelReply) -> None:
        self._queue.extend(replies)

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def _reply(self, messages: list[Message], params: dict[str, Any]) -> ModelReply:
        if self._queue:
            return self._queue.popleft()
        if self.default is not None:
            return self.default
        last = message_text(messages[-1]) if messages else ""
        return ProviderRejectedError(
            f"{self.label}: no scripted reply left for {last[:60]!r}", model=self.label
        )


ReplyFunction: TypeAlias = Callable[
    [list[Message], dict[str, Any]], "ModelReply | Awaitable[ModelReply]"
]


class FunctionModel(_TestModel):
    """Answers with ``fn(messages, params)`` (sync or async): a string, a Reply, or an
    exception to raise. ``history`` keeps every call."""

    def __init__(
        self,
        fn: ReplyFunction,
        *,
        name: str = "function",
        price: Price | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(name, price=price, params=params)
        self._fn = fn

    async def _reply(self, messages: list[Message], params: dict[str, Any]) -> ModelReply:
        outcome = self._fn(messages, params)
        if inspect.isawaitable(outcome):
            outcome = await outcome
        return outcome


def _prompt_tokens(messages: Sequence[Message]) -> int:
    return sum(len(message_text(m).split()) + 3 for m in messages)
