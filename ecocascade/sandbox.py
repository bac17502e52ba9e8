"""Run untrusted Python from a model's answer: a fresh temp dir, a scrubbed environment, limits.

This is containment against accidents, not a security boundary: the code runs as the current
user, can read whatever that user can read and can use the network. What it does guarantee:

- the code runs in a fresh temporary directory (its cwd, ``HOME`` and ``TMPDIR``), removed
  afterwards; support ``files`` (a tool module, a data file) are copied into it first;
- writes outside that directory fail (``PermissionError``) where the kernel offers Landlock
  (Linux ≥ 5.13 with Landlock enabled; no privileges needed, root included): the child may
  write file contents and create, rename and delete directory entries only under its temp dir
  (plus ``writable_paths``) and may write to ``/dev/null``-like devices. Landlock does not
  cover metadata: ``chmod``, ``utime``, ``chown`` and extended attributes still work on any
  file this user owns; and below Landlock ABI 3 (Linux < 6.2) ``truncate(2)`` of an outside
  file is not confined either. With Landlock ABI ≥ 6 the child also cannot signal processes
  outside the sandbox. Where Landlock is missing, writes are **not** confined: a warning
  (``sandbox.writes_unconfined``) is logged once and ``ExecutionResult.writes_confined`` is
  ``False`` — nothing pretends otherwise;
- the child sees only allow-listed environment variables, so API keys do not leak into it;
- address space, CPU time, file size and core dumps are capped with ``setrlimit`` (at the CPU
  limit the child gets SIGXCPU, then SIGKILL a second later);
- the child runs in its own session; on timeout, on cancellation and after a normal exit the whole
  process group is killed, so grandchildren it spawned do not outlive the run (a grandchild that
  calls ``setsid()`` itself escapes the group and is out of reach);
- output is capped per stream and the rest is drained, so a chatty child never blocks on a pipe.

POSIX only (``resource``, process groups); write confinement is Linux only.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import functools
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import TypeAlias

import structlog

from ecocascade.exceptions import ConfigError

__all__ = [
    "ExecutionResult",
    "SandboxFiles",
    "check_limits",
    "landlock_abi",
    "normalise_files",
    "run_python",
]

log = structlog.get_logger(__name__)

SandboxFiles: TypeAlias = (
    Mapping[str, "str | bytes | os.PathLike[str]"] | Iterable["os.PathLike[str]"]
)
"""Support files for the sandbox's working dir: ``{"name.py": text, "data.bin": bytes,
"tool.py": Path("src/tool.py")}`` (a path value is copied from disk), or a list of paths, each
copied under its own file name. Names are relative (subfolders allowed) and never ``main.py``."""

_READ_CHUNK = 64 * 1024
_PIPE_GRACE_S = 1.0
"""How long to wait for the output pipes to close once the process group is dead."""


@dataclasses.dataclass(frozen=True, slots=True)
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
    writes_confined: bool = False
    """Whether Landlock confined the run's writes to its temp dir (see the module docstring)."""

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
    max_file_mb: int | None = 100,
    max_output_bytes: int = 64_000,
    env_allowlist: Collection[str] = ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "SYSTEMROOT"),
    extra_env: Mapping[str, str] | None = None,
    python: str = sys.executable,
    stdin: str | None = None,
    files: SandboxFiles | None = None,
    confine_writes: bool = True,
    writable_paths: Collection[str | os.PathLike[str]] = (),
) -> ExecutionResult:
    """Run ``code`` as ``main.py`` in a fresh temp dir, isolated from the caller's Python set-up
    (``python -E -s``: no ``PYTHON*`` variables, no user site-packages), and report how it ended.

    ``timeout_s`` is wall-clock; ``cpu_s`` (default ``ceil(timeout_s) + 1``), ``memory_mb``
    (address space) and ``max_file_mb`` (the largest file the code may write: a bigger write
    fails with ``OSError: File too large``) are enforced by the kernel; ``None`` for no limit.
    The child's environment holds only the ``env_allowlist`` variables that are set here, then
    ``HOME`` and ``TMPDIR`` (the temp dir) and ``PYTHONDONTWRITEBYTECODE``, then ``extra_env``,
    which wins. ``stdin`` is fed to the child; without it the child reads from ``/dev/null``.

    ``files`` (see :data:`SandboxFiles`) are written next to ``main.py`` first, so the code can
    import them: the script's own dir is the first entry of ``sys.path``.
    With ``confine_writes`` (the default) the code may write only under its temp dir and
    ``writable_paths``, where the kernel allows it (``ExecutionResult.writes_confined``).

    Raises :class:`ConfigError` for invalid arguments, unusable ``files`` or a ``python`` that
    cannot be started.
    """
    _validate(timeout_s, memory_mb, cpu_s, max_output_bytes, env_allowlist, python)
    if max_file_mb is not None and (not isinstance(max_file_mb, int) or max_file_mb <= 0):
        raise ConfigError(
            f"must be a positive number of MiB or None, got {max_file_mb!r}", where="max_file_mb"
        )
    support = normalise_files(files)
    extra_writable = _existing_paths(writable_paths)
    cpu_limit = cpu_s if cpu_s is not None else math.ceil(timeout_s) + 1
    with tempfile.TemporaryDirectory(prefix="ecocascade-sandbox-") as workdir:
        if support:
            await asyncio.to_thread(_write_files, workdir, support)
        # A few KB into a local temp dir: not worth a thread hop (nor is the rmtree on exit).
        with open(os.path.join(workdir, "main.py"), "w", encoding="utf-8") as script:  # noqa: ASYNC230
            script.write(code)
        env = {name: os.environ[name] for name in env_allowlist if name in os.environ}
        env |= {"HOME": workdir, "TMPDIR": workdir, "PYTHONDONTWRITEBYTECODE": "1"}
        env |= extra_env or {}
        ruleset = _write_ruleset([workdir, *extra_writable]) if confine_writes else None
        try:
            result = await _run(
                # -I minus -P: as isolated, but the temp dir stays importable for ``files``.
                [python, "-E", "-s", "-B", "main.py"],
                cwd=workdir,
                env=env,
                preexec_fn=_limit_setter(memory_mb, cpu_limit, max_file_mb, ruleset),
                timeout_s=timeout_s,
                max_output_bytes=max_output_bytes,
                stdin=stdin,
            )
        finally:
            if ruleset is not None:
                os.close(ruleset)
    # The temp dir's random name would make every traceback unique: show it as "." (the code's
    # working dir), so the same code gives the same output — and a recorded run replays.
    return dataclasses.replace(
        result,
        stdout=_relative_to(result.stdout, workdir),
        stderr=_relative_to(result.stderr, workdir),
        writes_confined=ruleset is not None,
    )


def _relative_to(text: str, workdir: str) -> str:
    for path in {os.path.realpath(workdir), workdir}:
        text = text.replace(path + os.sep, "." + os.sep).replace(path, ".")
    return text


def normalise_files(files: SandboxFiles | None) -> dict[str, str | bytes | Path]:
    """``files`` as ``{relative name: text, bytes or Path}``, checked: a caller mistake is a
    :class:`ConfigError` up front, never a half-built sandbox dir."""
    if files is None:
        return {}
    if isinstance(files, str | bytes | os.PathLike):
        raise ConfigError(
            "pass a mapping {name: content or path} or a list of paths, not a single value",
            where="files",
        )
    items: list[tuple[str, object]]
    if isinstance(files, Mapping):
        items = [(str(name), value) for name, value in files.items()]
    else:
        items = []
        for path in files:
            if not isinstance(path, str | os.PathLike):
                raise ConfigError(f"expected a file path, got {path!r}", where="files")
            items.append((Path(path).name, Path(path)))
    normalised: dict[str, str | bytes | Path] = {}
    for name, value in items:
        pure = PurePosixPath(name)
        if not name or pure.is_absolute() or ".." in pure.parts or pure.parts[:1] == (".",):
            raise ConfigError(
                f"{name!r} must be a relative path inside the sandbox dir", where="files"
            )
        if str(pure) == "main.py":
            raise ConfigError("'main.py' is the code being run; pick another name", where="files")
        if isinstance(value, os.PathLike):
            value = Path(value)
            if not value.is_file():
                raise ConfigError(f"{name!r}: {str(value)!r} is not a file", where="files")
        elif not isinstance(value, str | bytes):
            raise ConfigError(
                f"{name!r}: expected text, bytes or a path, got {type(value).__name__}",
                where="files",
            )
        normalised[str(pure)] = value
    return normalised


def _existing_paths(paths: Collection[str | os.PathLike[str]]) -> list[str]:
    if isinstance(paths, str | os.PathLike):
        raise ConfigError("pass a list of paths, not a single path", where="writable_paths")
    found = [os.path.abspath(path) for path in paths]
    for path in found:
        if not os.path.exists(path):
            raise ConfigError(f"{path!r} does not exist", where="writable_paths")
    return found


def _write_files(workdir: str, files: Mapping[str, str | bytes | Path]) -> None:
    for name, value in files.items():
        target = Path(workdir, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(value, Path):
            shutil.copyfile(value, target)
        elif isinstance(value, bytes):
            target.write_bytes(value)
        else:
            target.write_text(value, encoding="utf-8")


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


def _limit_setter(
    memory_mb: int | None, cpu_s: int, file_mb: int | None, ruleset: int | None
) -> Callable[[], None]:
    """Build the function the child runs between fork and exec: resource limits, then Landlock.

    Everything that can fail for a reason other than a kernel refusal (building the ruleset,
    resolving the syscalls) happens here in the parent; the child only makes the calls.
    """
    import resource

    # (limit, soft, hard). The CPU hard limit is a second later, so at the soft one the child gets
    # SIGXCPU (exit code -24) rather than SIGKILL; the hard one is the backstop.
    wanted = [(resource.RLIMIT_CPU, cpu_s, cpu_s + 1), (resource.RLIMIT_CORE, 0, 0)]
    if memory_mb is not None:
        wanted.append((resource.RLIMIT_AS, memory_mb * 1024 * 1024, memory_mb * 1024 * 1024))
    if file_mb is not None:
        wanted.append((resource.RLIMIT_FSIZE, file_mb * 1024 * 1024, file_mb * 1024 * 1024))
    libc = _libc() if ruleset is not None else None

    def apply_limits() -> None:
        for which, soft, hard in wanted:
            _, current = resource.getrlimit(which)
            if current != resource.RLIM_INFINITY:
                # An unprivileged process cannot raise its hard limit.
                soft, hard = min(soft, current), min(hard, current)
            resource.setrlimit(which, (soft, hard))
        if libc is not None:
            # Landlock needs no_new_privs (or CAP_SYS_ADMIN); it also stops setuid escalation.
            if libc.prctl(_PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
            if libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0) != 0:
                raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")

    return apply_limits


# --- Landlock: confine the child's writes to its temp dir -------------------------------------
# The three Landlock syscalls have the same numbers on every Linux architecture (generic table).
_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

_FS_WRITE_FILE = 1 << 1
_FS_REMOVE_DIR = 1 << 4
_FS_REMOVE_FILE = 1 << 5
_FS_MAKE_CHAR = 1 << 6
_FS_MAKE_DIR = 1 << 7
_FS_MAKE_REG = 1 << 8
_FS_MAKE_SOCK = 1 << 9
_FS_MAKE_FIFO = 1 << 10
_FS_MAKE_BLOCK = 1 << 11
_FS_MAKE_SYM = 1 << 12
_FS_REFER = 1 << 13  # ABI 2: link/rename across directories
_FS_TRUNCATE = 1 << 14  # ABI 3
_SCOPE_SIGNAL = 1 << 1  # ABI 6: no signals to processes outside the sandbox
_FS_WRITES_V1 = (
    _FS_WRITE_FILE
    | _FS_REMOVE_DIR
    | _FS_REMOVE_FILE
    | _FS_MAKE_CHAR
    | _FS_MAKE_DIR
    | _FS_MAKE_REG
    | _FS_MAKE_SOCK
    | _FS_MAKE_FIFO
    | _FS_MAKE_BLOCK
    | _FS_MAKE_SYM
)
_WRITABLE_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/tty")
"""Devices the code may still open for writing: discarding output is not writing a file."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


@functools.cache
def landlock_abi() -> int | None:
    """The kernel's Landlock ABI version, or ``None`` where Landlock is unavailable.

    ``None`` on non-Linux systems, kernels built without Landlock, kernels booted without it in
    ``lsm=``, and seccomp filters that block the syscall. Probed once per process.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = _libc()
    except OSError:
        return None
    abi = libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, 0, _LANDLOCK_CREATE_RULESET_VERSION)
    return int(abi) if abi > 0 else None


@functools.cache
def _warn_unconfined(reason: str) -> None:
    log.warning(
        "sandbox.writes_unconfined",
        reason=reason,
        detail="sandboxed code can write wherever this user can; only its cwd is fresh",
    )


def _write_ruleset(writable_dirs: list[str]) -> int | None:
    """A Landlock ruleset fd that allows writes only beneath ``writable_dirs`` (and to a few
    devices), or ``None`` (with a one-time warning) where Landlock is unavailable."""
    abi = landlock_abi()
    if abi is None:
        _warn_unconfined("Landlock is not available in this kernel")
        return None
    handled = _FS_WRITES_V1
    if abi >= 2:
        handled |= _FS_REFER
    if abi >= 3:
        handled |= _FS_TRUNCATE
    attr = _RulesetAttr(handled, 0, _SCOPE_SIGNAL if abi >= 6 else 0)
    # Older kernels reject a struct larger than theirs: send only the fields they know.
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else ctypes.sizeof(ctypes.c_uint64)
    libc = _libc()
    ruleset = libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), size, 0)
    if ruleset < 0:
        _warn_unconfined(f"landlock_create_ruleset failed: {os.strerror(ctypes.get_errno())}")
        return None
    file_rights = _FS_WRITE_FILE | (_FS_TRUNCATE if abi >= 3 else 0)
    try:
        for path in writable_dirs:
            _allow(libc, ruleset, path, handled if os.path.isdir(path) else file_rights)
        for device in _WRITABLE_DEVICES:
            if os.path.exists(device):
                _allow(libc, ruleset, device, file_rights)
    except BaseException:
        os.close(ruleset)
        raise
    return int(ruleset)


def _allow(libc: ctypes.CDLL, ruleset: int, path: str, access: int) -> None:
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        rule = _PathBeneathAttr(access, fd)
        if (
            libc.syscall(
                _SYS_LANDLOCK_ADD_RULE, ruleset, _LANDLOCK_RULE_PATH_BENEATH, ctypes.byref(rule), 0
            )
            != 0
        ):
            errno = ctypes.get_errno()
            raise OSError(errno, f"landlock_add_rule({path!r}) failed: {os.strerror(errno)}")
    finally:
        os.close(fd)


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
