"""The isolation the sandbox (:mod:`ecocascade.sandbox`) can get from this machine, probed once.

Two kinds, used by :func:`ecocascade.sandbox.run_python`:

- **bubblewrap** (``bwrap`` on ``PATH``, from the distribution's ``bubblewrap`` package): the code
  runs in new user, PID, IPC, UTS, cgroup and (unless the task allows it) network namespaces,
  with every capability dropped, on a read-only view of ``/``, a private ``/tmp`` and
  ``/dev/shm``, a fresh ``/proc`` that shows only the sandbox's own processes, and one writable
  work dir. Usable where unprivileged user namespaces are allowed; probed once per ``bwrap``
  path (a failed probe is logged as ``sandbox.bwrap_unusable`` and never retried).
- **a pids cgroup** (cgroup v1 ``pids`` or v2 with the ``pids`` controller delegated to this
  process's cgroup): a child cgroup per run with ``pids.max`` caps the process count, and every
  process left in it is killed when the run ends. Where no cgroup can be made, the sandbox falls
  back to ``RLIMIT_NPROC`` (which the kernel does not enforce for root).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import structlog

__all__ = ["PidsCgroup", "bwrap_argv", "find_bwrap", "pids_cgroup_base"]

log = structlog.get_logger(__name__)

_PROBE_TIMEOUT_S = 10.0
_counter = itertools.count()


def find_bwrap() -> str | None:
    """The path of a working ``bwrap`` on ``PATH``, or ``None`` (not installed, or unusable here:
    e.g. unprivileged user namespaces are disabled)."""
    found = shutil.which("bwrap")
    if found is None:
        return None
    path = os.path.realpath(found)
    return path if _bwrap_works(path) else None


@functools.cache
def _bwrap_works(path: str) -> bool:
    argv = bwrap_argv(
        path, workdir=tempfile.gettempdir(), writable=(), network=False, confine_writes=True
    )
    try:
        probe = subprocess.run(
            [*argv, sys.executable, "-E", "-s", "-c", ""],
            env={},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("sandbox.bwrap_unusable", bwrap=path, error=str(exc))
        return False
    if probe.returncode != 0:
        error = probe.stderr.decode("utf-8", "replace").strip()[-300:]
        log.warning("sandbox.bwrap_unusable", bwrap=path, exit_code=probe.returncode, error=error)
        return False
    return True


def bwrap_argv(
    bwrap: str,
    *,
    workdir: str,
    writable: tuple[str, ...] | list[str],
    network: bool,
    confine_writes: bool,
) -> list[str]:
    """The ``bwrap`` command line (up to ``--``) for one run in ``workdir``."""
    argv = [
        bwrap,
        "--unshare-user",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        *([] if network else ["--unshare-net"]),
        "--die-with-parent",
        "--new-session",
        # Without this the code is root in its user namespace and may remount / read-write.
        "--cap-drop",
        "ALL",
    ]
    if confine_writes:
        argv += ["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"]
        argv += ["--tmpfs", "/tmp", "--tmpfs", "/dev/shm"]
        for path in _interpreter_dirs_under(("/tmp", "/dev/shm")):
            argv += ["--ro-bind", path, path]  # a venv under /tmp stays visible, read-only
        for path in (workdir, *writable):
            argv += ["--bind", path, path]
    else:
        argv += ["--bind", "/", "/", "--proc", "/proc", "--dev", "/dev"]
    return [*argv, "--chdir", workdir, "--"]


def _interpreter_dirs_under(private: tuple[str, ...]) -> list[str]:
    """This interpreter's own directories (venv, install, executable) that lie under a directory
    the sandbox replaces with an empty one: they are bound back read-only, or the child's
    ``python`` would not exist (a checkout, and so its ``.venv``, under ``/tmp``)."""
    candidates = {
        os.path.realpath(p)
        for p in (
            sys.prefix,
            sys.exec_prefix,
            sys.base_prefix,
            os.path.dirname(sys.executable),
            os.path.dirname(os.path.realpath(sys.executable)),
        )
    }
    inside = [
        p for p in candidates if any(p == d or p.startswith(d.rstrip("/") + "/") for d in private)
    ]
    # a directory already covered by a parent in the list is bound once, with its parent
    return sorted(p for p in inside if not any(p != q and p.startswith(q + "/") for q in inside))


# --- pids cgroup ---------------------------------------------------------------------------------


@functools.cache
def pids_cgroup_base() -> str | None:
    """The cgroup dir under which this process may create child cgroups with ``pids.max``, or
    ``None``. Probed once (a test cgroup is created and removed)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        own = Path("/proc/self/cgroup").read_text().splitlines()
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for base in _candidate_bases(own, mounts):
        probe = os.path.join(base, f"ecocascade-probe-{os.getpid()}-{next(_counter)}")
        try:
            os.mkdir(probe)
        except OSError:
            continue
        try:
            if os.path.exists(os.path.join(probe, "pids.max")):
                return base
        finally:
            with contextlib.suppress(OSError):
                os.rmdir(probe)
    return None


def _candidate_bases(own: list[str], mounts: list[str]) -> list[str]:
    v1_path = v2_path = None
    for line in own:
        _, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):
            v1_path = path
        elif controllers == "":
            v2_path = path
    bases = []
    for line in mounts:
        left, _, right = line.partition(" - ")
        mount_point = left.split()[4]
        fstype, _, options = [*right.split(), "", "", ""][:3]
        if fstype == "cgroup" and v1_path is not None and "pids" in options.split(","):
            bases.append(os.path.join(mount_point, v1_path.lstrip("/")))
        elif fstype == "cgroup2" and v2_path is not None:
            base = os.path.join(mount_point, v2_path.lstrip("/"))
            with contextlib.suppress(OSError):
                if "pids" in Path(base, "cgroup.subtree_control").read_text().split():
                    bases.append(base)
    return bases


class PidsCgroup:
    """One run's cgroup: at most ``limit`` processes (threads included). The child joins it
    between fork and exec (:meth:`join`); :meth:`close` kills what is left and removes it."""

    def __init__(self, base: str, limit: int) -> None:
        self.path = os.path.join(base, f"ecocascade-{os.getpid()}-{next(_counter)}")
        os.mkdir(self.path)
        try:
            Path(self.path, "pids.max").write_text(str(limit))
            # Opened here, written in the child: the child only makes one write(2).
            self._procs = os.open(
                os.path.join(self.path, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC
            )
        except BaseException:
            os.rmdir(self.path)
            raise

    def join(self) -> None:
        """Move the calling process into the cgroup (runs in the child before exec)."""
        os.write(self._procs, b"0")

    def close(self, grace_s: float = 1.0) -> None:
        os.close(self._procs)
        deadline = time.monotonic() + grace_s
        while True:
            try:
                pids = Path(self.path, "cgroup.procs").read_text().split()
            except OSError:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            try:
                os.rmdir(self.path)
                return
            except OSError:
                if time.monotonic() > deadline:
                    log.warning("sandbox.cgroup_left", path=self.path, processes=len(pids))
                    return
                time.sleep(0.01)
