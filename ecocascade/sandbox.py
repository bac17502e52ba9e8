"""Run untrusted Python from a model's answer: a fresh temp dir, a scrubbed environment, limits,
and the strongest isolation this machine offers (``ExecutionResult.isolation`` says which ran).

Every run, whatever the isolation:

- the code runs in a fresh temporary directory (its cwd, ``HOME`` and ``TMPDIR``), removed
  afterwards; support ``files`` (a tool module, a data file) are copied into it first;
- the child sees only allow-listed environment variables (plus what the task passes), so API
  keys are not in its environment (reading the app's own, ``/proc/<parent>/environ``, is
  prevented by bwrap and Landlock, not by rlimits alone: see below);
- address space, CPU time, file size and core dumps are capped with ``setrlimit`` (at the CPU
  limit the child gets SIGXCPU, then SIGKILL a second later), and the number of processes with
  a pids cgroup where one can be made, else ``RLIMIT_NPROC`` (``ExecutionResult.pids_limited``;
  the kernel does not apply ``RLIMIT_NPROC`` to root, so root without a cgroup has no limit);
- the child runs in its own session; on timeout, on cancellation and after a normal exit the
  whole process group (and, with a cgroup or bubblewrap, every process it started) is killed;
- output is capped per stream and the rest is drained, so a chatty child never blocks on a pipe.

Isolation, best first (see :mod:`ecocascade.isolation`):

``"bwrap"``
    bubblewrap is installed and works here (unprivileged user namespaces): new user, PID, IPC,
    UTS, cgroup and network namespaces (no network unless the task allows it: ``network=True``),
    started with the child's environment only (so even bwrap's own ``/proc/1/environ``, the
    code's parent, holds no key; the app's processes are not visible), no capabilities, a
    read-only ``/``, a private ``/tmp`` and ``/dev/shm``, a ``/proc`` that shows only the
    sandbox's processes, writes only to the work dir and ``writable_paths``,
    ``--die-with-parent`` and ``--new-session``.
``"landlock"``
    no usable bwrap, but the kernel has Landlock (Linux >= 5.13; no privileges needed): the child
    may write file contents and create, rename and delete directory entries only under its temp
    dir (plus ``writable_paths``) and to ``/dev/null``-like devices; it cannot read anything under
    ``/proc`` (so not ``/proc/<parent>/environ``) nor list ``/``; with Landlock ABI >= 4 (Linux
    6.7) it cannot open or accept TCP connections unless ``network=True`` (UDP is not covered);
    with ABI >= 6 it cannot signal processes or reach abstract Unix sockets outside the sandbox.
    Landlock does not cover metadata (``chmod``, ``utime``, ``chown``, extended attributes of
    files this user owns), and below ABI 3 ``truncate(2)`` of an outside file is not confined.
``"rlimits"``
    neither: only the guarantees of the first list. Writes are **not** confined, the network
    is open, and the code can read ``/proc/<parent>/environ`` — the app's environment, API keys
    included; a warning (``sandbox.writes_unconfined``) is logged once and the result's
    ``writes_confined`` and ``network_blocked`` are ``False`` — nothing pretends otherwise.

POSIX only (``resource``, process groups); bwrap, cgroups and Landlock are Linux only.
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
from typing import Literal, TypeAlias

import structlog

from ecocascade import isolation
from ecocascade.exceptions import ConfigError

__all__ = [
    "ExecutionResult",
    "Isolation",
    "SandboxFiles",
    "check_limits",
    "landlock_abi",
    "normalise_files",
    "run_python",
]

log = structlog.get_logger(__name__)

Isolation: TypeAlias = Literal["bwrap", "landlock", "rlimits"]

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
    """Whether the run's writes were confined to its temp dir (bwrap or Landlock)."""
    isolation: Isolation = "rlimits"
    """What isolated the run: ``"bwrap"``, ``"landlock"`` or ``"rlimits"`` (module docstring)."""
    pids_limited: bool = False
    """Whether the number of processes the code could start was capped (``max_processes``)."""
    network_blocked: bool = False
    """Whether the code was kept off the network (bwrap, or Landlock ABI >= 4: TCP)."""

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
    network: bool = False,
    max_processes: int | None = 64,
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
    ``writable_paths``, where the machine allows it (``ExecutionResult.writes_confined``).
    ``network=False`` (the default) keeps the code off the network where the isolation allows
    it (``ExecutionResult.network_blocked``). ``max_processes`` caps the processes (threads
    included) the run may have at once, the code's own included (``None``: no cap).
    ``ExecutionResult.isolation`` says which isolation ran (see the module docstring).

    Raises :class:`ConfigError` for invalid arguments, unusable ``files`` or a ``python`` that
    cannot be started.
    """
    _validate(timeout_s, memory_mb, cpu_s, max_output_bytes, env_allowlist, python)
    if max_file_mb is not None and (not isinstance(max_file_mb, int) or max_file_mb <= 0):
        raise ConfigError(
            f"must be a positive number of MiB or None, got {max_file_mb!r}", where="max_file_mb"
        )
    if max_processes is not None and (not isinstance(max_processes, int) or max_processes < 2):
        raise ConfigError(
            f"must be an integer >= 2 (bwrap's init and the code) or None, got {max_processes!r}",
            where="max_processes",
        )
    if shutil.which(python) is None:  # checked here: under bwrap only bwrap itself would fail
        raise ConfigError(f"cannot start {python!r}: no such executable", where="python")
    support = normalise_files(files)
    extra_writable = _existing_paths(writable_paths)
    cpu_limit = cpu_s if cpu_s is not None else math.ceil(timeout_s) + 1
    bwrap = await _bwrap()
    with tempfile.TemporaryDirectory(prefix="ecocascade-sandbox-") as workdir:
        if support:
            await asyncio.to_thread(_write_files, workdir, support)
        # A few KB into a local temp dir: not worth a thread hop (nor is the rmtree on exit).
        with open(os.path.join(workdir, "main.py"), "w", encoding="utf-8") as script:  # noqa: ASYNC230
            script.write(code)
        env = {name: os.environ[name] for name in env_allowlist if name in os.environ}
        env |= {"HOME": workdir, "TMPDIR": workdir, "PYTHONDONTWRITEBYTECODE": "1"}
        env |= extra_env or {}
        # -I minus -P: as isolated, but the temp dir stays importable for ``files``.
        argv = [python, "-E", "-s", "-B", "main.py"]
        cgroup = _pids_cgroup(max_processes)
        nproc: int | None = None
        ruleset: int | None = None
        # The kernel does not apply RLIMIT_NPROC to root: there only a cgroup limits processes.
        nproc_wanted = (
            cgroup is None
            and max_processes is not None
            and os.getuid() != 0
            and sys.platform.startswith("linux")
        )
        if bwrap is not None:
            kind: Isolation = "bwrap"
            if nproc_wanted:
                assert max_processes is not None
                argv = _with_nproc_inside(argv, max_processes)  # counted in the new user namespace
            argv = [
                *isolation.bwrap_argv(
                    bwrap,
                    workdir=workdir,
                    writable=extra_writable,
                    network=network,
                    confine_writes=confine_writes,
                ),
                *argv,
            ]
        else:
            if nproc_wanted:
                assert max_processes is not None
                nproc = await asyncio.to_thread(_user_task_count) + max_processes
            ruleset = _ruleset([workdir, *extra_writable], confine_writes, network)
            kind = "rlimits" if ruleset is None else "landlock"
        pids_limited = cgroup is not None or nproc_wanted
        try:
            result = await _run(
                argv,
                cwd=workdir,
                env=env,
                preexec_fn=_limit_setter(memory_mb, cpu_limit, max_file_mb, nproc, ruleset, cgroup),
                timeout_s=timeout_s,
                max_output_bytes=max_output_bytes,
                stdin=stdin,
                signalled_via_bwrap=bwrap is not None,
            )
        finally:
            if ruleset is not None:
                os.close(ruleset)
            if cgroup is not None:
                cgroup.close()
    network_blocked = not network and (
        kind == "bwrap" or (kind == "landlock" and (landlock_abi() or 0) >= 4)
    )
    log.debug(
        "sandbox.ran",
        isolation=kind,
        exit_code=result.exit_code,
        timed_out=result.timed_out,
        duration_s=round(result.duration_s, 3),
        pids_limited=pids_limited,
        network_blocked=network_blocked,
    )
    # The temp dir's random name would make every traceback unique: show it as "." (the code's
    # working dir), so the same code gives the same output — and a recorded run replays.
    return dataclasses.replace(
        result,
        stdout=_relative_to(result.stdout, workdir),
        stderr=_relative_to(result.stderr, workdir),
        writes_confined=confine_writes and kind != "rlimits",
        isolation=kind,
        pids_limited=pids_limited,
        network_blocked=network_blocked,
    )


async def _bwrap() -> str | None:
    """A working bwrap, probed once per path (the probe starts a process: off the loop)."""
    found = shutil.which("bwrap")
    if found is None:
        return None
    return await asyncio.to_thread(isolation.find_bwrap)


def _pids_cgroup(limit: int | None) -> isolation.PidsCgroup | None:
    if limit is None:
        return None
    base = isolation.pids_cgroup_base()
    if base is None:
        return None
    try:
        return isolation.PidsCgroup(base, limit)
    except OSError as exc:
        log.warning("sandbox.cgroup_failed", base=base, error=str(exc))
        return None


_NPROC_BOOT = (
    "import os, resource, sys; resource.setrlimit(resource.RLIMIT_NPROC, ({n}, {n})); "
    "os.execv(sys.executable, {argv!r})"
)


def _with_nproc_inside(argv: list[str], limit: int) -> list[str]:
    """``argv`` behind a one-line bootstrap that sets ``RLIMIT_NPROC`` first: run inside bwrap's
    user namespace, the limit counts only the sandbox's processes, not all of this user's."""
    return [argv[0], "-E", "-s", "-B", "-c", _NPROC_BOOT.format(n=limit, argv=argv)]


def _user_task_count() -> int:
    """How many tasks (threads) this user runs now: ``RLIMIT_NPROC`` counts them all."""
    uid = os.getuid()
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(os.path.join(entry.path, "task")))
    return count


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
    signalled_via_bwrap: bool = False,
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
    exit_code = transport.get_returncode()
    if signalled_via_bwrap and exit_code is not None and exit_code > 128:
        # bwrap exits 128 + N when the code was killed by signal N: report it as a direct child.
        exit_code = 128 - exit_code
    return ExecutionResult(
        exit_code=None if timed_out else exit_code,
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
    memory_mb: int | None,
    cpu_s: int,
    file_mb: int | None,
    nproc: int | None,
    ruleset: int | None,
    cgroup: isolation.PidsCgroup | None,
) -> Callable[[], None]:
    """Build the function the child runs between fork and exec: join the pids cgroup, resource
    limits, then Landlock.

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
    if nproc is not None:
        wanted.append((resource.RLIMIT_NPROC, nproc, nproc))
    libc = _libc() if ruleset is not None else None

    def apply_limits() -> None:
        if cgroup is not None:
            cgroup.join()
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
_FS_READ_FILE = 1 << 2
_FS_READ_DIR = 1 << 3
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
_SCOPE_ABSTRACT_UNIX = 1 << 0  # ABI 6: no abstract Unix sockets outside the sandbox
_SCOPE_SIGNAL = 1 << 1  # ABI 6: no signals to processes outside the sandbox
_NET_BIND_TCP = 1 << 0  # ABI 4
_NET_CONNECT_TCP = 1 << 1  # ABI 4
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


def _ruleset(writable_dirs: list[str], confine_writes: bool, network: bool) -> int | None:
    """A Landlock ruleset fd: no reads under ``/proc``; with ``confine_writes`` writes only
    beneath ``writable_dirs`` (and to a few devices); without ``network`` no TCP (ABI >= 4).
    ``None`` (with a one-time warning) where Landlock is unavailable."""
    abi = landlock_abi()
    if abi is None:
        _warn_unconfined("Landlock is not available in this kernel")
        return None
    reads = _FS_READ_FILE | _FS_READ_DIR
    writes = _FS_WRITES_V1 | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0)
    handled = reads | (writes if confine_writes else 0)
    net = _NET_BIND_TCP | _NET_CONNECT_TCP if abi >= 4 and not network else 0
    attr = _RulesetAttr(handled, net, _SCOPE_SIGNAL | _SCOPE_ABSTRACT_UNIX if abi >= 6 else 0)
    # Older kernels reject a struct larger than theirs: send only the fields they know.
    size = ctypes.sizeof(ctypes.c_uint64) * (3 if abi >= 6 else 2 if abi >= 4 else 1)
    libc = _libc()
    ruleset = libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), size, 0)
    if ruleset < 0:
        _warn_unconfined(f"landlock_create_ruleset failed: {os.strerror(ctypes.get_errno())}")
        return None
    file_rights = _FS_READ_FILE | _FS_WRITE_FILE | (_FS_TRUNCATE if abi >= 3 else 0)
    try:
        # Reads are allowed beneath every top-level entry but /proc (other processes' environ,
        # cmdline, memory); the listing of / itself is the price of that (a rule on / covers all).
        for entry in os.scandir("/"):
            if entry.name != "proc":
                with contextlib.suppress(OSError):
                    _allow(libc, ruleset, entry.path, reads)
        if confine_writes:
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
