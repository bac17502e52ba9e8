"""One xllamacpp server per local model per process: started lazily, reused, stopped at exit.

Each server is a child process (``_child.py``) bound to 127.0.0.1 on a port the OS picks, so two
processes never fight over a port, and a native crash in llama.cpp cannot take the host app down
(the cascade sees a connection error and escalates; the next query restarts the server). The child
exits when our end of its stdin closes — on :func:`shutdown`, at interpreter exit, or when this
process dies — so no server outlives its owner.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import structlog

from ecocascade.exceptions import ConfigError, LocalServerError
from ecocascade.models.local.catalogue import ResolvedModel, home_dir, resolve
from ecocascade.types import Message

__all__ = [
    "LocalRoute",
    "LocalServer",
    "ServerOptions",
    "completion_prompt",
    "ensure_server",
    "running_servers",
    "shutdown",
]

log = structlog.get_logger(__name__)

# Tier params that configure the local server rather than the completion request.
RUNTIME_PARAMS = frozenset({"n_threads", "n_ctx", "n_parallel", "port", "start_timeout_s"})


def _env_count(name: str) -> int | None:
    """A positive integer from the environment, ``None`` when unset; bad values name ``name``."""
    env = os.environ.get(name)
    if not env:
        return None
    try:
        value = int(env)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"must be an integer >= 1, got {env!r}", where=name)
    return value


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 2


def _default_threads() -> int:
    return _env_count("ECOCASCADE_LOCAL_THREADS") or max(1, min(_cores(), 8))


def _default_parallel() -> int:
    """Request slots served together by llama.cpp's continuous batching.

    One slot per core, 2 to 8: with one slot a second request waits for the whole first
    answer; with several, llama.cpp decodes them in one batch per step, which on a machine whose
    cores are not busy elsewhere costs little more than one sequence (a small model is bound by
    memory bandwidth). ``$ECOCASCADE_LOCAL_PARALLEL`` overrides; see evals/cost_levers.md for
    what it bought on our shared 2-core machine (nothing).
    """
    return _env_count("ECOCASCADE_LOCAL_PARALLEL") or max(2, min(_cores(), 8))


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """How a local server runs. ``port=0`` lets the OS pick a free port (the default).

    ``ctx`` is each request slot's context: llama.cpp splits its context across its ``parallel``
    slots, so the server is started with ``ctx * parallel`` and every slot keeps ``ctx``.
    """

    threads: int
    ctx: int = 2048
    parallel: int = 1
    port: int = 0
    start_timeout_s: float = 120.0

    @classmethod
    def from_params(cls, params: Mapping[str, Any], *, where: str) -> ServerOptions:
        threads = params.get("n_threads")
        if threads is None:
            threads = _default_threads()  # its own errors name the environment variable
        parallel = params.get("n_parallel")
        if parallel is None:
            parallel = _default_parallel()
        try:
            options = cls(
                threads=int(threads),
                ctx=int(params.get("n_ctx", 2048)),
                parallel=int(parallel),
                port=int(params.get("port", 0)),
                start_timeout_s=float(params.get("start_timeout_s", 120.0)),
            )
        except (TypeError, ValueError) as error:
            raise ConfigError(f"bad local server setting: {error}", where=where) from None
        if options.threads < 1 or options.ctx < 64 or options.parallel < 1:
            raise ConfigError("n_threads, n_parallel >= 1 and n_ctx >= 64 please", where=where)
        if not 0 <= options.port < 65536:
            raise ConfigError(f"port must be 0..65535, got {options.port}", where=where)
        return options


class LocalServer:
    """A running xllamacpp server for one GGUF (a child process)."""

    def __init__(self, model: ResolvedModel, options: ServerOptions, *, label: str) -> None:
        self.model = model
        self.options = options
        self.label = label
        self.api_base = ""
        self.log_path = home_dir() / "logs" / f"local-{model.name}-{os.getpid()}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_offset = 0  # where this start's lines begin in the (appended) log

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Spawn the server and wait until it listens; :class:`LocalServerError` if it cannot."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._log_offset = self._log.tell()
        argv = [
            sys.executable, "-m", "ecocascade.models.local._child",
            "--gguf", str(self.model.path), "--alias", self.model.name,
            "--port", str(self.options.port), "--threads", str(self.options.threads),
            "--ctx", str(self.options.ctx * self.options.parallel),
            "--parallel", str(self.options.parallel),
        ]  # fmt: skip
        started = time.perf_counter()
        self._proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, close_fds=True
        )
        message = self._read_hello(self.options.start_timeout_s)
        if "ready" not in message:
            self.stop()
            reason = message.get("error", "the server exited without saying why")
            raise LocalServerError(
                f"{self.label}: local server failed to start: {reason}; log: {self.log_path}",
                model=self.label,
                log_tail=_tail(self.log_path, self._log_offset),
            )
        self.api_base = message["ready"].rstrip("/") + "/v1"
        log.info(
            "local.server_started",
            model=self.label,
            pid=self.pid,
            api_base=self.api_base,
            threads=self.options.threads,
            parallel=self.options.parallel,
            start_s=round(time.perf_counter() - started, 3),
        )

    def _read_hello(self, timeout_s: float) -> dict[str, str]:
        assert self._proc is not None and self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout_s)
        if not ready:
            return {"error": f"not listening after {timeout_s:.0f}s"}
        line = self._proc.stdout.readline()
        if not line:
            return {"error": f"the server process exited (code {self._proc.wait(5)})"}
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            return {"error": f"unexpected output: {line[:200]!r}"}
        return message if isinstance(message, dict) else {"error": f"unexpected: {message!r}"}

    def stop(self, timeout_s: float = 5.0) -> None:
        """Close the child's stdin (it exits by itself), then make sure it is gone."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout_s)
            if proc.stdout is not None:
                proc.stdout.close()
            log.info("local.server_stopped", model=self.label, pid=proc.pid)
        if self._log is not None:
            self._log.close()
            self._log = None


_servers: dict[tuple[str, ServerOptions], LocalServer] = {}
_locks: dict[tuple[str, ServerOptions], threading.Lock] = {}
_registry_lock = threading.Lock()


def ensure_server(model: str, options: ServerOptions) -> LocalServer:
    """The running server for ``model`` (a ``local/...`` string), starting it if needed.

    Blocking (start-up takes about a second); call it from a thread in async code.
    """
    resolved = resolve(model)
    key = (str(resolved.path), options)
    with _registry_lock:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        server = _servers.get(key)
        if server is not None and server.alive():
            return server
        if server is not None:
            log.warning("local.server_died", model=model, pid=server.pid)
            server.stop()
        server = LocalServer(resolved, options, label=model)
        server.start()
        _servers[key] = server
        return server


def running_servers() -> list[LocalServer]:
    return [s for s in _servers.values() if s.alive()]


def shutdown() -> None:
    """Stop every local server this process started (also runs at interpreter exit)."""
    with _registry_lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        server.stop()


atexit.register(shutdown)


@dataclass(frozen=True, slots=True)
class LocalRoute:
    """How TierClient reaches a local model through LiteLLM."""

    litellm_model: str
    api_base: str
    style: str
    defaults: Mapping[str, Any]


def route_for(model: str, params: Mapping[str, Any]) -> LocalRoute:
    """Start (or reuse) the server for a ``local/...`` tier and say how to call it."""
    options = ServerOptions.from_params(params, where=f"tier {model}: params")
    server = ensure_server(model, options)
    provider = "text-completion-openai" if server.model.style == "completion" else "openai"
    return LocalRoute(
        litellm_model=f"{provider}/{server.model.name}",
        api_base=server.api_base,
        style=server.model.style,
        defaults=server.model.defaults,
    )


def completion_prompt(messages: Sequence[Message]) -> str:
    """Render chat messages as a plain Question/Answer prompt for a base (non-chat) model."""
    parts: list[str] = []
    for message in messages:
        content = str(message.get("content") or "").strip()
        role = message.get("role")
        if role == "system":
            parts.append(content + "\n")
        elif role == "user":
            parts.append(f"Question: {content}\nAnswer:")
        elif role == "assistant" and parts and parts[-1].endswith("Answer:"):
            parts[-1] += f" {content}\n"
        elif role == "assistant":
            parts.append(f"Answer: {content}\n")
        else:  # tool results and anything else: labelled context, never a question
            parts.append(f"{str(role).capitalize()}: {content}\n")
    return "\n".join(parts)


def _tail(path: Path, offset: int = 0, lines: int = 15) -> str:
    """The last ``lines`` lines written at or after byte ``offset``."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
