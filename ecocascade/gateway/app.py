"""The OpenAI-compatible gateway: ``create_app(config)`` is the FastAPI app ``ecocascade serve``
runs.

``POST /v1/chat/completions`` with model ``cascade/<name>`` resolves the request through that
cascade (cache → demonstrations → cheapest tier → judge → escalate); any other model goes through
LiteLLM unchanged. Plug points (see their modules): :class:`~ecocascade.gateway.state.GatewayState`
(sticky tiers, single-flight, the feedback map), :class:`~ecocascade.gateway.admission.Admission`
(keys and budgets) and :class:`~ecocascade.gateway.records.RecordSink` (one record per request).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ecocascade.exceptions import ConfigError
from ecocascade.gateway import passthrough
from ecocascade.gateway.access import scoped_namespace
from ecocascade.gateway.admission import Admission, AllowAll, Reservation
from ecocascade.gateway.bridge import tenant_cascade, warm_up
from ecocascade.gateway.config import GatewayConfig, load_gateway_config
from ecocascade.gateway.engine import Answer, answer_from
from ecocascade.gateway.errors import GatewayError, error_body
from ecocascade.gateway.keys import conversation_key, flight_key
from ecocascade.gateway.metrics import CONTENT_TYPE, PrometheusSink
from ecocascade.gateway.records import (
    CacheOutcome,
    Escalation,
    FeedbackEvent,
    RecordSink,
    RequestRecord,
    RequestStatus,
)
from ecocascade.gateway.schemas import (
    ChatCompletionBody,
    EmbeddingsBody,
    FeedbackBody,
    chat_completion,
    completion_chunk,
    message_chunks,
    usage_dict,
)
from ecocascade.gateway.sse import DONE, ClientDisconnected, data_frame, run_until_disconnect
from ecocascade.gateway.sse import sse_response as _sse_response
from ecocascade.gateway.state import FeedbackTarget, GatewayState
from ecocascade.types import ChatRequest, add_costs

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ecocascade.config.schema import CascadeConfig
    from ecocascade.controller.cascade import Cascade

__all__ = ["CONFIG_ENV", "Gateway", "app_from_env", "create_app"]

log = structlog.get_logger(__name__)

CASCADE_PREFIX = "cascade/"
CONFIG_ENV = "ECOCASCADE_GATEWAY_CONFIG"
"""``ecocascade serve --workers N`` hands each worker the config path in this variable."""

_STATUS_CLIENT_CLOSED = 499  # nginx's convention; nobody is left to read it


@dataclass(slots=True)
class _Call:
    """One chat request in flight: who asked, when, and what the record will say."""

    request_id: str
    api_key: str | None
    model_requested: str
    stream: bool
    started: float
    timestamp: float
    reservation: Reservation | None = None
    settled: bool = False


class Gateway:
    """The gateway's state and handlers; :func:`create_app` puts it behind HTTP routes.

    ``cascades`` (name → built :class:`~ecocascade.Cascade`) defaults to building every cascade
    of the config at start-up. ``sinks`` receive every :class:`RequestRecord` and
    :class:`FeedbackEvent` after ``metrics`` (the Prometheus sink behind ``/metrics``).
    """

    def __init__(
        self,
        config: GatewayConfig,
        *,
        cascades: Mapping[str, Cascade] | None = None,
        state: GatewayState | None = None,
        admission: Admission | None = None,
        sinks: Sequence[RecordSink] | None = None,
        metrics: PrometheusSink | None = None,
    ) -> None:
        from ecocascade.gateway import defaults

        self.config = config
        self.state: GatewayState = state if state is not None else defaults.build_state(config)
        self.admission: Admission = (
            admission if admission is not None else defaults.build_admission(config)
        )
        self.metrics = metrics or PrometheusSink()
        self.sinks: list[RecordSink] = list(
            sinks if sinks is not None else defaults.build_sinks(config)
        )
        self._cascades: dict[str, Cascade] | None = dict(cascades) if cascades else None
        self._routes = {
            name: passthrough.Route.from_tier(spec.to_tier())
            for name, spec in config.models.items()
        }
        self._background: set[asyncio.Task[None]] = set()
        self._memories: dict[str, Any] = {}  # cascade name -> ConversationMemory, built on use

    # -- life cycle --------------------------------------------------------------------------

    @property
    def cascades(self) -> dict[str, Cascade]:
        if self._cascades is None:
            self._cascades = {
                name: _gateway_cascade(spec) for name, spec in self.config.cascades.items()
            }
        return self._cascades

    def add_sink(self, sink: RecordSink) -> None:
        self.sinks.append(sink)

    async def start(self) -> None:
        from ecocascade._env import import_litellm

        self.cascades  # noqa: B018 - build them now: a broken config fails start-up, not a request
        # LiteLLM's import (seconds) is paid at start-up, not by the first request.
        await asyncio.to_thread(import_litellm)
        await warm_up(self)  # embedders loaded, every tenant's solutions collection created

    async def close(self) -> None:
        for task in list(self._background):
            with contextlib.suppress(BaseException):
                async with asyncio.timeout(5):
                    await task
        for cascade in (self._cascades or {}).values():
            if cascade.cache is not None:
                with contextlib.suppress(Exception):
                    await cascade.cache.close()
        with contextlib.suppress(Exception):
            await self.state.close()
        if "litellm" in sys.modules:
            with contextlib.suppress(Exception):
                await sys.modules["litellm"].close_litellm_async_clients()

    # -- chat --------------------------------------------------------------------------------

    async def chat(
        self, body: ChatCompletionBody, *, api_key: str | None, receive: Callable[[], Any]
    ) -> Response:
        call = _Call(
            request_id=uuid.uuid4().hex,
            api_key=api_key,
            model_requested=body.model,
            stream=body.stream,
            started=time.perf_counter(),
            timestamp=time.time(),
        )
        try:
            if body.model.startswith(CASCADE_PREFIX):
                return await self._cascade_chat(body, call, receive)
            return await self._passthrough_chat(body, call, receive)
        except GatewayError as error:
            self._settle(call, None)
            self._emit(
                self._failed_record(
                    call, _cascade_name(body.model), "error", error.status, str(error)
                )
            )
            return _error_response(error, call.request_id)
        except Exception as error:  # a bug: answered 500 by the app's handler, still recorded
            self._settle(call, None)
            self._emit(
                self._failed_record(call, _cascade_name(body.model), "error", 500, repr(error))
            )
            raise
        except BaseException:
            # cancelled (the client went away): never leave a budget reservation held
            self._settle(call, None)
            raise

    def _cascade(self, model: str) -> tuple[str, Cascade]:
        name = model.removeprefix(CASCADE_PREFIX)
        cascade = self.cascades.get(name)
        if cascade is None:
            known = ", ".join(f"{CASCADE_PREFIX}{n}" for n in self.cascades) or "none"
            raise GatewayError(
                404,
                f"The model `{model}` does not exist (cascades here: {known})",
                code="model_not_found",
                param="model",
            )
        return name, cascade

    async def _admit(self, call: _Call, target: str, estimate: Callable[[], float | None]) -> None:
        value = None if isinstance(self.admission, AllowAll) else estimate()
        call.reservation = await self.admission.admit(call.api_key, target, value)

    def _settle(self, call: _Call, actual_usd: float | None) -> None:
        if call.reservation is None or call.settled:
            return
        call.settled = True
        if isinstance(self.admission, AllowAll):
            return  # nothing to settle: no task per request
        self._spawn(self.admission.settle(call.reservation, actual_usd), "settle")

    async def _cascade_chat(
        self, body: ChatCompletionBody, call: _Call, receive: Callable[[], Any]
    ) -> Response:
        name, cascade = self._cascade(body.model)
        if body.n != 1:
            raise GatewayError(400, "a cascade answers with one choice: n must be 1", param="n")
        request = ChatRequest(
            messages=tuple(body.raw_messages()),
            tools=tuple(body.tools or ()),
            tool_choice=body.tool_choice,
            response_format=body.response_format,
            params=body.params(),
        )
        min_tier = 0
        if not request.is_first_turn:
            min_tier = await self._sticky(conversation_key(name, request.messages[:-1]))
            min_tier = min(min_tier, len(cascade.tiers) - 1)
        request, memory_cost = await self._compact(name, cascade, request)
        await self._admit(call, name, lambda: _estimate(cascade, request, min_tier))
        # a key's own cache + solutions namespace; single-flight never shares across tenants
        cascade = tenant_cascade(cascade, call.reservation)
        scope = scoped_namespace(call.reservation, name)
        if body.stream:
            return await self._cascade_stream(name, cascade, request, min_tier, body, call)
        try:
            answer, shared = await run_until_disconnect(
                receive, self._resolve(scope, cascade, request, min_tier)
            )
        except ClientDisconnected:
            self._settle(call, None)
            self._emit(self._failed_record(call, name, "cancelled", _STATUS_CLIENT_CLOSED))
            return Response(status_code=_STATUS_CLIENT_CLOSED)
        if shared:
            answer = _as_shared(answer)
        if memory_cost:  # the summary the cheap tier wrote for this request is part of its cost
            answer = dataclasses.replace(answer, cost_usd=add_costs(answer.cost_usd, memory_cost))
        self._settle(call, answer.cost_usd)
        headers = _answer_headers(call.request_id, answer)
        if not answer.success or answer.message is None:
            error = _unresolved(answer, call.request_id)
            self._emit(self._record(call, name, answer, "unresolved", error.status, shared))
            return _error_response(error, call.request_id, headers)
        await self._after_answer(name, cascade, request, answer, call.request_id)
        completion = chat_completion(
            f"chatcmpl-{call.request_id}",
            answer.model or "",
            answer.message,
            usage_dict(answer.input_tokens, answer.output_tokens),
        )
        self._emit(self._record(call, name, answer, "ok", 200, shared))
        return _json(completion, headers=headers)

    async def _compact(
        self, name: str, cascade: Cascade, request: ChatRequest
    ) -> tuple[ChatRequest, float | None]:
        """Conversation memory (opt-in per cascade): older turns summarised past the budget."""
        spec = self.config.memory.get(name)
        if spec is None:
            return request, 0.0
        from ecocascade.gateway.memory import build_memory, compact_request

        memory = self._memories.get(name)
        if memory is None:
            memory = self._memories[name] = build_memory(spec, cascade)
        compacted, report = await compact_request(memory, request)
        return compacted, report.cost_usd if report is not None else 0.0

    async def _resolve(
        self, name: str, cascade: Cascade, request: ChatRequest, min_tier: int
    ) -> tuple[Answer, bool]:
        cacheable = _cacheable(request)

        async def work() -> Answer:
            try:
                result = await cascade.resolve(request, min_tier=min_tier, use_cache=cacheable)
            except ConfigError as error:  # the request does not suit this cascade
                raise GatewayError(400, str(error), code="invalid_request") from error
            return answer_from(result, cascade, request)

        if self.config.single_flight and cascade.cache is not None and cacheable:
            return await self.state.single_flight(flight_key(name, request, min_tier), work)
        return await work(), False

    async def _sticky(self, conversation: str) -> int:
        try:
            tier = await self.state.get_sticky(conversation)
        except Exception as error:  # shared state down: start at the bottom, as for a new chat
            log.warning("gateway.state_unavailable", during="get_sticky", error=repr(error))
            return 0
        return tier or 0

    async def _after_answer(
        self, name: str, cascade: Cascade, request: ChatRequest, answer: Answer, request_id: str
    ) -> None:
        """Remember what the feedback endpoint and the conversation's next turn need."""
        assert answer.message is not None
        solution_id = answer.solution_id
        cached = answer.cache != "miss" and cascade.store is not None
        if solution_id is None and cached and request.is_first_turn and request.query:
            # a cache hit names no record: the accepted answer was recorded under the query's id
            from ecocascade.store.records import record_id

            solution_id = record_id(request.query, cascade.demos.namespace)
        try:
            if answer.tier is not None:
                conversation = conversation_key(name, [*request.messages, answer.message])
                await self.state.set_sticky(conversation, answer.tier, self.config.sticky_ttl_s)
            if answer.cache_key is not None or solution_id is not None:
                target = FeedbackTarget(
                    cascade=name,
                    cache_key=answer.cache_key,
                    solution_id=solution_id,
                    namespace=cascade.demos.namespace,
                    tier=answer.tier,
                    model=answer.label,
                    key_id=None,
                )
                await self.state.remember(request_id, target, self.config.feedback_ttl_s)
        except Exception as error:  # shared state down: the answer still goes out
            log.warning("gateway.state_unavailable", during="remember", error=repr(error))

    async def _cascade_stream(
        self,
        name: str,
        cascade: Cascade,
        request: ChatRequest,
        min_tier: int,
        body: ChatCompletionBody,
        call: _Call,
    ) -> Response:
        headers: dict[str, str] = {"x-ecocascade-request-id": call.request_id}
        outcome: dict[str, Answer] = {}
        completion_id = f"chatcmpl-{call.request_id}"
        created = int(time.time())

        live_label = cascade.tiers[-1].label  # only the last tier streams live

        def chunk(model: str, **fields: Any) -> bytes:
            return data_frame(completion_chunk(completion_id, model, created, **fields))

        async def frames() -> AsyncIterator[bytes]:
            from ecocascade.controller.events import Finished, TextDelta
            from ecocascade.types import ToolCallDelta

            live = False
            events = cascade.stream(request, min_tier=min_tier, use_cache=_cacheable(request))
            async with contextlib.aclosing(events):
                async for event in events:
                    if isinstance(event, TextDelta | ToolCallDelta):
                        if not live:  # the last tier is answering: its pieces go out as written
                            live = True
                            headers.update(
                                {
                                    "x-ecocascade-tier": str(len(cascade.tiers) - 1),
                                    "x-ecocascade-model": live_label,
                                    "x-ecocascade-cache": "miss",
                                }
                            )
                            yield chunk(live_label, delta={"role": "assistant", "content": ""})
                        yield chunk(live_label, delta=_delta(event))
                    elif isinstance(event, Finished):
                        answer = answer_from(event.result, cascade, request)
                        outcome["answer"] = answer
                        if not answer.success or answer.message is None:
                            raise _unresolved(answer, call.request_id)
                        await self._after_answer(name, cascade, request, answer, call.request_id)
                        model = live_label if live else answer.model or ""
                        headers.update(_answer_headers(call.request_id, answer))
                        if not live:  # a judged (buffered) or cached answer: send it whole
                            for piece in message_chunks(answer.message):
                                yield chunk(model, delta=piece)
                        finish = "tool_calls" if answer.message.get("tool_calls") else "stop"
                        summary = {"ecocascade": _answer_summary(call.request_id, answer)}
                        yield chunk(model, delta={}, finish_reason=finish, extra=summary)
                        if body.include_usage:
                            usage = usage_dict(answer.input_tokens, answer.output_tokens)
                            yield chunk(model, usage=usage)
                        yield DONE

        def on_close(error: BaseException | None, http_status: int) -> None:
            answer = outcome.get("answer")
            if answer is None:  # failed or cancelled before the cascade's result
                self._settle(call, None)
                status = _stream_status(error)
                self._emit(self._failed_record(call, name, status, http_status, _why(error)))
                return
            self._settle(call, answer.cost_usd)
            ok = answer.success and error is None
            status = (
                "ok"
                if ok
                else "unresolved"
                if error is None or isinstance(error, GatewayError)
                else _stream_status(error)
            )
            self._emit(self._record(call, name, answer, status, http_status, False))

        return await _sse_response(
            frames(),
            keepalive_s=self.config.keepalive_s,
            headers=lambda: headers,
            on_close=on_close,
        )

    # -- pass-through ------------------------------------------------------------------------

    def _route(self, model: str) -> passthrough.Route:
        route = self._routes.get(model)
        if route is not None:
            return route
        if self.config.passthrough == "any":
            return passthrough.Route(model=model)
        raise GatewayError(
            404, f"The model `{model}` does not exist", code="model_not_found", param="model"
        )

    async def _passthrough_chat(
        self, body: ChatCompletionBody, call: _Call, receive: Callable[[], Any]
    ) -> Response:
        route = self._route(body.model)
        await self._admit(call, body.model, lambda: None)
        raw = body.model_dump(exclude_none=True)
        raw.pop("model", None)
        if body.stream:
            record: dict[str, Any] = {}

            async def frames() -> AsyncIterator[bytes]:
                async for chunk in await passthrough.stream(route, raw):
                    if chunk.get("usage"):
                        record["usage"] = chunk["usage"]
                    record["model"] = chunk.get("model")
                    yield data_frame(chunk)
                yield DONE

            def on_close(error: BaseException | None, http_status: int) -> None:
                cost = route.cost(record.get("usage"))
                self._settle(call, cost)
                status = _stream_status(error)
                self._emit(
                    self._passthrough_record(call, record.get("model"), cost, status, http_status)
                )

            return await _sse_response(
                frames(),
                keepalive_s=self.config.keepalive_s,
                headers=lambda: {"x-ecocascade-request-id": call.request_id},
                on_close=on_close,
            )
        try:
            data = await run_until_disconnect(receive, passthrough.complete(route, raw))
        except ClientDisconnected:
            self._settle(call, None)
            self._emit(self._passthrough_record(call, None, None, "cancelled", 499))
            return Response(status_code=_STATUS_CLIENT_CLOSED)
        cost = route.cost(data.get("usage"))
        self._settle(call, cost)
        self._emit(self._passthrough_record(call, data.get("model"), cost, "ok", 200))
        headers = {"x-ecocascade-request-id": call.request_id, "x-ecocascade-cache": "miss"}
        if data.get("model"):
            headers["x-ecocascade-model"] = str(data["model"])
        if cost is not None:
            headers["x-ecocascade-cost-usd"] = _usd(cost)
        return _json(data, headers=headers)

    async def embeddings(self, body: EmbeddingsBody, *, api_key: str | None) -> Response:
        if body.model.startswith(CASCADE_PREFIX):
            raise GatewayError(
                400, "cascades answer chat completions; embeddings need a model", param="model"
            )
        route = self._route(body.model)
        reservation = await self.admission.admit(api_key, body.model, None)
        raw = body.model_dump(exclude_none=True)
        raw.pop("model", None)
        try:
            data = await passthrough.embed(route, raw)
        finally:
            self._spawn(self.admission.settle(reservation, None), "settle")
        return _json(data)

    # -- feedback, models, readiness ---------------------------------------------------------

    async def feedback(self, body: FeedbackBody) -> Response:
        target = await self.state.recall(body.request_id)
        if target is None:
            raise GatewayError(
                404,
                f"no answer with request_id {body.request_id!r} (unknown, expired or already "
                "removed)",
                code="request_not_found",
                param="request_id",
            )
        removed = False
        if body.verdict == "bad":
            cascade = self.cascades.get(target.cascade)
            if cascade is not None:
                removed = await _remove_answer(cascade, target)
            await self.state.forget(body.request_id)
        event = FeedbackEvent(
            request_id=body.request_id,
            verdict=body.verdict,
            cascade=target.cascade,
            key_id=target.key_id,
            timestamp=time.time(),
            removed=removed,
        )
        log.info(
            "gateway.feedback",
            request_id=body.request_id,
            verdict=body.verdict,
            cascade=target.cascade,
            removed=removed,
        )
        self._emit_feedback(event)
        return _json({"request_id": body.request_id, "verdict": body.verdict, "removed": removed})

    def models(self) -> Response:
        data = [
            {
                "id": f"{CASCADE_PREFIX}{name}",
                "object": "model",
                "created": 0,
                "owned_by": "ecocascade",
            }
            for name in self.config.cascades
        ]
        data += [
            {"id": name, "object": "model", "created": 0, "owned_by": "passthrough"}
            for name in self.config.models
        ]
        return _json({"object": "list", "data": data})

    async def ready(self) -> Response:
        checks: dict[str, str] = {}
        for name, cascade in self.cascades.items():
            if cascade.cache is not None:
                checks[f"{name}.cache"] = await _check(cascade.cache.backend.get("readyz"))
            count = getattr(cascade.store, "count", None)  # the Chroma store's cheap probe
            if callable(count):
                checks[f"{name}.solutions"] = await _check(asyncio.to_thread(count))
        ok = all(value == "ok" for value in checks.values())
        return _json(
            {"status": "ready" if ok else "unavailable", "checks": checks},
            status=200 if ok else 503,
        )

    # -- records -----------------------------------------------------------------------------

    def _record(
        self,
        call: _Call,
        cascade: str,
        answer: Answer,
        status: RequestStatus,
        http_status: int,
        shared: bool,
    ) -> RequestRecord:
        return _record(
            call,
            cascade=cascade,
            tier=answer.tier,
            model=answer.label,
            cache=answer.cache,
            cost_usd=answer.cost_usd,
            saved_usd=answer.saved_usd,
            escalations=answer.escalations,
            status=status,
            http_status=http_status,
            shared=shared,
        )

    def _failed_record(
        self,
        call: _Call,
        cascade: str | None,
        status: RequestStatus,
        http_status: int,
        error: str | None = None,
    ) -> RequestRecord:
        return _record(
            call,
            cascade=cascade,
            model=None,
            cost_usd=0.0 if status == "error" else None,
            status=status,
            http_status=http_status,
            error=error,
        )

    def _passthrough_record(
        self,
        call: _Call,
        model: str | None,
        cost: float | None,
        status: RequestStatus,
        http_status: int,
    ) -> RequestRecord:
        return _record(
            call, cascade=None, model=model, cost_usd=cost, status=status, http_status=http_status
        )

    def _emit(self, record: RequestRecord) -> None:
        self.metrics.observe(record)  # in line: /metrics is current when the response goes out
        for sink in self.sinks:
            self._spawn(sink.on_request(record), "sink")

    def _emit_feedback(self, event: FeedbackEvent) -> None:
        for sink in [self.metrics, *self.sinks]:
            self._spawn(sink.on_feedback(event), "sink")

    def _spawn(self, work: Awaitable[None], what: str) -> None:
        async def guarded() -> None:
            try:
                await work
            except Exception as error:  # a sink or settle failure never fails a request
                log.warning("gateway.background_failed", what=what, error=repr(error))

        task = asyncio.ensure_future(guarded())
        self._background.add(task)
        task.add_done_callback(self._background.discard)


# -- helpers -------------------------------------------------------------------------------


def _cacheable(request: ChatRequest) -> bool:
    """An answer to a tool result is never cached (the tool's output is not a stable key)."""
    return request.messages[-1].get("role") != "tool"


def _cascade_name(model: str) -> str | None:
    return model.removeprefix(CASCADE_PREFIX) if model.startswith(CASCADE_PREFIX) else None


def _stream_status(error: BaseException | None) -> RequestStatus:
    if error is None:
        return "ok"
    return "cancelled" if isinstance(error, asyncio.CancelledError | GeneratorExit) else "error"


def _why(error: BaseException | None) -> str | None:
    if error is None:
        return None
    if isinstance(error, GatewayError):
        return error.message
    return type(error).__name__


def _usd(value: float) -> str:
    return f"{value:.8f}"


def _answer_headers(request_id: str, answer: Answer) -> dict[str, str]:
    headers = {"x-ecocascade-request-id": request_id, "x-ecocascade-cache": answer.cache}
    if answer.tier is not None:
        headers["x-ecocascade-tier"] = str(answer.tier)
    if answer.label is not None:
        headers["x-ecocascade-model"] = answer.label
    if answer.cost_usd is not None:
        headers["x-ecocascade-cost-usd"] = _usd(answer.cost_usd)
    if answer.saved_usd is not None:
        headers["x-ecocascade-saved-usd"] = _usd(answer.saved_usd)
    return headers


def _answer_summary(request_id: str, answer: Answer) -> dict[str, Any]:
    """The headers' values again, in the stream's last chunk (a stream's headers go out before
    the answer is known)."""
    return {
        "request_id": request_id,
        "tier": answer.tier,
        "model": answer.label,
        "upstream_model": answer.model,
        "cache": answer.cache,
        "cost_usd": answer.cost_usd,
        "saved_usd": answer.saved_usd,
    }


def _as_shared(answer: Answer) -> Answer:
    """A waiter of a single flight: the leader paid; this request got the verified answer free."""
    baseline = None
    if answer.saved_usd is not None and answer.cost_usd is not None:
        baseline = answer.saved_usd + answer.cost_usd
    return dataclasses.replace(
        answer,
        cache="exact" if answer.cache == "miss" else answer.cache,
        cost_usd=0.0,
        saved_usd=baseline,
        escalations=(),
    )


def _unresolved(answer: Answer, request_id: str) -> GatewayError:
    tried = (
        "; ".join(f"{a['model']}: {a['error'] or a['verdict']}" for a in answer.attempts)
        or "no attempt"
    )
    status = 503 if answer.transient_failure else 422
    return GatewayError(
        status,
        f"no tier produced an accepted answer ({answer.stop_reason}: {tried})",
        type="server_error" if status == 503 else "invalid_request_error",
        code="cascade_unresolved",
        extra={"request_id": request_id, "attempts": list(answer.attempts)},
    )


def _estimate(cascade: Cascade, request: ChatRequest, min_tier: int) -> float | None:
    """Worst case for admission: every tier from ``min_tier`` answers (judges not counted)."""
    total = 0.0
    for index in range(min_tier, len(cascade.tiers)):
        cost = cascade.estimate_cost(request, tier=index)
        if cost is None:
            return None
        total += cost
    return total


def _gateway_cascade(spec: CascadeConfig) -> Cascade:
    """A cascade of the config whose judge first checks the reply's form: tool calls against the
    request's tool schemas, JSON mode against its schema; text then goes to the configured judge
    (:class:`~ecocascade.judges.reply.WellFormedReply`)."""
    from ecocascade.judges.reply import WellFormedReply

    cascade = spec.build()
    cascade.judge = WellFormedReply(cascade.judge)
    return cascade


def _delta(event: Any) -> dict[str, Any]:
    """An OpenAI ``delta`` for a live text or tool-call piece."""
    from ecocascade.types import ToolCallDelta

    if not isinstance(event, ToolCallDelta):
        return {"content": event.text}
    call: dict[str, Any] = {"index": event.index, "function": {"arguments": event.arguments}}
    if event.id is not None:
        call["id"] = event.id
        call["type"] = "function"
    if event.name is not None:
        call["function"]["name"] = event.name
    return {"tool_calls": [call]}


async def _remove_answer(cascade: Cascade, target: FeedbackTarget) -> bool:
    removed = 0
    if target.cache_key is not None and cascade.cache is not None:
        try:
            removed += await cascade.cache.backend.delete(key=target.cache_key)
        except Exception as error:
            raise GatewayError(503, f"the cache is unavailable: {error}") from error
    # the Chroma store deletes by id; a store without delete() keeps its record (logged)
    delete = getattr(cascade.store, "delete", None)
    if target.solution_id is not None and cascade.store is not None and not callable(delete):
        log.warning("gateway.feedback_kept_solution", id=target.solution_id, cascade=target.cascade)
    elif target.solution_id is not None and callable(delete):
        try:
            removed += await asyncio.to_thread(delete, [target.solution_id])
        except Exception as error:
            raise GatewayError(503, f"the solution store is unavailable: {error}") from error
    return removed > 0


async def _check(work: Awaitable[Any]) -> str:
    try:
        async with asyncio.timeout(5):
            await work
    except Exception as error:
        return f"error: {type(error).__name__}: {error}"[:200]
    return "ok"


def _json(data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        json.dumps(data, separators=(",", ":"), ensure_ascii=False),
        status_code=status,
        media_type="application/json",
        headers=dict(headers or {}),
    )


def _error_response(
    error: GatewayError, request_id: str | None = None, headers: Mapping[str, str] | None = None
) -> Response:
    out = {**(headers or {}), **error.headers}
    if request_id is not None:
        out["x-ecocascade-request-id"] = request_id
    return _json(error.body(), status=error.status, headers=out)


def _api_key(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header and header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None


async def _parse(request: Request, schema: type[BaseModel], limit: int) -> Any:
    from pydantic import ValidationError

    from ecocascade.exceptions import format_validation_error

    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise GatewayError(413, f"request body over {limit} bytes", code="request_too_large")
    raw = await request.body()
    if len(raw) > limit:
        raise GatewayError(413, f"request body over {limit} bytes", code="request_too_large")
    try:
        data = json.loads(raw)
    except ValueError as error:
        raise GatewayError(400, f"the body is not valid JSON: {error}") from None
    try:
        return schema.model_validate(data)
    except ValidationError as error:
        raise GatewayError(400, format_validation_error(error), code="invalid_request") from None


def create_app(
    config: GatewayConfig | Gateway,
    *,
    state: GatewayState | None = None,
    admission: Admission | None = None,
    sinks: Sequence[RecordSink] | None = None,
) -> FastAPI:
    """The FastAPI app for ``config`` (or an already built :class:`Gateway`).

    ``state``, ``admission`` and ``sinks`` replace the defaults (in-process state, admit all,
    no sink besides the Prometheus metrics). More routes can be added to the returned app.
    """
    gateway = (
        config
        if isinstance(config, Gateway)
        else Gateway(config, state=state, admission=admission, sinks=sinks)
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.close()

    app = FastAPI(
        title="ecocascade gateway",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.gateway = gateway
    limit = gateway.config.max_body_bytes

    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, error: GatewayError) -> Response:
        return _error_response(error)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        return _error_response(GatewayError(error.status_code, str(error.detail)))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> Response:
        log.error("gateway.internal_error", path=request.url.path, exc_info=error)
        return _json(
            error_body(f"internal error: {type(error).__name__}", type="server_error"), status=500
        )

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        body = await _parse(request, ChatCompletionBody, limit)
        return await gateway.chat(body, api_key=_api_key(request), receive=request.receive)

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Response:
        body = await _parse(request, EmbeddingsBody, limit)
        return await gateway.embeddings(body, api_key=_api_key(request))

    @app.post("/v1/feedback")
    async def feedback(request: Request) -> Response:
        body = await _parse(request, FeedbackBody, limit)
        return await gateway.feedback(body)

    @app.get("/v1/models")
    async def models() -> Response:
        return gateway.models()

    @app.get("/healthz")
    async def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        return await gateway.ready()

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(gateway.metrics.render(), media_type=CONTENT_TYPE)

    from ecocascade.gateway import defaults

    defaults.add_routes(app, gateway)  # the savings dashboard
    return app


def _record(
    call: _Call,
    *,
    cascade: str | None,
    model: str | None,
    cost_usd: float | None,
    status: RequestStatus,
    http_status: int,
    tier: int | None = None,
    cache: CacheOutcome = "miss",
    saved_usd: float | None = None,
    escalations: tuple[Escalation, ...] = (),
    shared: bool = False,
    error: str | None = None,
) -> RequestRecord:
    """One request's record: what the call itself knows (id, key, timing, stream) and the rest."""
    return RequestRecord(
        request_id=call.request_id,
        key_id=call.reservation.key_id if call.reservation else None,
        cascade=cascade,
        model_requested=call.model_requested,
        tier=tier,
        model=model,
        cache=cache,
        cost_usd=cost_usd,
        saved_usd=saved_usd,
        escalations=escalations,
        latency_s=time.perf_counter() - call.started,
        timestamp=call.timestamp,
        status=status,
        http_status=http_status,
        stream=call.stream,
        shared=shared,
        error=error,
    )


def app_from_env() -> FastAPI:
    """The app for the config named by ``$ECOCASCADE_GATEWAY_CONFIG`` (uvicorn factory for
    ``--workers N``: each worker builds its own)."""
    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise RuntimeError(f"{CONFIG_ENV} is not set")
    logging_spec = os.environ.get("ECOCASCADE_GATEWAY_LOG")
    if logging_spec:
        from ecocascade.logs import configure_logging

        level, _, style = logging_spec.partition(":")
        configure_logging(level, json=style == "json")
    return create_app(load_gateway_config(path))
