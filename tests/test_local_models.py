"""Local GGUF tiers for real: llama.cpp servers in child processes, reached through LiteLLM.

Nothing here is mocked. Generation is kept to a few tokens; the runaway requests (no frequency
penalty, ``max_tokens`` 2000) exist only to keep a request in flight while a test breaks the
server under it. In-process servers use one thread, so the file's timings do not depend on what
else is running on a two-core machine.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from structlog.testing import capture_logs

from ecocascade import Cascade, ConfigError, ContainsJudge, Price, RetryPolicy, Tier, TierClient
from ecocascade.exceptions import LocalModelMissingError, LocalServerError
from ecocascade.models.local import ServerOptions, ensure_server, pull, resolve, shutdown
from ecocascade.models.local.server import (
    RUNTIME_PARAMS,
    LocalServer,
    completion_prompt,
    running_servers,
)
from ecocascade.testing import FakeLLMServer

SMOL = "local/smollm2-135m"
GEMMA = "local/gemma3-270m"
QUESTION = "What is the capital of France?"
# Greedy SmolLM2 answers this in 8 tokens: "The capital of France is Paris."
SHORT_QUESTION = "What is the capital of France? Answer in one word."
LONG_STORY = "Write a very long story about a dragon."
# Without its frequency penalty SmolLM2 writes until max_tokens: a request that stays in flight.
RUNAWAY = {"max_tokens": 2000, "frequency_penalty": 0}
NO_RETRY = RetryPolicy(max_retries=0)


def smol(**params: object) -> Tier:
    """A SmolLM2 tier on a one-thread server (no retries: a failure must show at once)."""
    return Tier(SMOL, params={"n_threads": 1, **params}, retry=NO_RETRY)


def big(server: FakeLLMServer) -> Tier:
    """The fallback tier: the scripted server, answering "Paris"."""
    server.script("big", "Paris")
    return Tier("openai/big", api_base=server.api_base, retry=NO_RETRY)


@pytest.fixture(scope="module", autouse=True)
def _models_pulled() -> None:
    """Both catalogue models on disk (instant when present; a fresh machine installs them)."""
    pull("smollm2-135m")
    pull("gemma3-270m")


@pytest.fixture(autouse=True)
def _no_server_outlives_a_test() -> Iterator[None]:
    shutdown()
    yield
    shutdown()


def port_of(local: LocalServer) -> int:
    port = urlsplit(local.api_base).port
    assert port is not None
    return port


def exited(pid: int) -> bool:
    """Whether ``pid`` has stopped running (a zombie not yet reaped by init counts as stopped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    if not Path("/proc/self").exists():  # no procfs: a live pid is all we can know
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:  # reaped between the two looks
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def port_free(port: int) -> bool:
    """Whether a new listener could bind ``port`` (TIME_WAIT leftovers do not count)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def slots(local: LocalServer) -> list[dict[str, Any]]:
    """llama.cpp's own view of its request slots (its ``/slots`` endpoint)."""
    url = local.api_base.removesuffix("/v1") + "/slots"
    with urllib.request.urlopen(url, timeout=2) as response:
        return list(json.load(response))


def generating(local: LocalServer) -> bool:
    """Whether the server is working on a request right now."""
    try:
        return any(slot.get("is_processing") for slot in slots(local))
    except OSError:
        return False


def wait_until(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


async def await_until(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(predicate):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


# --- the catalogue: unknown, missing and broken models ----------------------------------------


def test_an_unknown_local_model_points_at_the_models_list() -> None:
    with pytest.raises(LocalModelMissingError, match="ecocascade models list") as info:
        resolve("local/nope")
    assert (info.value.kind, info.value.model) == ("model_missing", "local/nope")


def test_a_catalogue_model_not_pulled_yet_names_the_pull_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECOCASCADE_HOME", str(tmp_path))  # gemma's assembled file lives here
    with pytest.raises(LocalModelMissingError, match="ecocascade models pull gemma3-270m"):
        resolve(GEMMA)


def test_a_gguf_path_that_does_not_exist_is_a_missing_model(tmp_path: Path) -> None:
    with pytest.raises(LocalModelMissingError, match=r"missing\.gguf"):
        resolve(f"local/{tmp_path}/missing.gguf")


def test_a_file_that_is_not_a_gguf_is_refused_before_a_server_starts(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_text("just some text\n")
    with pytest.raises(LocalServerError, match="not a GGUF") as info:
        resolve(f"local/{bad}")
    assert info.value.kind == "local_server"
    assert running_servers() == []


async def test_a_missing_local_model_is_an_error_attempt_and_the_next_tier_answers(
    server: FakeLLMServer,
) -> None:
    result = await Cascade([Tier("local/nope"), big(server)], ContainsJudge("Paris")).run(QUESTION)

    local, fallback = result.attempts
    assert (local.verdict, local.error, local.local) == ("error", "model_missing", True)
    assert (fallback.model, fallback.verdict) == ("openai/big", "accept")
    assert result.success and result.answer == "Paris"


# --- lifecycle: one lazy server per model per process ------------------------------------------


async def test_no_server_runs_until_the_first_local_query_starts_exactly_one() -> None:
    cascade = Cascade([smol(max_tokens=4)], ContainsJudge("Paris"))
    assert running_servers() == []

    result = await cascade.run(QUESTION)

    assert result.attempts[0].error is None and result.attempts[0].local
    assert len(running_servers()) == 1


async def test_later_queries_and_other_clients_of_the_same_model_share_its_server() -> None:
    first = Cascade([smol(max_tokens=4)], ContainsJudge("Paris"))
    await first.run(QUESTION)
    (local,) = running_servers()

    await first.run("And of Italy?")
    await Cascade([smol(max_tokens=2)], ContainsJudge("Rome")).run("Capital of Italy?")
    await TierClient(smol(max_tokens=2)).complete([{"role": "user", "content": "Hi"}])

    assert [s.pid for s in running_servers()] == [local.pid]


async def test_concurrent_first_queries_start_one_server_between_them() -> None:
    clients = [TierClient(smol(max_tokens=2)) for _ in range(3)]

    with capture_logs() as events:
        await asyncio.gather(*(c.complete([{"role": "user", "content": "Hi"}]) for c in clients))

    assert [e["event"] for e in events].count("local.server_started") == 1


async def test_shutdown_stops_the_server_process_and_frees_its_port() -> None:
    await TierClient(smol(max_tokens=2)).complete([{"role": "user", "content": "Hi"}])
    (local,) = running_servers()
    pid, port = local.pid, port_of(local)
    assert pid is not None and not port_free(port)

    shutdown()

    assert running_servers() == []
    assert wait_until(lambda: exited(pid), timeout_s=5)
    assert port_free(port)


# --- a server that cannot start ----------------------------------------------------------------


def test_a_corrupt_gguf_fails_to_start_with_the_end_of_the_server_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECOCASCADE_HOME", str(tmp_path / "home"))  # a fresh log for this start
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + bytes(range(256)) * 8)  # the magic, then nonsense

    with pytest.raises(LocalServerError) as info:
        ensure_server(f"local/{corrupt}", ServerOptions(threads=1))

    assert info.value.kind == "local_server"
    assert info.value.log_tail.strip()
    assert running_servers() == []


async def test_a_corrupt_gguf_tier_is_a_local_server_error_and_the_next_tier_answers(
    server: FakeLLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECOCASCADE_HOME", str(tmp_path / "home"))
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + bytes(range(256)) * 8)
    tiers = [Tier(f"local/{corrupt}", params={"n_threads": 1}), big(server)]

    result = await Cascade(tiers, ContainsJudge("Paris")).run(QUESTION)

    local, fallback = result.attempts
    assert (local.verdict, local.error, local.local) == ("error", "local_server", True)
    assert (fallback.model, fallback.verdict) == ("openai/big", "accept") and result.success


async def test_a_taken_port_is_a_local_server_error_and_the_cascade_escalates_promptly(
    server: FakeLLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECOCASCADE_HOME", str(tmp_path))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cascade = Cascade([smol(port=port, max_tokens=4), big(server)], ContainsJudge("Paris"))
        started = time.perf_counter()
        result = await cascade.run(QUESTION)

    assert time.perf_counter() - started < 30
    local, fallback = result.attempts
    assert (local.verdict, local.error) == ("error", "local_server")
    assert (fallback.model, fallback.verdict) == ("openai/big", "accept") and result.success
    assert running_servers() == []


# --- a server that breaks while answering ------------------------------------------------------


async def test_a_server_killed_mid_request_escalates_and_the_next_query_restarts_it(
    server: FakeLLMServer,
) -> None:
    server.always("big", "Paris")
    fallback = Tier("openai/big", api_base=server.api_base, retry=NO_RETRY)
    cascade = Cascade([smol(**RUNAWAY), fallback], ContainsJudge("Paris"))

    run = asyncio.create_task(cascade.run(LONG_STORY))
    assert await await_until(lambda: bool(running_servers()), timeout_s=30)
    (local,) = running_servers()
    assert await await_until(lambda: generating(local), timeout_s=15)
    killed = local.pid
    assert killed is not None
    os.kill(killed, signal.SIGKILL)
    result = await asyncio.wait_for(run, timeout=30)

    crashed, answered = result.attempts
    assert (crashed.verdict, crashed.error) == ("error", "unavailable")
    assert answered.model == "openai/big" and result.success

    with capture_logs() as events:
        again = await cascade.run(SHORT_QUESTION)

    assert again.model == SMOL and again.answer and "Paris" in again.answer
    (restarted,) = running_servers()
    assert restarted.pid != killed
    assert any(e["event"] == "local.server_died" and e["pid"] == killed for e in events)


async def test_a_local_request_past_its_timeout_escalates(server: FakeLLMServer) -> None:
    local = Tier(SMOL, params={"n_threads": 1, **RUNAWAY}, timeout_s=0.5, retry=NO_RETRY)
    cascade = Cascade([local, big(server)], ContainsJudge("Paris"))

    started = time.perf_counter()
    result = await cascade.run(LONG_STORY)

    assert time.perf_counter() - started < 15
    slow, answered = result.attempts
    assert (slow.verdict, slow.error) == ("error", "timeout")
    assert (answered.model, answered.verdict) == ("openai/big", "accept") and result.success


# --- the command line --------------------------------------------------------------------------


@pytest.mark.slow
def test_the_cli_runs_a_two_local_tier_ladder_for_free() -> None:
    argv = [
        sys.executable, "-m", "ecocascade", "run",
        "--tier", SMOL, "--tier", GEMMA, "--judge", "contains:Paris", QUESTION, "--json",
    ]  # fmt: skip
    # One server thread: with the default (every core) llama.cpp's spinning threads slow to a
    # crawl whenever anything else wants the CPU, and this test would time the machine, not us.
    env = {**os.environ, "ECOCASCADE_LOCAL_THREADS": "1"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, check=False)

    assert done.returncode in (0, 1), done.stderr  # 1: neither local model said Paris
    result = json.loads(done.stdout)
    assert result["attempts"]
    assert all(a["local"] and a["cost_usd"] == 0.0 for a in result["attempts"])
    assert result["cost_usd"] == 0.0
    assert result["success"] == (done.returncode == 0)
    if result["success"]:
        assert "Paris" in result["answer"]
    assert "Unclosed" not in done.stderr


# --- prompts, usage and price ------------------------------------------------------------------


def test_a_base_model_gets_a_question_answer_prompt() -> None:
    assert completion_prompt([{"role": "user", "content": "Q?"}]) == "Question: Q?\nAnswer:"


def test_a_system_message_goes_before_the_question_answer_prompt() -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q?"}]
    assert completion_prompt(messages) == "Be brief.\n\nQuestion: Q?\nAnswer:"


async def test_gemma_is_sent_a_completion_prompt_and_answers_with_counted_free_tokens(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="LiteLLM")  # LiteLLM logs each request body it sends
    client = TierClient(Tier(GEMMA, params={"max_tokens": 8, "n_threads": 1}))

    completion = await client.complete([{"role": "user", "content": QUESTION}])

    assert completion.text.strip()
    assert completion.usage.input_tokens > 0 and completion.usage.output_tokens > 0
    assert completion.cost_usd == 0.0
    sent = [r.getMessage() for r in caplog.records if "POST Request Sent" in r.getMessage()]
    assert len(sent) == 1
    assert repr(f"Question: {QUESTION}\nAnswer:") in sent[0] and "'messages'" not in sent[0]


async def test_a_price_set_on_a_local_tier_is_charged() -> None:
    tier = Tier(SMOL, params={"max_tokens": 4, "n_threads": 1}, price=Price(1.0, 1.0))

    completion = await TierClient(tier).complete([{"role": "user", "content": QUESTION}])

    tokens = completion.usage.input_tokens + completion.usage.output_tokens
    assert tokens > 0 and completion.cost_usd == pytest.approx(tokens / 1e6)


# --- processes: no orphans, no shared ports ----------------------------------------------------


def test_a_server_dies_with_the_process_that_started_it() -> None:
    code = textwrap.dedent(
        """
        import time
        from ecocascade.models.local import ensure_server, ServerOptions
        s = ensure_server("local/smollm2-135m", ServerOptions(threads=1))
        print(s.pid, flush=True)
        time.sleep(60)
        """
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert owner.stdout is not None
        # structlog's events share stdout; the pid is the line that is only digits
        pid = next((int(line) for line in owner.stdout if line.strip().isdigit()), None)
        assert pid is not None, "the owner exited before starting its server"
        assert not exited(pid)
    finally:
        owner.kill()
        owner.wait(10)
        if owner.stdout is not None:
            owner.stdout.close()

    assert wait_until(lambda: exited(pid), timeout_s=5)


@pytest.mark.slow
def test_two_processes_each_start_their_own_server_and_both_answer() -> None:
    code = textwrap.dedent(
        f"""
        import json
        from ecocascade import Cascade, ContainsJudge, Tier
        from ecocascade.models.local.server import running_servers
        tier = Tier({SMOL!r}, params={{"max_tokens": 4, "n_threads": 1}})
        result = Cascade([tier], ContainsJudge("Paris")).run_sync({QUESTION!r})
        (server,) = running_servers()
        print(json.dumps({{"verdict": result.attempts[0].verdict, "api_base": server.api_base}}))
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]

    assert [proc.returncode for proc in procs] == [0, 0], [err for _, err in outputs]
    reports = [
        json.loads(line) for out, _ in outputs for line in out.splitlines() if line.startswith("{")
    ]
    assert [r["verdict"] in ("accept", "reject") for r in reports] == [True, True]
    ports = {urlsplit(r["api_base"]).port for r in reports}
    assert len(ports) == 2


# --- runtime params ----------------------------------------------------------------------------


async def test_runtime_params_configure_the_server_and_stay_out_of_the_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="LiteLLM")
    params = {"n_threads": 1, "n_ctx": 512, "n_parallel": 1, "port": 0, "start_timeout_s": 60}
    client = TierClient(Tier(SMOL, params={"max_tokens": 2, **params}))

    await client.complete([{"role": "user", "content": "Hi"}])

    (local,) = running_servers()
    assert local.options == ServerOptions(threads=1, ctx=512, parallel=1, start_timeout_s=60)
    assert [slot["n_ctx"] for slot in slots(local)] == [512]
    sent = [r.getMessage() for r in caplog.records if "POST Request Sent" in r.getMessage()]
    assert len(sent) == 1 and "'max_tokens': 2" in sent[0]
    assert not [name for name in RUNTIME_PARAMS if repr(name) in sent[0]]


async def test_each_of_n_parallel_slots_keeps_the_whole_n_ctx() -> None:
    """llama.cpp splits its context across slots; the server is sized so none is shortchanged."""
    params = {"n_threads": 1, "n_ctx": 512, "n_parallel": 3, "max_tokens": 2}
    client = TierClient(Tier(SMOL, params=params))

    await client.complete([{"role": "user", "content": "Hi"}])

    (local,) = running_servers()
    assert [slot["n_ctx"] for slot in slots(local)] == [512, 512, 512]


def test_local_tiers_serve_several_requests_at_once_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ECOCASCADE_LOCAL_PARALLEL", raising=False)
    assert ServerOptions.from_params({}, where="x").parallel >= 2
    monkeypatch.setenv("ECOCASCADE_LOCAL_PARALLEL", "1")
    assert ServerOptions.from_params({}, where="x").parallel == 1
    monkeypatch.setenv("ECOCASCADE_LOCAL_PARALLEL", "none")
    with pytest.raises(ConfigError, match="ECOCASCADE_LOCAL_PARALLEL"):
        ServerOptions.from_params({}, where="x")


async def test_a_bad_runtime_param_raises_config_error_out_of_the_cascade() -> None:
    cascade = Cascade([smol(n_threads=-1, max_tokens=2)], ContainsJudge("Paris"))

    with pytest.raises(ConfigError, match="n_threads"):
        await cascade.run(QUESTION)
    assert running_servers() == []


@pytest.mark.parametrize(
    "params",
    [
        {"port": 70000},
        {"port": -1},
        {"n_threads": -1},
        {"n_threads": "many"},
        {"n_ctx": 8},
        {"n_parallel": 0},
        {"n_threads": 0},
    ],
)
def test_server_options_refuse_impossible_settings(params: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=r"^x: "):
        ServerOptions.from_params(params, where="x")


@pytest.mark.parametrize("value", ["abc", "0"])
def test_a_bad_thread_count_in_the_environment_is_blamed_on_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("ECOCASCADE_LOCAL_THREADS", value)
    with pytest.raises(ConfigError, match=r"^ECOCASCADE_LOCAL_THREADS: "):
        ServerOptions.from_params({}, where="x")


def test_completion_prompt_never_turns_an_answer_or_a_tool_result_into_a_question() -> None:
    prompt = completion_prompt(
        [
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Q?"},
            {"role": "assistant", "content": "A."},
            {"role": "tool", "content": "42"},
            {"role": "user", "content": "Next?"},
        ]
    )
    assert (
        prompt
        == "Answer: Hello.\n\nQuestion: Q?\nAnswer: A.\n\nTool: 42\n\nQuestion: Next?\nAnswer:"
    )
