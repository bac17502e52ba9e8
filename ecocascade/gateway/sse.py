"""Server-sent events for chat streams: keep-alives while waiting, a real status for early
errors, an error event (never a silent cut) for late ones, cancellation on disconnect.

The frames of one stream are produced by an async iterator that runs in its own task and is
drained through a queue. The response does not start until the first frame arrives or
``keepalive_s`` passes: an error raised before then becomes an ordinary HTTP error response
(status + OpenAI error body). After that the stream is committed (HTTP 200); while the producer
is quiet a ``: keep-alive`` comment goes out every ``keepalive_s``, and an error becomes a
``data: {"error": {...}}`` event — which the OpenAI SDKs raise as ``APIError`` — followed by the
end of the stream. When the client goes away, the producer's task is cancelled (and with it the
upstream calls).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

import structlog
from starlette.responses import JSONResponse, Response, StreamingResponse

from ecocascade.gateway.errors import GatewayError, error_body

__all__ = [
    "DONE",
    "KEEPALIVE",
    "ClientDisconnected",
    "data_frame",
    "run_until_disconnect",
    "sse_response",
]

T = TypeVar("T")

log = structlog.get_logger(__name__)

DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": keep-alive\n\n"
_END = object()


def data_frame(payload: Any) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _as_gateway_error(error: BaseException) -> GatewayError:
    if isinstance(error, GatewayError):
        return error
    return GatewayError(500, f"internal error: {type(error).__name__}", code="internal_error")


async def sse_response(
    frames: AsyncIterator[bytes],
    *,
    keepalive_s: float,
    headers: Callable[[], Mapping[str, str]],
    on_close: Callable[[BaseException | None, int], None] | None = None,
) -> Response:
    """Start draining ``frames``; return an error response or the committed event stream.

    ``headers()`` is called when the response starts (the producer fills in what it knows by
    then). ``on_close(error, status)`` is called once when the stream is over: ``error`` is
    ``None`` when it ended normally, else the error (``CancelledError`` for a client that went
    away); ``status`` is the HTTP status the client got (200 once the stream had started).
    """
    queue: asyncio.Queue[Any] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for frame in frames:
                queue.put_nowait(frame)
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # handed to the reader, which answers with it
            queue.put_nowait(error)
            return
        queue.put_nowait(_END)

    task = asyncio.ensure_future(pump())
    closed = False

    def close(error: BaseException | None, status: int = 200) -> None:
        nonlocal closed
        if closed:
            return
        closed = True
        if not task.done():
            task.cancel()
        if on_close is not None:
            on_close(error, status)

    try:
        first = await asyncio.wait_for(queue.get(), keepalive_s)  # a cancelled get loses nothing
    except TimeoutError:
        first = KEEPALIVE
    except BaseException as error:
        close(error)
        raise
    if isinstance(first, BaseException):
        if not isinstance(first, GatewayError):
            log.error("gateway.stream_failed", error=repr(first))
        failure = _as_gateway_error(first)
        close(first, failure.status)
        return JSONResponse(
            failure.body(), status_code=failure.status, headers={**headers(), **failure.headers}
        )
    if first is _END:
        close(None)
        return Response(b"", media_type="text/event-stream", headers=dict(headers()))

    async def body() -> AsyncIterator[bytes]:
        error: BaseException | None = None
        try:
            yield first
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), keepalive_s)
                except TimeoutError:
                    yield KEEPALIVE
                    continue
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    error = item
                    if not isinstance(item, GatewayError):
                        log.error("gateway.stream_failed", error=repr(item))
                    failure = _as_gateway_error(item)
                    yield data_frame(
                        error_body(
                            failure.message,
                            type=failure.type,
                            code=failure.code,
                            param=failure.param,
                            extra=failure.extra,
                        )
                    )
                    return
                yield item
        except BaseException as exc:  # the client went away (cancelled) or the send failed
            error = exc
            raise
        finally:
            close(error)

    response_headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **headers()}
    return StreamingResponse(body(), media_type="text/event-stream", headers=response_headers)


class ClientDisconnected(Exception):
    """The client closed the connection before its answer was ready."""


async def run_until_disconnect(receive: Callable[[], Awaitable[Any]], work: Awaitable[T]) -> T:
    """Await ``work``; if the client disconnects first, cancel it and raise
    :class:`ClientDisconnected` (non-stream requests: nobody is left to read the answer)."""
    job = asyncio.ensure_future(work)

    async def disconnected() -> None:
        while True:
            message = await receive()
            if message.get("type") == "http.disconnect":
                return

    watcher = asyncio.ensure_future(disconnected())
    try:
        done, _ = await asyncio.wait({job, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        job.cancel()
        raise
    finally:
        watcher.cancel()
    if job in done:
        return job.result()
    job.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await job
    raise ClientDisconnected
