"""The sandbox runs real Python in a real subprocess: no mocks, short timeouts."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from ecocascade import isolation, sandbox
from ecocascade.exceptions import ConfigError
from ecocascade.sandbox import landlock_abi, run_python
from ecocascade.text import extract_python_code, without_fenced_blocks

SPAWN_GRANDCHILD = """
import subprocess, sys, time, uuid
marker = uuid.uuid4().hex
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker])
print(marker, flush=True)
time.sleep(60)
"""


def _pids_running(marker: str) -> list[int]:
    """The pids of live processes whose command line holds ``marker``: pids printed inside a
    PID namespace (bwrap) mean nothing outside it, a marker in argv does."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return [pid for pid in found if _alive(pid)]


def _marker_gone_soon(marker: str, within_s: float = 2.0) -> bool:
    deadline = time.monotonic() + within_s
    while _pids_running(marker):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie waiting to be reaped counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


# --- extract_python_code ---------------------------------------------------------------------


def test_extracts_a_block_tagged_python() -> None:
    """A ```python block's code is returned without its fences."""
    assert extract_python_code("Here:\n```python\nprint(1)\n```\nDone.") == "print(1)\n"


def test_extracts_a_block_tagged_py() -> None:
    """The short ``py`` tag counts as Python."""
    assert extract_python_code("```py\nx = 2\n```") == "x = 2\n"


def test_the_last_python_block_wins() -> None:
    """When several Python blocks appear, the last one is the answer's final code."""
    text = "```python\nold()\n```\nbetter:\n```python3\nnew()\n```"
    assert extract_python_code(text) == "new()\n"


def test_falls_back_to_the_last_untagged_block() -> None:
    """Without a Python-tagged block, the last untagged block is taken."""
    assert extract_python_code("```\nfirst()\n```\n```\nsecond()\n```") == "second()\n"


def test_a_python_block_beats_a_later_untagged_block() -> None:
    """A tagged Python block is preferred over an untagged block that follows it."""
    assert extract_python_code("```python\ncode()\n```\n```\noutput\n```") == "code()\n"


def test_blocks_in_other_languages_are_not_python() -> None:
    """A ```bash or ```json block is never mistaken for Python."""
    assert extract_python_code('```bash\nrm -rf /\n```\n```json\n{"a": 1}\n```') is None


def test_text_without_a_block_has_no_code() -> None:
    """Prose without fences yields None."""
    assert extract_python_code("Just call print(1) and you are done.") is None


def test_tilde_fences_and_trailing_whitespace_are_tolerated() -> None:
    """``~~~`` fences and spaces after the fences and tag still delimit a block."""
    assert extract_python_code("~~~python  \nprint(3)\n~~~   \n") == "print(3)\n"


def test_an_indented_block_is_dedented() -> None:
    """A block nested in a list item comes back without the list's indentation."""
    text = "1. Run this:\n    ```python\n    if True:\n        print(4)\n    ```"
    assert extract_python_code(text) == "if True:\n    print(4)\n"


def test_without_fenced_blocks_removes_every_block_open_or_closed() -> None:
    """Closed blocks of any language go, fences included; an open block takes the rest; inline
    triple-backtick code is prose."""
    text = "A\n```bash\nls\n```\nB ```x``` C\n~~~\nraw\n~~~\nD\n```python\nprint(1)\nmore"
    assert without_fenced_blocks(text) == "A\nB ```x``` C\nD"


# --- run_python --------------------------------------------------------------------------------


async def test_clean_code_exits_0_with_its_output() -> None:
    """Code that finishes normally is ok, with its stdout captured."""
    result = await run_python("print('hello')", timeout_s=5)
    assert result.ok
    assert (result.exit_code, result.stdout, result.timed_out, result.truncated) == (
        0,
        "hello\n",
        False,
        False,
    )


async def test_an_uncaught_exception_exits_1_with_the_traceback() -> None:
    """An uncaught exception gives exit code 1 and the traceback on stderr."""
    result = await run_python("raise ValueError('boom')", timeout_s=5)
    assert not result.ok
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert result.stderr.rstrip().endswith("ValueError: boom")


async def test_stdin_is_fed_to_the_code() -> None:
    """Text passed as ``stdin`` is what the code reads from standard input."""
    result = await run_python("print(input().upper())", timeout_s=5, stdin="shout\n")
    assert result.stdout == "SHOUT\n"


async def test_a_timeout_kills_the_process_and_its_grandchildren() -> None:
    """On timeout the whole process group dies, including a grandchild the code spawned."""
    result = await run_python(SPAWN_GRANDCHILD, timeout_s=1)
    assert result.timed_out
    assert result.exit_code is None
    assert not result.ok
    assert result.duration_s < 3
    assert _marker_gone_soon(result.stdout.split()[0])


async def test_the_environment_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A variable outside the allowlist, such as an API key, is invisible to the code."""
    monkeypatch.setenv("ECOCASCADE_SECRET_TEST", "xyz")
    result = await run_python(
        "import os; print(os.environ.get('ECOCASCADE_SECRET_TEST'))", timeout_s=5
    )
    assert result.stdout == "None\n"


async def test_extra_env_reaches_the_code() -> None:
    """Variables given in ``extra_env`` are set in the child."""
    result = await run_python(
        "import os; print(os.environ['ANSWER'])", timeout_s=5, extra_env={"ANSWER": "42"}
    )
    assert result.stdout == "42\n"


async def test_cwd_is_a_fresh_temp_dir_that_is_removed_afterwards() -> None:
    """The code runs in a new directory holding only main.py, which is its HOME and is deleted."""
    # Printed reversed: the sandbox shows its own dir as "." in output (see the next test).
    code = (
        "import os; print(os.getcwd()[::-1]); print(os.environ['HOME'][::-1]);"
        " print(sorted(os.listdir()))"
    )
    first = await run_python(code, timeout_s=5)
    second = await run_python(code, timeout_s=5)
    cwd, home, listing = (line[::-1] for line in first.stdout.splitlines())
    assert home == cwd and os.path.isabs(cwd)
    assert listing[::-1] == "['main.py']"
    assert second.stdout.splitlines()[0][::-1] != cwd
    assert not await asyncio.to_thread(os.path.exists, cwd)


async def test_output_is_truncated_at_the_cap_without_deadlock() -> None:
    """5 MB of output is capped at max_output_bytes, drained, and the run still exits 0."""
    result = await run_python(
        "import sys; sys.stdout.write('x' * 5_000_000)", timeout_s=5, max_output_bytes=1000
    )
    assert result.ok
    assert result.truncated
    assert result.stdout == "x" * 1000


async def test_the_memory_limit_makes_a_huge_allocation_fail() -> None:
    """Under a 256 MB limit a 2 GB allocation raises MemoryError instead of hanging."""
    result = await run_python("b = bytearray(2 * 1024**3)", timeout_s=5, memory_mb=256)
    assert not result.timed_out
    assert result.exit_code not in (0, None)
    assert "MemoryError" in result.stderr


async def test_the_cpu_limit_ends_a_busy_loop_with_sigxcpu() -> None:
    """Past ``cpu_s`` the child gets SIGXCPU (exit code -24, as documented), not a SIGKILL."""
    result = await run_python("while True: pass", timeout_s=10, cpu_s=1)
    assert not result.timed_out
    assert result.exit_code == -24


async def test_the_file_size_limit_makes_a_big_write_fail() -> None:
    """Under ``max_file_mb=1`` a 1.5 MiB write fails with "File too large"; a smaller one works."""
    code = (
        "import os\n"
        "open('small.bin', 'wb').write(os.urandom(512 * 1024)); print('small ok')\n"
        "with open('big.bin', 'wb') as f: f.write(bytes(1536 * 1024))\n"
    )
    result = await run_python(code, timeout_s=10, max_file_mb=1)
    assert result.stdout == "small ok\n"
    assert result.exit_code not in (0, None)
    assert "File too large" in result.stderr


async def test_cancelling_the_caller_kills_the_process_group(tmp_path: Path) -> None:
    """Cancelling the task awaiting run_python kills the child and its grandchild."""
    pid_file = tmp_path / "pids"
    marker = uuid.uuid4().hex
    code = (
        "import os, subprocess, sys, time\n"
        "sleeper = [sys.executable, '-c', 'import time; time.sleep(60)']\n"
        f"child = subprocess.Popen([*sleeper, {marker!r}])\n"
        "with open(os.environ['PID_FILE'], 'w') as f: f.write(f'{os.getpid()} {child.pid}')\n"
        "time.sleep(60)\n"
    )
    task = asyncio.create_task(
        run_python(
            code,
            timeout_s=30,
            extra_env={"PID_FILE": str(pid_file)},
            writable_paths=[tmp_path],
        )
    )
    deadline = time.monotonic() + 5
    while not pid_file.exists() or len(pid_file.read_text().split()) < 2:
        assert time.monotonic() < deadline, "the sandboxed code never reported its pids"
        await asyncio.sleep(0.02)
    assert _pids_running(marker)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _marker_gone_soon(marker)


async def test_a_missing_interpreter_is_a_config_error() -> None:
    """A ``python`` path that does not exist is reported as the caller's mistake."""
    with pytest.raises(ConfigError, match="python"):
        await run_python("print(1)", python="/nonexistent/python3")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout_s": 0},
        {"timeout_s": float("nan")},
        {"memory_mb": 0},
        {"cpu_s": -1},
        {"max_file_mb": 0},
        {"max_output_bytes": -1},
        {"env_allowlist": "PATH"},
        {"python": ""},
    ],
)
async def test_invalid_arguments_are_config_errors(kwargs: dict[str, object]) -> None:
    """Nonsensical limits are rejected before anything runs."""
    with pytest.raises(ConfigError):
        await run_python("print(1)", **kwargs)  # type: ignore[arg-type]


def test_sandbox_runs_with_the_current_interpreter_by_default() -> None:
    """The default ``python`` is the interpreter running ecocascade."""
    assert inspect.signature(run_python).parameters["python"].default == sys.executable


async def test_a_grandchild_dies_when_the_code_exits_normally() -> None:
    """A grandchild left running by code that exited 0 is killed with the process group."""
    marker = uuid.uuid4().hex
    code = (
        "import subprocess, sys\n"
        "sleeper = [sys.executable, '-c', 'import time; time.sleep(60)']\n"
        f"child = subprocess.Popen([*sleeper, {marker!r}])\n"
        "print(child.pid, flush=True)\n"
    )
    result = await run_python(code, timeout_s=5)
    assert result.ok
    assert _marker_gone_soon(marker)


async def test_tmpdir_is_the_sandbox_dir() -> None:
    """``tempfile`` inside the code creates its files under the sandbox dir."""
    code = "import os, tempfile; print(tempfile.mkstemp()[1].startswith(os.getcwd()))"
    result = await run_python(code, timeout_s=5)
    assert result.stdout == "True\n"


# --- files ---------------------------------------------------------------------------------------


async def test_support_files_are_importable_next_to_the_code(tmp_path: Path) -> None:
    """Text, bytes and on-disk files land beside main.py; a module among them can be imported."""
    module = tmp_path / "weather_api.py"
    module.write_text("def forecast(city):\n    return f'sunny in {city}'\n")
    result = await run_python(
        "import weather_api, helpers.util as u\n"
        "print(weather_api.forecast('Rome'), u.X, open('data.bin', 'rb').read())",
        timeout_s=5,
        files={"weather_api.py": module, "helpers/util.py": "X = 7\n", "data.bin": b"\x01"},
    )
    assert result.stdout == "sunny in Rome 7 b'\\x01'\n", result.stderr


async def test_a_list_of_paths_is_copied_under_each_file_name(tmp_path: Path) -> None:
    """A list of paths copies each file into the sandbox dir under its own name."""
    (tmp_path / "tool.py").write_text("NAME = 'tool'\n")
    result = await run_python("import tool; print(tool.NAME)", files=[tmp_path / "tool.py"])
    assert result.stdout == "tool\n"


@pytest.mark.parametrize(
    "files",
    [
        {"main.py": "x = 1"},
        {"../escape.py": "x = 1"},
        {"/etc/evil.py": "x = 1"},
        {"": "x = 1"},
        {"ok.py": 3},
        {"missing.py": Path("/nonexistent/missing.py")},
        "tool.py",
    ],
)
async def test_unusable_files_are_config_errors(files: object) -> None:
    """A name that escapes the dir or shadows main.py, or a value with no content, is refused."""
    with pytest.raises(ConfigError, match="files"):
        await run_python("print(1)", files=files)  # type: ignore[arg-type]


# --- isolation: bwrap, and Landlock + rlimits as the fallback ----------------------------------


@pytest.fixture(params=["bwrap", "landlock"])
def kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Each escape test runs under bwrap and under the fallback (``PATH`` without bwrap)."""
    if request.param == "bwrap":
        if isolation.find_bwrap() is None:
            pytest.skip("bwrap is not installed or not usable here")
    else:
        if landlock_abi() is None:
            pytest.skip("this kernel has no Landlock")
        empty = tmp_path / "no-bwrap-here"
        empty.mkdir()
        monkeypatch.setenv("PATH", str(empty))
    return str(request.param)


WRITE_OUTSIDE = """
import os, subprocess, sys
for target in os.environ["TARGETS"].split(os.pathsep):
    try:
        open(os.path.join(target, "from_child.txt"), "w").write("x")
        print("child wrote")
    except OSError:
        print("child denied")
    grandchild = f"open({os.path.join(target, 'from_grandchild.txt')!r}, 'w')"
    code = subprocess.run([sys.executable, "-c", grandchild], stderr=subprocess.DEVNULL).returncode
    print("grandchild denied" if code else "grandchild wrote")
open("inside.txt", "w").write("fine")
open(os.devnull, "w").write("discarded")
print("inside ok")
"""


async def test_writes_outside_the_sandbox_dir_fail(kind: str, tmp_path: Path) -> None:
    """The code and its grandchildren cannot create files outside the temp dir — neither in a
    temp dir of the caller's nor next to the Python installation; inside they can."""
    beside_python = Path(tempfile.mkdtemp(prefix=".ecocascade-test-", dir=sys.prefix))
    try:
        targets = os.pathsep.join([str(tmp_path), str(beside_python)])
        result = await run_python(WRITE_OUTSIDE, timeout_s=10, extra_env={"TARGETS": targets})
        assert (result.isolation, result.writes_confined) == (kind, True)
        denied = ["child denied", "grandchild denied"]
        assert result.stdout.splitlines() == [*denied, *denied, "inside ok"], result.stderr
        for target in (tmp_path, beside_python):
            assert not list(target.glob("from_*.txt"))
    finally:
        shutil.rmtree(beside_python)


async def test_existing_files_outside_cannot_be_changed_or_deleted(
    kind: str, tmp_path: Path
) -> None:
    """Overwriting or deleting an existing file outside the sandbox fails, and so does
    truncate(2) where the isolation can confine it (bwrap; Landlock ABI >= 3)."""
    victim = tmp_path / "keep.txt"
    victim.write_text("precious")
    acts = ["open(path, 'a').write('x')", "os.remove(path)"]
    if kind == "bwrap" or (landlock_abi() or 0) >= 3:
        acts.append("os.truncate(path, 0)")
    code = (
        "import os\n"
        "path = os.environ['VICTIM']\n"
        f"for act in {acts!r}:\n"
        "    try:\n"
        "        exec(act)\n"
        "        print('done')\n"
        "    except OSError:\n"
        "        print('denied')\n"
    )
    result = await run_python(
        code, timeout_s=5, extra_env={"VICTIM": str(victim)}, writable_paths=[]
    )
    assert result.stdout.split() == ["denied"] * len(acts), result.stderr
    assert victim.read_text() == "precious"


async def test_writable_paths_open_a_directory_to_the_code(kind: str, tmp_path: Path) -> None:
    """A directory passed in ``writable_paths`` accepts the code's writes."""
    result = await run_python(
        "import os; open(os.path.join(os.environ['OUT'], 'r.txt'), 'w').write('ok')",
        timeout_s=5,
        extra_env={"OUT": str(tmp_path)},
        writable_paths=[tmp_path],
    )
    assert result.ok, result.stderr
    assert (tmp_path / "r.txt").read_text() == "ok"


SPY_ON_PARENTS = r"""
import os, pathlib, sys
secret = sys.stdin.read().encode()
leaks, readable = [], []
for path in [f"/proc/{os.getppid()}/environ", f"/proc/{os.environ['APP_PID']}/environ"]:
    try:
        data = pathlib.Path(path).read_bytes()
    except OSError as exc:
        continue
    readable.append(path)
    if secret in data:
        leaks.append(path)
for entry in pathlib.Path("/proc").glob("[0-9]*/environ"):
    try:
        if secret in entry.read_bytes():
            leaks.append(str(entry))
    except OSError:
        pass
print("leaks:", leaks)
"""

APP = r"""
import asyncio, json, os, sys
from ecocascade.sandbox import run_python
code = sys.stdin.read()
needle = os.environ["OPENAI_API_KEY"]  # given on stdin: the code's environment never has it
result = asyncio.run(run_python(code, timeout_s=10, stdin=needle,
                                extra_env={"APP_PID": str(os.getpid())}))
print(json.dumps({"stdout": result.stdout, "stderr": result.stderr,
                  "isolation": result.isolation}))
"""


def test_the_code_cannot_read_the_parents_environment(kind: str) -> None:
    """An app holding an API key in its environment runs code that reads
    ``/proc/<parent>/environ`` (and every other environ it can see): the key is nowhere.
    (Run in a fresh process: ``/proc/<pid>/environ`` shows a process's *initial* environment.)"""
    key = "sk-test-" + uuid.uuid4().hex
    env = {**os.environ, "OPENAI_API_KEY": key, "PYTHONPATH": os.getcwd()}
    app = subprocess.run(
        [sys.executable, "-c", APP],
        input=SPY_ON_PARENTS,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(app.stdout.splitlines()[-1])
    assert result["isolation"] == kind
    assert result["stdout"] == "leaks: []\n", result["stderr"]


FORK_BOMB = """
import os, time
started = 0
try:
    for _ in range(200):
        if os.fork() == 0:
            time.sleep(5)
            os._exit(0)
        started += 1
except OSError as exc:
    print("stopped", exc.errno)
print(started)
"""


async def test_a_fork_bomb_is_stopped_by_the_pids_limit(kind: str) -> None:
    """200 forks: the pids limit stops them well before 200, and nothing is left running."""
    result = await run_python(FORK_BOMB, timeout_s=20, max_processes=32)
    assert result.isolation == kind
    if not result.pids_limited:
        pytest.skip("no pids limit here: root without a usable pids cgroup")
    lines = result.stdout.split()
    assert lines[0] == "stopped", result.stderr
    assert int(lines[-1]) < 32


async def test_the_network_is_off_by_default(kind: str) -> None:
    """Code cannot connect to a port the test listens on (loopback), unless ``network=True``."""
    if kind == "landlock" and (landlock_abi() or 0) < 4:
        pytest.skip("TCP confinement needs Landlock ABI 4 (Linux 6.7)")
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.setblocking(False)
        port = server.getsockname()[1]
        code = (
            "import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=3).close()\n"
            "    print('connected')\n"
            "except OSError as exc:\n"
            "    print('refused', type(exc).__name__)\n"
        )
        blocked = await run_python(code, timeout_s=10)
        assert blocked.network_blocked and blocked.isolation == kind
        assert blocked.stdout.startswith("refused"), blocked.stderr
        with pytest.raises(BlockingIOError):
            server.accept()
        allowed = await run_python(code, timeout_s=10, network=True)
        assert allowed.stdout == "connected\n", allowed.stderr
        assert not allowed.network_blocked
        server.accept()[0].close()


async def test_bwrap_drops_every_capability() -> None:
    """Under bwrap the code has no capabilities: it cannot remount ``/`` read-write."""
    if isolation.find_bwrap() is None:
        pytest.skip("bwrap is not installed or not usable here")
    code = (
        "import pathlib\n"
        "status = pathlib.Path('/proc/self/status').read_text()\n"
        "print(status.split('CapEff:')[1].split()[0])\n"
    )
    result = await run_python(code, timeout_s=5)
    assert result.isolation == "bwrap"
    assert int(result.stdout, 16) == 0


async def test_the_fallback_runs_when_bwrap_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With no bwrap on ``PATH`` the code still runs, isolated by Landlock where the kernel has
    it, and the result says so."""
    monkeypatch.setenv("PATH", str(tmp_path))
    result = await run_python("print('ran')", timeout_s=5)
    assert result.stdout == "ran\n"
    expected = "landlock" if landlock_abi() is not None else "rlimits"
    assert (result.isolation, result.writes_confined) == (expected, expected == "landlock")


@pytest.mark.skipif(
    (landlock_abi() or 0) < 6, reason="signal scoping needs Landlock ABI 6 (Linux 6.12)"
)
async def test_the_code_cannot_signal_processes_outside_the_sandbox(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Under Landlock ABI >= 6 the code cannot send signals to its parent (the app)."""
    monkeypatch.setenv("PATH", str(tmp_path))
    code = (
        "import os\n"
        "try:\n    os.kill(os.getppid(), 0); print('allowed')\n"
        "except PermissionError:\n    print('denied')\n"
    )
    result = await run_python(code, timeout_s=5)
    assert result.isolation == "landlock"
    assert result.stdout == "denied\n"


async def test_confine_writes_false_leaves_writes_unconfined(kind: str, tmp_path: Path) -> None:
    """With ``confine_writes=False`` the code may write outside, and the result says so."""
    result = await run_python(
        "import os; open(os.path.join(os.environ['OUT'], 'w.txt'), 'w').write('x')",
        timeout_s=5,
        extra_env={"OUT": str(tmp_path)},
        confine_writes=False,
    )
    assert result.ok and not result.writes_confined, result.stderr
    assert (tmp_path / "w.txt").exists()


async def test_without_bwrap_or_landlock_the_run_warns_and_reports_unconfined(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Where neither bwrap nor Landlock is there the code still runs, with a logged warning,
    unconfined, and the result says ``rlimits``."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sandbox, "landlock_abi", lambda: None)
    sandbox._warn_unconfined.cache_clear()
    try:
        with capture_logs() as logs:
            result = await run_python("print('ran')", timeout_s=5)
            await run_python("print('ran')", timeout_s=5)
    finally:
        sandbox._warn_unconfined.cache_clear()
    assert result.stdout == "ran\n"
    assert (result.isolation, result.writes_confined, result.network_blocked) == (
        "rlimits",
        False,
        False,
    )
    warnings = [e for e in logs if e["event"] == "sandbox.writes_unconfined"]
    assert len(warnings) == 1  # once per process, not once per run
    assert warnings[0]["log_level"] == "warning"


async def test_the_temp_dir_never_shows_in_output_so_runs_are_reproducible() -> None:
    code = "import os\nprint(os.getcwd())\nraise ValueError('boom')\n"
    first = await run_python(code)
    second = await run_python(code)
    assert first.stdout == second.stdout == ".\n"
    assert 'File "./main.py", line 3' in first.stderr
    assert first.stderr == second.stderr


def test_an_interpreter_under_tmp_stays_visible_read_only_in_bwrap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A checkout (and so its .venv) under /tmp: bwrap's private /tmp would hide the child's
    python, so the interpreter's directories there are bound back read-only."""
    from ecocascade import isolation

    monkeypatch.setattr(sys, "prefix", "/tmp/clone/.venv")
    monkeypatch.setattr(sys, "exec_prefix", "/tmp/clone/.venv")
    monkeypatch.setattr(sys, "executable", "/tmp/clone/.venv/bin/python")
    argv = isolation.bwrap_argv(
        "bwrap", workdir="/tmp/run", writable=(), network=False, confine_writes=True
    )
    bound = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--ro-bind"]
    assert "/tmp/clone/.venv" in bound
    assert argv.index("--tmpfs") < argv.index("/tmp/clone/.venv")  # after the tmpfs, not under it
