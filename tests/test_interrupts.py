"""Ctrl-C and task cancellation always stop a run: never swallowed, however they are timed."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ecocascade import Cascade, ContainsJudge, Price, RetryPolicy, Tier
from ecocascade.testing import FakeLLMServer, Fault, Reply

FAST = RetryPolicy(max_retries=1, base_delay_s=0.001, max_delay_s=0.01)

# LiteLLM builds the provider's coroutine in a worker thread (run_in_executor) and awaits it
# afterwards: a cancel that lands in between leaves that coroutine never awaited (LiteLLM's doing).
UNAWAITED = "ignore:coroutine 'OpenAIChatCompletion.acompletion' was never awaited:RuntimeWarning"
UNAWAITED_REPORTED = (
    "ignore:Exception ignored in. <coroutine object OpenAIChatCompletion.acompletion"
    ":pytest.PytestUnraisableExceptionWarning"
)


def _ladder(server: FakeLLMServer) -> list[Tier]:
    price = Price(input_per_mtok=1.0, output_per_mtok=2.0)
    return [
        Tier(f"openai/{name}", api_base=server.api_base, price=price, retry=FAST, timeout_s=5)
        for name in ("small", "large")
    ]


@pytest.mark.filterwarnings(UNAWAITED)
@pytest.mark.filterwarnings(UNAWAITED_REPORTED)
async def test_a_cancel_at_any_moment_of_a_cascade_propagates(server: FakeLLMServer) -> None:
    """200 cascades, each cancelled after a random short delay (while a tier is called, while
    the judge runs, between tiers, as a reply arrives): every cancel reaches the caller as
    ``CancelledError``; none is turned into a normal result."""
    rng = random.Random(15)
    # small answers wrong after a 2 ms stall (escalate); large answers right.
    server.always("small", Fault.timeout(delay_s=0.002, then=Reply("Lyon")))
    server.always("large", Reply("Paris"))
    cascade = Cascade(_ladder(server), ContainsJudge("Paris"))
    # Cancel within the span of one whole run, measured here: on a fast or a loaded machine
    # alike, the cancels land at every stage of a run rather than mostly after it ended.
    await cascade.run("Capital of France?")
    started = time.perf_counter()
    await cascade.run("Capital of France?")
    span = time.perf_counter() - started
    cancelled = swallowed = finished_first = 0
    for _ in range(200):
        task = asyncio.create_task(cascade.run("Capital of France?"))
        await asyncio.sleep(rng.uniform(0, span))
        if task.done():
            finished_first += 1
            task.result()
            continue
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            cancelled += 1
        else:
            swallowed += 1
    assert swallowed == 0, f"{swallowed} of {cancelled + swallowed} cancels were swallowed"
    assert cancelled >= 100, (cancelled, finished_first)  # the delays mostly hit a running run


SCENARIO = """
name: interrupted
tiers:
  - model: openai/small
    api_base: "{api_base}"
    price: {{input_per_mtok: 1, output_per_mtok: 2}}
judge: {{type: contains, text: Paris}}
strategies: [singles]
tasks:
{tasks}
"""


@pytest.mark.slow
def test_ctrl_c_always_stops_ecocascade_eval(tmp_path: Path, server: FakeLLMServer) -> None:
    """``ecocascade eval`` sent SIGINT at a random moment of a run, 4 times: every time it stops
    within seconds with exit 130 and valid partial results (never runs on to exit 0)."""
    rng = random.Random(130)
    server.always("small", Fault.timeout(delay_s=0.01, then=Reply("Paris")))
    tasks = "\n".join(
        f"  - {{id: t{i}, query: 'Capital of France, take {i}?', check: {{contains: Paris}}}}"
        for i in range(300)
    )
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO.format(api_base=server.api_base, tasks=tasks), encoding="utf-8")
    for run in range(4):
        out = tmp_path / f"out{run}"
        argv = [sys.executable, "-m", "ecocascade", "eval", str(scenario), "--out", str(out)]
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not ((out / "tasks.jsonl").exists() and (out / "tasks.jsonl").read_text()):
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "the first task never finished"
                time.sleep(0.02)
            time.sleep(rng.uniform(0, 0.3))
            assert process.poll() is None, "the run ended before it could be interrupted"
            process.send_signal(signal.SIGINT)
            sent = time.monotonic()
            _, stderr = process.communicate(timeout=20)
            stopped_s = time.monotonic() - sent
        finally:
            process.kill()
            process.wait()
        assert process.returncode == 130, f"run {run}: exit {process.returncode}\n{stderr}"
        assert stopped_s < 10
        results = json.loads((out / "results.json").read_text())
        assert results["complete"] is False and results["interrupted"] is True
        (small,) = results["strategies"]
        assert 1 <= small["tasks"] < 300
