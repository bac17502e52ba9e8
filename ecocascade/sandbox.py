"""Run untrusted Python from a model's answer: a fresh temp dir, a scrubbed environment, limits.

This is containment against accidents, not a security boundary: the code runs as the current
user and can read whatever that user can read. What it does guarantee:

- the code runs in a fresh temporary directory (its cwd and ``HOME``), removed afterwards;
- the child sees only allow-listed environment variables, so API keys do not leak into it;
- address space, CPU time and core dumps are capped with ``setrlimit``;
- the child runs in its own session; on timeout, on cancellation and after a normal exit the whole
  process group is killed, so grandchildren it spawned do not outlive the run (a grandchild that
  calls ``setsid()`` itself escapes the group and is out of reach);
- output is capped per stream and the rest is drained, so a chatty child never blocks on a pipe.

POSIX only (``resource``, process groups).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import signal
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from ecocascade.exceptions import ConfigError

__all__ = ["ExecutionResult", "check_limits", "extract_python_code", "run_python"]

_PYTHON_TAGS = frozenset({"python", "py", "python3"})
_OPEN_FENCE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n]*?)[ \t]*$")
_CLOSE_FENCE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*$")
_READ_CHUNK = 64 * 1024
_PIPE_GRACE_S = 1.0
"""How long to wait for the output pipes to close once the process group is dead."""


def extract_python_code(text: str) -> str | None:
    """Return the code of the last fenced Python block in ``text``.

    Blocks tagged ``python``, ``py`` or ``python3`` win; failing those, the last untagged block.
    Blocks tagged with another language (```` ```bash ````) are never Python. Both ```` ``` ```` and
    ``~~~`` fences are recognised; a block left open at the end of the text runs to the end.
    Returns ``None`` when there is no candidate block.
    """
    last_python: str | None = None
    last_untagged: str | None = None
    for tag, code in _fenced_blocks(text):
        if tag in _PYTHON_TAGS:
            last_python = code
        elif not tag:
            last_untagged = code
    return last_python if last_python is not None else last_untagged


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    """Split markdown into ``(lower-cased tag, dedented code)`` for every fenced block."""
    blocks: list[tuple[str, str]] = []
    fence: str | None = None
    tag = ""
    body: list[str] = []
    for line in text.splitlines():
        if fence is None:
            opening = _OPEN_FENCE.match(line)
            if opening is None:
                continue
            info = opening["info"]
            if opening["fence"][0] == "`" and "`" in info:
                continue  # inline code such as ```x```, not a fence (CommonMark)
            fence = opening["fence"]
            tag = info.split(maxsplit=1)[0].strip("{}.").lower() if info else ""
            body = []
            continue
        closing = _CLOSE_FENCE.match(line)
        if closing and closing["fence"][0] == fence[0] and len(closing["fence"]) >= len(fence):
            blocks.append((tag, _block_code(body)))
            fence = None
        else:
            body.append(line)
    if fence is not None:
        blocks.append((tag, _block_code(body)))
    return blocks


def _block_code(lines: list[str]) -> str:
    code = textwrap.dedent("\n".join(lines)).strip("\n")
    return code + "\n" if code else ""


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    """How one sandboxed run ended.

    ``exit_code`` is ``None`` when the run was killed on timeout and negative (``-signal``) when
    something else killed it, e.g. ``-24`` for SIGXCPU at the CPU-time limit. ``truncated`` says
    that stdout or stderr hit ``max_output_bytes`` and the rest was dropped.
    """

    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool
    duration_s: float
    truncated: bool

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


class _Capture:
    """Keeps the first ``cap`` bytes of a stream and counts the rest as dropped."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.truncated = False

    def add(self, chunk: bytes) -> None:
        room = self.cap - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        if len(chunk) > room:
            self.truncated = True

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


class _Collector(asyncio.SubprocessProtocol):
    """Receives the child's output as it arrives, so its pipes never fill up, and its exit."""

    def __init__(self, max_output_bytes: int) -> None:
        loop = asyncio.get_running_loop()
        self.streams = {1: _Capture(max_output_bytes), 2: _Capture(max_output_bytes)}
        self.exited: asyncio.Future[None] = loop.create_future()
        self.finished: asyncio.Future[None] = loop.create_future()
        """Set once the child is reaped and every pipe is closed: nothing more will arrive."""

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self.streams[fd].add(data)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done():
            self.finished.set_result(None)


async def run_python(
    code: str,
    *,
    timeout_s: float = 10.0,
    memory_mb: int | None = 512,
    cpu_s: int | None = None,
    max_output_bytes: int = 64_000,
    env_allowlist: Collection[str] = ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "SYSTEMROOT"),
    extra_env: Mapping[str, str] | None = None,
    python: str = sys.executable,
    stdin: str | None = None,
) -> ExecutionResult:
    """Run ``code`` as ``main.py`` with ``python -I`` in a fresh temp dir and report how it ended.

    ``timeout_s`` is wall-clock; ``cpu_s`` (default ``ceil(timeout_s) + 1``) and ``memory_mb``
    (address space; ``None`` for no limit) are enforced by the kernel. The child's environment
    holds only the ``env_allowlist`` variables that are set here, then ``HOME`` (the temp dir) and
    ``PYTHONDONTWRITEBYTECODE``, then ``extra_env``, which wins. ``stdin`` is fed to the child;
    without it the child reads from ``/dev/null``.

    Raises :class:`ConfigError` for invalid arguments or a ``python`` that cannot be started.
    """
    _validate(timeout_s, memory_mb, cpu_s, max_output_bytes, env_allowlist, python)
    cpu_limit = cpu_s if cpu_s is not None else math.ceil(timeout_s) + 1
    limits = _limit_setter(memory_mb, cpu_limit)
    with tempfile.TemporaryDirectory(prefix="ecocascade-sandbox-") as workdir:
        # A few KB into a local temp dir: not worth a thread hop (nor is the rmtree on exit).
        with open(os.path.join(workdir, "main.py"), "w", encoding="utf-8") as script:  # noqa: ASYNC230
            script.write(code)
        env = {name: os.environ[name] for name in env_allowlist if name in os.environ}
        env |= {"HOME": workdir, "PYTHONDONTWRITEBYTECODE": "1", **(extra_env or {})}
        return await _run(
            [python, "-I", "-B", "main.py"],
            cwd=workdir,
            env=env,
            preexec_fn=limits,
            timeout_s=timeout_s,
            max_output_bytes=max_output_bytes,
            stdin=stdin,
        )


async def _run(
    argv: list[str],
    *,
    cwd: str,
    env: dict[str, str],
    preexec_fn: Callable[[], None],
    timeout_s: float,
    max_output_bytes: int,
    stdin: str | None,
) -> ExecutionResult:
    loop = asyncio.get_running_loop()
    collector = _Collector(max_output_bytes)
    started = time.monotonic()
    try:
        transport, _ = await loop.subprocess_exec(
            lambda: collector,
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            preexec_fn=preexec_fn,
        )
    except (FileNotFoundError, PermissionError) as exc:
        raise ConfigError(f"cannot start {argv[0]!r}: {exc.strerror}", where="python") from exc

    # The child leads its own session and group, so its pid is also the group id.
    pgid = transport.get_pid()
    timed_out = False
    try:
        stdin_pipe = transport.get_pipe_transport(0)
        if stdin is not None and isinstance(stdin_pipe, asyncio.WriteTransport):
            stdin_pipe.write(stdin.encode("utf-8"))
            stdin_pipe.write_eof()  # a child that never reads just sees the pipe closed at exit
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(collector.exited)
        except TimeoutError:
            timed_out = True
        duration_s = time.monotonic() - started
        # Grandchildren may still hold the pipes open: kill the group, then give the last output
        # a moment to arrive.
        _kill_group(pgid)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_PIPE_GRACE_S):
                await asyncio.shield(collector.finished)
    finally:
        _kill_group(pgid)  # again: we may be here because the awaiting task was cancelled
        transport.close()  # closes the pipes; kills the child if it is somehow still running
        await asyncio.shield(collector.finished)

    out, err = collector.streams[1], collector.streams[2]
    return ExecutionResult(
        exit_code=None if timed_out else transport.get_returncode(),
        stdout=out.text(),
        stderr=err.text(),
        timed_out=timed_out,
        duration_s=duration_s,
        truncated=out.truncated or err.truncated,
    )


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _limit_setter(memory_mb: int | None, cpu_s: int) -> Callable[[], None]:
    """Build the function the child runs between fork and exec to apply its resource limits."""
    import resource

    wanted = [(resource.RLIMIT_CPU, cpu_s), (resource.RLIMIT_CORE, 0)]
    if memory_mb is not None:
        wanted.append((resource.RLIMIT_AS, memory_mb * 1024 * 1024))

    def apply_limits() -> None:
        for which, value in wanted:
            _, hard = resource.getrlimit(which)
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)  # an unprivileged process cannot raise its hard limit
            resource.setrlimit(which, (value, value))

    return apply_limits


def check_limits(timeout_s: float, memory_mb: int | None) -> None:
    """Raise :class:`ConfigError` unless the wall-clock and memory limits are usable."""
    if not (math.isfinite(timeout_s) and timeout_s > 0):
        raise ConfigError(
            f"must be a positive number of seconds, got {timeout_s!r}", where="timeout_s"
        )
    if memory_mb is not None and memory_mb <= 0:
        raise ConfigError(
            f"must be a positive number of MiB or None, got {memory_mb!r}", where="memory_mb"
        )


def _validate(
    timeout_s: float,
    memory_mb: int | None,
    cpu_s: int | None,
    max_output_bytes: int,
    env_allowlist: Collection[str],
    python: str,
) -> None:
    check_limits(timeout_s, memory_mb)
    if cpu_s is not None and cpu_s <= 0:
        raise ConfigError(
            f"must be a positive number of seconds or None, got {cpu_s!r}", where="cpu_s"
        )
    if max_output_bytes < 0:
        raise ConfigError(f"must be >= 0, got {max_output_bytes!r}", where="max_output_bytes")
    if isinstance(env_allowlist, str):
        raise ConfigError(
            f"must be a collection of variable names, not the string {env_allowlist!r}",
            where="env_allowlist",
        )
    if not python:
        raise ConfigError("must name a Python executable", where="python")
