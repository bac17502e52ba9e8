"""One tier's model behind LiteLLM: bounded retries, typed errors, usage and cost."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import os
import ssl
import sys
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any

import structlog

from ecocascade._aio import reraise_if_cancelling
from ecocascade._env import import_litellm
from ecocascade.exceptions import ConfigError, MalformedResponseError, ProviderError
from ecocascade.models.errors import map_provider_error
from ecocascade.models.pricing import call_cost, known_price
from ecocascade.models.tier import Tier
from ecocascade.types import Completion, Message, ToolCallDelta, Usage

__all__ = ["Completion", "TierClient", "check_unicode"]

log = structlog.get_logger(__name__)

# Sent as the key to a custom ``api_base`` when the tier names no key variable, so a local
# OpenAI-compatible server works without one and a real OPENAI_API_KEY is never sent to it.
_NO_KEY = "no-key"
# Extra seconds our own watchdog allows beyond the tier's timeout before giving up on LiteLLM.
_WATCHDOG_GRACE_S = 5.0


def check_unicode(value: Any, *, where: str) -> None:
    """Raise a :class:`ConfigError` if ``value`` (text, or messages) cannot be sent as UTF-8:
    a lone surrogate, which is what Python makes of invalid UTF-8 bytes in ``sys.argv`` or a
    file read with ``errors="surrogateescape"``. Without this the HTTP layer fails on it, and the
    tier retries a caller's mistake as if the provider were down."""
    import json

    try:
        json.dumps(value, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError as error:
        bad = error.object[error.start : error.end]
        raise ConfigError(
            f"not valid Unicode: lone surrogate {bad!r} (invalid UTF-8 bytes in the input?)",
            where=where,
        ) from None


class TierClient:
    """Calls one tier's model. Shared by solvers and LLM judges so every call is accounted alike."""

    def __init__(self, tier: Tier) -> None:
        self.tier = tier
        self._api_key = self._resolve_key(tier)
        self._compressor: Any = None  # built on first use when the tier compresses

    @staticmethod
    def _resolve_key(tier: Tier) -> str | None:
        if tier.api_key_env is not None:
            key = os.environ.get(tier.api_key_env)
            if not key:
                raise ConfigError(
                    f"environment variable {tier.api_key_env} is not set",
                    where=f"tier {tier.label}: api_key_env",
                )
            return key
        return _NO_KEY if tier.api_base is not None or tier.is_local else None

    @property
    def label(self) -> str:
        return self.tier.label

    def estimate_cost(self, messages: Sequence[Message], output_tokens: int) -> float | None:
        """Upper-bound-ish cost of one call: counted prompt tokens plus ``output_tokens``."""
        price = known_price(self.tier)
        if price is None:
            return None
        litellm = import_litellm()
        try:
            prompt_tokens = litellm.token_counter(model=self.tier.model, messages=list(messages))
        except Exception:  # tokenizer unavailable for this model: fall back to a char heuristic
            prompt_tokens = sum(len(str(m.get("content") or "")) for m in messages) // 3 + 4
        return price.cost(prompt_tokens, output_tokens)

    @property
    def max_output_tokens(self) -> int | None:
        value = self.tier.params.get("max_tokens") or self.tier.params.get("max_completion_tokens")
        return int(value) if value else None

    async def complete(self, messages: Sequence[Message], **params: Any) -> Completion:
        """One chat completion, retrying transient errors per the tier's policy.

        Raises a :class:`~ecocascade.exceptions.ProviderError` subclass if it fails for good.
        Under an active :class:`~ecocascade.models.tape.Tape` the call is recorded, or replayed
        from the recording (calls offering tools are neither: the tape keeps text completions).
        """
        from ecocascade.models.tape import active_tape

        check_unicode(messages, where="messages")
        if self.tier.compress is not None and "tools" not in params:
            messages = await self._compress(messages)
        tape = active_tape()
        if tape is None or "tools" in params:
            return await self._complete_live(messages, params)
        key = tape.key(self.tier, messages, params)
        if tape.mode == "replay":
            return tape.replay(self.label, key)
        try:
            completion = await self._complete_live(messages, params)
        except ProviderError as error:
            tape.record_error(key, error)  # replayed as the same error
            raise
        tape.record(key, completion)
        return completion

    async def _compress(self, messages: Sequence[Message]) -> Sequence[Message]:
        """The tier's prompt compression (demonstrations, earlier turns, long context)."""
        if self._compressor is None:
            assert self.tier.compress is not None
            self._compressor = self.tier.compress.build()
        compressed, _ = await self._compressor.compress(messages)
        return list(compressed)

    async def _complete_live(
        self, messages: Sequence[Message], params: dict[str, Any]
    ) -> Completion:
        async def once() -> AsyncGenerator[Completion, None]:
            yield await self._call_once(messages, params)

        final: Completion | None = None
        async with contextlib.aclosing(self._with_retries(once)) as attempts:
            async for item in attempts:
                assert isinstance(item, Completion)  # a plain call yields no pieces
                final = item
        assert final is not None
        return final

    async def _with_retries(
        self, call: Callable[[], AsyncGenerator[str | ToolCallDelta | Completion, None]]
    ) -> AsyncGenerator[str | ToolCallDelta | Completion, None]:
        """The one retry loop, for plain and streamed calls: run ``call()``, passing its pieces
        on; on a transient error retry per the tier's policy — but only while no piece has been
        passed on (the caller has already shown them). Ends with the Completion, its latency
        and retries counted from the first try."""
        retries = 0
        started = time.perf_counter()
        while True:
            emitted = False
            final: Completion | None = None
            try:
                # Closed at once when our caller stops reading, so the connection is released.
                async with contextlib.aclosing(call()) as attempt:
                    async for item in attempt:
                        if isinstance(item, Completion):
                            final = item
                        else:
                            emitted = True
                            yield item
            except ProviderError as error:
                delay = self.tier.retry.delay(retries + 1, getattr(error, "retry_after_s", None))
                if emitted or not error.transient or delay is None:
                    error.retries = retries
                    raise
                retries += 1
                log.info(
                    "model.retry",
                    model=self.label,
                    error=error.kind,
                    retry=retries,
                    delay_s=round(delay, 3),
                )
                await asyncio.sleep(delay)
                continue
            assert final is not None  # a call always ends with a Completion
            yield dataclasses.replace(
                final, latency_s=time.perf_counter() - started, retries=retries
            )
            return

    async def _call_once(self, messages: Sequence[Message], params: dict[str, Any]) -> Completion:
        litellm = import_litellm()
        kwargs, owned_client, forced = await self._request(messages, params, own_client=False)
        started = time.perf_counter()
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for loses a cancel that arrives as the
            # call completes (Ctrl-C ignored); timeout() never does.
            async with asyncio.timeout(self.tier.timeout_s + _WATCHDOG_GRACE_S):
                response = await litellm.acompletion(**kwargs)
        except Exception as exc:
            mapped = map_provider_error(exc, model=self.tier.label)
            if mapped is None:
                raise
            raise mapped from exc
        finally:
            if owned_client is not None:
                await owned_client.close()
        reraise_if_cancelling()  # in case LiteLLM's transport swallowed one
        return self._parse(response, time.perf_counter() - started, forced=forced)

    async def stream(
        self, messages: Sequence[Message], **params: Any
    ) -> AsyncGenerator[str | ToolCallDelta | Completion, None]:
        """One streamed chat completion: text deltas (``str``) and tool-call pieces
        (:class:`~ecocascade.types.ToolCallDelta`) as they arrive, then the whole Completion.

        Transient errors are retried per the tier's policy only until the first delta has been
        yielded; after that a failure raises (the caller has already shown the text). Tool calls,
        usage and cost are in the final Completion. A local tier streams over a connection of its
        own, closed afterwards: llama.cpp closes the connection after an event stream, which would
        otherwise break the next request made on a pooled one.
        """
        check_unicode(messages, where="messages")
        async with contextlib.aclosing(
            self._with_retries(lambda: self._stream_once(messages, params))
        ) as pieces:
            async for item in pieces:
                yield item

    async def _stream_once(
        self, messages: Sequence[Message], params: dict[str, Any]
    ) -> AsyncGenerator[str | ToolCallDelta | Completion, None]:
        litellm = import_litellm()
        kwargs, owned_client, forced = await self._request(messages, params, own_client=True)
        kwargs.update(stream=True, stream_options={"include_usage": True})
        wait_s = self.tier.timeout_s + _WATCHDOG_GRACE_S
        started = time.perf_counter()
        chunks: list[Any] = []
        response: Any = None
        try:
            async with asyncio.timeout(wait_s):  # not wait_for: see _call_once
                response = await litellm.acompletion(**kwargs)
            iterator = response.__aiter__()
            while True:
                try:
                    async with asyncio.timeout(wait_s):
                        chunk = await anext(iterator)
                except StopAsyncIteration:
                    break
                chunks.append(chunk)
                text = _delta_text(chunk)
                if text and not forced:  # a forced tool call's JSON is no text to show
                    yield text
                for piece in _tool_call_deltas(chunk):
                    yield piece
        except Exception as exc:
            mapped = map_provider_error(exc, model=self.tier.label)
            if mapped is None:
                raise
            raise mapped from exc
        finally:
            # On an error, a timeout or a caller that stopped reading, the HTTP stream is still
            # open: close it (after a normal end this does nothing).
            if response is not None and hasattr(response, "aclose"):
                with contextlib.suppress(Exception):
                    await response.aclose()
            if owned_client is not None:
                await owned_client.close()
        built = (
            litellm.stream_chunk_builder(chunks, messages=kwargs["messages"]) if chunks else None
        )
        yield self._parse(built, time.perf_counter() - started, forced=forced)

    async def _request(
        self, messages: Sequence[Message], params: dict[str, Any], *, own_client: bool
    ) -> tuple[dict[str, Any], Any, bool]:
        """LiteLLM's keyword arguments for one call, an HTTP client to close after it, and
        whether the reply is a forced tool call written as JSON (see ``models/local/tools.py``).

        A tier's own ``tool_choice`` applies to calls that offer tools and leave the choice to
        the model (``auto``); a call that offers none is sent without it.
        """
        tier = self.tier
        kwargs: dict[str, Any] = {**tier.params, **params}
        if "tool_choice" in tier.params:
            if not params.get("tools"):
                kwargs.pop("tool_choice")
            elif params.get("tool_choice") in (None, "auto"):
                kwargs["tool_choice"] = tier.params["tool_choice"]
        model, api_base = tier.model, tier.api_base
        owned_client: Any = None
        forced = False
        if tier.is_local:
            model, api_base, messages, kwargs, forced = await self._local_call(messages, kwargs)
            if own_client or model.startswith("text-completion-openai/"):
                # LiteLLM's text-completion route opens a new connection per call and leaves it to
                # the garbage collector; lend it a client we close ourselves.
                owned_client = _loopback_openai_client(api_base)
                kwargs["client"] = owned_client
        kwargs.update(
            model=model,
            messages=list(messages),
            timeout=tier.timeout_s,
            num_retries=0,  # retries are ours: bounded, typed, logged
            max_retries=0,  # and the OpenAI SDK's own retries are off
        )
        if api_base is not None:
            kwargs["api_base"] = api_base
        if self._api_key is not None:
            kwargs["api_key"] = self._api_key
        if kwargs.get("tools") and not any(_is_mcp_tool(t) for t in kwargs["tools"]):
            # With any tools, LiteLLM imports its MCP gateway (and the optional `mcp` package)
            # to look for MCP tools; plain function tools never need it.
            kwargs["_skip_mcp_handler"] = True
        return kwargs, owned_client, forced

    async def _local_call(
        self, messages: Sequence[Message], kwargs: dict[str, Any]
    ) -> tuple[str, str, Sequence[Message], dict[str, Any], bool]:
        """Start (or reuse) this tier's local server; route the call to it through LiteLLM
        (a required tool call as constrained JSON: the chat templates we ship have no tools)."""
        from ecocascade.models.local.server import RUNTIME_PARAMS, completion_prompt, route_for
        from ecocascade.models.local.tools import forced_tool_call

        runtime = {k: kwargs.pop(k) for k in list(kwargs) if k in RUNTIME_PARAMS}
        route = await asyncio.to_thread(route_for, self.tier.model, runtime)
        kwargs = {**route.defaults, **kwargs}
        forced = None
        if route.style == "completion":
            messages = [{"role": "user", "content": completion_prompt(messages)}]
        else:
            forced = forced_tool_call(messages, kwargs)
        if forced is not None:
            messages, kwargs = forced
        return route.litellm_model, route.api_base, messages, kwargs, forced is not None

    def _parse(self, response: Any, latency: float, *, forced: bool = False) -> Completion:
        choices = getattr(response, "choices", None)
        if not choices:
            raise MalformedResponseError(
                f"{self.label}: the provider returned no choices", model=self.label
            )
        choice = choices[0]
        message = getattr(choice, "message", None)
        text = getattr(message, "content", None) or ""
        tool_calls = tuple(getattr(message, "tool_calls", None) or ())
        finish_reason = getattr(choice, "finish_reason", None)
        if forced and not tool_calls:
            from ecocascade.models.local.tools import tool_calls_from_text

            written = tool_calls_from_text(text)
            if written is not None:
                text, tool_calls, finish_reason = "", tuple(written), "tool_calls"
        usage_obj = getattr(response, "usage", None)
        usage = Usage(
            input_tokens=int(getattr(usage_obj, "prompt_tokens", 0) or 0),
            output_tokens=int(getattr(usage_obj, "completion_tokens", 0) or 0),
            cached_input_tokens=_cached_tokens(usage_obj),
        )
        return Completion(
            text=text,
            model=self.label,
            usage=usage,
            cost_usd=_call_cost(self.tier, response, usage),
            latency_s=latency,
            finish_reason=finish_reason,
            tool_calls=tool_calls,
            raw=response,
        )


def _is_mcp_tool(tool: Any) -> bool:
    return isinstance(tool, dict) and tool.get("type") == "mcp"


def _delta_text(chunk: Any) -> str:
    choices = getattr(chunk, "choices", None)
    if not choices:
        return ""
    delta = getattr(choices[0], "delta", None)
    return getattr(delta, "content", None) or ""


def _cached_tokens(usage: Any) -> int:
    """Prompt tokens the provider served from its cache: OpenAI's (and LiteLLM's normalised)
    ``prompt_tokens_details.cached_tokens``, else Anthropic's ``cache_read_input_tokens``."""
    details = getattr(usage, "prompt_tokens_details", None)
    cached = (
        details.get("cached_tokens")
        if isinstance(details, dict)
        else getattr(details, "cached_tokens", None)
    )
    if not cached:
        cached = getattr(usage, "cache_read_input_tokens", None)
    try:
        return max(0, int(cached or 0))
    except (TypeError, ValueError):
        return 0


def _tool_call_deltas(chunk: Any) -> list[ToolCallDelta]:
    choices = getattr(chunk, "choices", None)
    if not choices:
        return []
    calls = getattr(getattr(choices[0], "delta", None), "tool_calls", None) or ()
    pieces = []
    for position, call in enumerate(calls):
        function = getattr(call, "function", None)
        index = getattr(call, "index", None)
        pieces.append(
            ToolCallDelta(
                index=int(index) if index is not None else position,
                id=getattr(call, "id", None) or None,
                name=getattr(function, "name", None) or None,
                arguments=getattr(function, "arguments", None) or "",
            )
        )
    return pieces


def _call_cost(tier: Tier, response: Any, usage: Usage) -> float | None:
    """The tier's price times the tokens; a ``replay/`` tier's provider reports the recorded cost
    instead (see :mod:`ecocascade.replay`)."""
    # a replay tier can only have answered if its provider module is loaded: no import here
    replay = sys.modules.get("ecocascade.replay.provider")
    if replay is not None and tier.model.startswith(replay.REPLAY_PREFIX):
        hidden = getattr(response, "_hidden_params", None) or {}
        recorded = hidden.get(replay.RECORDED_COST_KEY)
        if recorded is not None:
            return float(recorded)
    return call_cost(tier, usage.input_tokens, usage.output_tokens, usage.cached_input_tokens)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Building a context loads the CA bundle (~18 ms); build it once, not once per call.
    return ssl.create_default_context()


def _loopback_openai_client(api_base: str) -> Any:
    import httpx
    import openai

    http = httpx.AsyncClient(verify=_ssl_context())
    return openai.AsyncOpenAI(base_url=api_base, api_key=_NO_KEY, max_retries=0, http_client=http)
