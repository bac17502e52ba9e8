"""A scripted, fault-injecting OpenAI-compatible HTTP server for tests.

Point the real LiteLLM client at it and every layer below your code runs for real — the OpenAI
SDK, httpx, LiteLLM's exception mapping — with nothing mocked::

    with FakeLLMServer() as server:
        server.script("small", "4", Fault.rate_limit(retry_after_s=2))
        server.always("large", Reply("four", completion_tokens=1))
        response = await litellm.acompletion(
            model="openai/small", api_base=server.api_base, api_key="x", messages=[...]
        )

Replies are served first-in-first-out per model name (the name as it arrives in the request body:
LiteLLM sends ``small`` for ``openai/small``), then the model's ``always`` reply; a model with
neither answers 404 ``model_not_found``. Stdlib only: a ``ThreadingHTTPServer`` in a daemon thread.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import socket
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self, TypeAlias

__all__ = [
    "FakeLLMServer",
    "Fault",
    "RecordedRequest",
    "Reply",
    "ReplySpec",
    "ToolCall",
]

_CREATED = 1_700_000_000  # a fixed timestamp keeps responses reproducible
_CONTEXT_WINDOW_MESSAGE = (
    "This model's maximum context length is 4096 tokens. "
    "However, your messages resulted in 9000 tokens."
)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call the fake model makes; ``arguments`` is sent as a JSON string."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(dict(self.arguments))


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful completion.

    Token counts default to deterministic word counts: ``prompt_tokens`` is the number of words in
    all message contents plus 3 per message, ``completion_tokens`` is ``max(1, words in text)``.
    ``finish_reason`` defaults to ``"tool_calls"`` when there are tool calls, else ``"stop"``.
    """

    text: str = ""
    _: KW_ONLY
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    tool_calls: Sequence[ToolCall] | None = None

    @property
    def resolved_finish_reason(self) -> str:
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"


FaultKind: TypeAlias = Literal["status", "timeout", "malformed_json", "empty_choices", "disconnect"]


@dataclass(frozen=True, slots=True)
class Fault:
    """A failure the server injects instead of a completion; build one with the classmethods."""

    kind: FaultKind
    http_status: int = 200
    message: str = ""
    error_type: str | None = None
    code_name: str | None = None
    param: str | None = None
    retry_after_s: float | None = None
    delay_s: float = 0.0
    then: str | Reply | None = None

    @classmethod
    def rate_limit(cls, retry_after_s: float | None = 0) -> Fault:
        """HTTP 429 with a ``Retry-After`` header (omitted when ``retry_after_s`` is None)."""
        return cls(
            kind="status",
            http_status=429,
            message="Rate limit reached for requests. Please try again later.",
            error_type="rate_limit_error",
            code_name="rate_limit_exceeded",
            retry_after_s=retry_after_s,
        )

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        """An HTTP 5xx with an OpenAI error body."""
        return cls.status(status, "The server had an error while processing your request.")

    @classmethod
    def status(cls, code: int, message: str, code_name: str | None = None) -> Fault:
        """Any error status with an OpenAI error body; the error ``type`` follows the status."""
        return cls(
            kind="status",
            http_status=code,
            message=message,
            error_type=_error_type(code),
            code_name=code_name,
        )

    @classmethod
    def timeout(cls, delay_s: float = 30, *, then: str | Reply | None = None) -> Fault:
        """Stall ``delay_s`` seconds, then answer ``then`` or close without a response.

        Meant to outlast the client's timeout. ``FakeLLMServer.stop()`` interrupts the stall.
        """
        return cls(kind="timeout", delay_s=delay_s, then=then)

    @classmethod
    def malformed_json(cls) -> Fault:
        """HTTP 200 whose body is not valid JSON."""
        return cls(kind="malformed_json")

    @classmethod
    def empty_choices(cls) -> Fault:
        """HTTP 200 with a well-formed completion whose ``choices`` is ``[]``."""
        return cls(kind="empty_choices")

    @classmethod
    def context_window(cls) -> Fault:
        """HTTP 400 ``context_length_exceeded``, exactly as OpenAI words it."""
        return cls(
            kind="status",
            http_status=400,
            message=_CONTEXT_WINDOW_MESSAGE,
            error_type="invalid_request_error",
            code_name="context_length_exceeded",
            param="messages",
        )

    @classmethod
    def disconnect(cls) -> Fault:
        """Close the connection without sending any response."""
        return cls(kind="disconnect")


ReplySpec: TypeAlias = str | Reply | Fault | Callable[[dict[str, Any]], str | Reply | Fault]
"""What ``script`` and ``always`` accept; a callable gets the parsed request body."""


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One chat completion request as the server received it."""

    model: str
    messages: list[dict[str, Any]]
    body: dict[str, Any]


class FakeLLMServer:
    """An OpenAI-compatible server on loopback that answers from per-model scripts.

    Use as a context manager, or call ``start()`` and ``stop()``. Thread-safe: scripts may be
    added while requests are in flight, and concurrent requests are served in parallel.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._queues: dict[str, deque[ReplySpec]] = {}
        self._always: dict[str, ReplySpec] = {}
        self._requests: list[RecordedRequest] = []
        self._embedding_requests: list[dict[str, Any]] = []
        self._errors: list[BaseException] = []
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind the port and serve in a daemon thread; returns ``self``."""
        if self._httpd is not None:
            raise RuntimeError("FakeLLMServer is already running")
        self._stopping = threading.Event()
        httpd = _HTTPServer((self._host, self._port), _Handler, self)
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"FakeLLMServer:{httpd.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake stalled handlers, drop open connections and free the port."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            # Shut down, not close: the handler thread owns the socket and closes it itself.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=1)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def api_base(self) -> str:
        """``http://HOST:PORT/v1``, for LiteLLM's ``api_base``."""
        if self._httpd is None:
            raise RuntimeError("FakeLLMServer is not running; call start() first")
        host = "127.0.0.1" if self._host in ("0.0.0.0", "") else self._host
        return f"http://{host}:{self._httpd.port}/v1"

    # -- scripting ---------------------------------------------------------------------------

    def script(self, model: str, *replies: ReplySpec) -> None:
        """Queue replies for ``model``; each request consumes the oldest one."""
        with self._lock:
            self._queues.setdefault(model, deque()).extend(replies)

    def always(self, model: str, reply: ReplySpec) -> None:
        """Set the reply ``model`` gives whenever its queue is empty."""
        with self._lock:
            self._always[model] = reply

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every chat completion request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, model: str) -> list[RecordedRequest]:
        """The recorded requests addressed to ``model``."""
        return [r for r in self.requests if r.model == model]

    @property
    def embedding_requests(self) -> list[dict[str, Any]]:
        """Every ``/v1/embeddings`` body received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._embedding_requests)

    @property
    def errors(self) -> list[BaseException]:
        """Exceptions raised by reply callables (each was answered with HTTP 500)."""
        with self._lock:
            return list(self._errors)

    # -- used by the handler -----------------------------------------------------------------

    def _models(self) -> list[str]:
        with self._lock:
            return sorted(set(self._queues) | set(self._always))

    def _next_reply(self, model: str, body: dict[str, Any]) -> ReplySpec | None:
        with self._lock:
            self._requests.append(RecordedRequest(model=model, messages=_messages(body), body=body))
            queue = self._queues.get(model)
            if queue:
                return queue.popleft()
            return self._always.get(model)

    def _record_error(self, exc: BaseException) -> None:
        with self._lock:
            self._errors.append(exc)

    def _next_id(self) -> str:
        with self._lock:
            return f"chatcmpl-fake-{next(self._ids)}"

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for handlers stuck on idle keep-alive sockets
    request_queue_size = 128  # the default 5 drops SYNs under a burst, adding 1 s retransmits

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        fake: FakeLLMServer,
    ) -> None:
        self.fake = fake
        super().__init__(address, handler)

    @property
    def port(self) -> int:
        return int(self.socket.getsockname()[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exception()
        if isinstance(exc, OSError):
            return  # the client hung up or stop() cut the connection: nothing to report
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, keep-alive clients wait ~40 ms
    # for the delayed ACK on every request.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, add=True)

    def finish(self) -> None:
        self.server.fake._track(self.connection, add=False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read ``requests``, not access logs

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            data = [
                {"id": m, "object": "model", "created": _CREATED, "owned_by": "ecocascade"}
                for m in self.server.fake._models()
            ]
            self._send_json(200, {"object": "list", "data": data})
        else:
            self._send_error(404, f"Unknown path: {self.path}", "invalid_request_error")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.rstrip("/") in ("/v1/embeddings", "/embeddings"):
            self._embeddings(raw)
            return
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._send_error(404, f"Unknown path: {self.path}", "invalid_request_error")
            return
        try:
            body = json.loads(raw)
        except ValueError as exc:
            self._send_error(400, f"Request body is not valid JSON: {exc}", "invalid_request_error")
            return
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            self._send_error(400, "Request body needs a string 'model'.", "invalid_request_error")
            return
        model: str = body["model"]
        fake = self.server.fake
        spec = fake._next_reply(model, body)
        if spec is None:
            self._send_error(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                "invalid_request_error",
                code_name="model_not_found",
            )
            return
        if callable(spec):
            try:
                spec = spec(body)
            except Exception as exc:
                fake._record_error(exc)
                self._send_error(
                    500, f"Reply callable raised {type(exc).__name__}: {exc}", "server_error"
                )
                return
        try:
            self._answer(model, body, spec)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _embeddings(self, raw: bytes) -> None:
        """Any model embeds: a deterministic 8-dimensional unit vector per input (from a hash)."""
        try:
            body = json.loads(raw)
        except ValueError as exc:
            self._send_error(400, f"Request body is not valid JSON: {exc}", "invalid_request_error")
            return
        inputs = body.get("input") if isinstance(body, dict) else None
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not isinstance(body.get("model"), str):
            self._send_error(400, "Needs a string 'model' and an 'input'.", "invalid_request_error")
            return
        fake = self.server.fake
        with fake._lock:
            fake._embedding_requests.append(body)
        data = [
            {"object": "embedding", "index": i, "embedding": _fake_vector(str(text))}
            for i, text in enumerate(inputs)
        ]
        tokens = sum(len(str(text).split()) for text in inputs)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        self._send_json(
            200, {"object": "list", "data": data, "model": body["model"], "usage": usage}
        )

    # -- answers -----------------------------------------------------------------------------

    def _answer(self, model: str, body: dict[str, Any], spec: str | Reply | Fault) -> None:
        if isinstance(spec, str):
            spec = Reply(spec)
        if isinstance(spec, Reply):
            self._send_reply(model, body, spec)
        elif spec.kind == "status":
            headers = {}
            if spec.retry_after_s is not None:
                headers["Retry-After"] = _format_seconds(spec.retry_after_s)
            self._send_error(
                spec.http_status,
                spec.message,
                spec.error_type or _error_type(spec.http_status),
                code_name=spec.code_name,
                param=spec.param,
                headers=headers,
            )
        elif spec.kind == "timeout":
            stopped = self.server.fake._stopping.wait(spec.delay_s)
            if stopped or spec.then is None:
                self.close_connection = True
            else:
                self._answer(model, body, spec.then)
        elif spec.kind == "malformed_json":
            self._send_raw(200, b'{"id": "chatcmpl-fake", "choices": [', "application/json")
        elif spec.kind == "empty_choices":
            completion = self._completion(model, body, Reply(""))
            completion["choices"] = []
            self._send_json(200, completion)
        elif spec.kind == "disconnect":
            self.close_connection = True
        else:  # pragma: no cover - FaultKind is closed
            raise AssertionError(spec.kind)

    def _send_reply(self, model: str, body: dict[str, Any], reply: Reply) -> None:
        if body.get("stream"):
            options = body.get("stream_options") or {}
            include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            self._send_stream(model, body, reply, include_usage=include_usage)
        else:
            self._send_json(200, self._completion(model, body, reply))

    def _completion(self, model: str, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if reply.tool_calls:
            message["content"] = reply.text or None
            message["tool_calls"] = [
                {
                    "id": call.id or f"call_fake_{i}",
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_json()},
                }
                for i, call in enumerate(reply.tool_calls)
            ]
        return {
            "id": self.server.fake._next_id(),
            "object": "chat.completion",
            "created": _CREATED,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": reply.resolved_finish_reason,
                }
            ],
            "usage": _usage(body, reply),
        }

    def _send_stream(
        self, model: str, body: dict[str, Any], reply: Reply, *, include_usage: bool
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in _stream_events(self.server.fake._next_id(), model, body, reply, include_usage):
            self._write_chunk(f"data: {event}\n\n".encode())
        self._write_chunk(b"")  # the zero-length chunk ends the body

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _send_error(
        self,
        status: int,
        message: str,
        error_type: str,
        *,
        code_name: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        error = {"message": message, "type": error_type, "param": param, "code": code_name}
        self._send_json(status, {"error": error}, headers=headers)

    def _send_json(
        self, status: int, payload: Any, *, headers: Mapping[str, str] | None = None
    ) -> None:
        self._send_raw(status, json.dumps(payload).encode(), "application/json", headers)

    def _send_raw(
        self,
        status: int,
        data: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()


def _stream_events(
    completion_id: str, model: str, body: dict[str, Any], reply: Reply, include_usage: bool
) -> Iterator[str]:
    def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
        return json.dumps(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": _CREATED,
                "model": model,
                "choices": choices,
                **extra,
            }
        )

    def delta(d: dict[str, Any], finish_reason: str | None = None) -> str:
        return chunk([{"index": 0, "delta": d, "logprobs": None, "finish_reason": finish_reason}])

    yield delta({"role": "assistant", "content": ""})
    for piece in _split_text(reply.text, 3):
        yield delta({"content": piece})
    for i, call in enumerate(reply.tool_calls or ()):
        start = {
            "index": i,
            "id": call.id or f"call_fake_{i}",
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        yield delta({"tool_calls": [start]})
        for piece in _split_even(call.arguments_json(), 2):
            yield delta({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
    yield delta({}, reply.resolved_finish_reason)
    if include_usage:
        yield chunk([], usage=_usage(body, reply))
    yield "[DONE]"


def _fake_vector(text: str) -> list[float]:
    import hashlib

    digest = hashlib.sha256(text.encode()).digest()
    values = [b - 127.5 for b in digest[:8]]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [round(v / norm, 6) for v in values]


def _split_text(text: str, parts: int) -> list[str]:
    """Split at word boundaries into at most ``parts`` pieces that join back to ``text``."""
    tokens = re.findall(r"\s*\S+\s*|\s+", text)
    if not tokens:
        return []
    size = -(-len(tokens) // parts)
    return ["".join(tokens[i : i + size]) for i in range(0, len(tokens), size)]


def _split_even(text: str, parts: int) -> list[str]:
    if not text:
        return []
    size = -(-len(text) // parts)
    return [text[i : i + size] for i in range(0, len(text), size)]


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return []
    return [m for m in messages if isinstance(m, dict)]


def _words(content: Any) -> int:
    if isinstance(content, str):
        return len(content.split())
    if isinstance(content, list):
        return sum(
            len(part["text"].split())
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return 0


def _usage(body: dict[str, Any], reply: Reply) -> dict[str, int]:
    messages = _messages(body)
    prompt = reply.prompt_tokens
    if prompt is None:
        prompt = sum(_words(m.get("content")) + 3 for m in messages)
    completion = reply.completion_tokens
    if completion is None:
        completion = max(1, _words(reply.text))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _error_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"
