"""`ecocascade eval` end to end: real LiteLLM against the fake server, metrics checked by hand."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ecocascade.testing import FakeLLMServer, Fault, Reply

# Every call: 10 prompt tokens, 2 completion tokens. Small: $1/$2 per Mtok → $1.4e-5 a call;
# large: $10/$20 → $1.4e-4 a call.
SMALL_CALL, LARGE_CALL = 1.4e-5, 1.4e-4

SMALL = {
    "What is the capital of France?": "Paris",  # right, judge accepts
    "What is the capital of Spain?": "Lisbon",  # wrong, judge accepts: a false accept
    "What is 2 + 2?": "four, I think",  # wrong format: judge rejects → escalate
}
LARGE = {
    "What is the capital of France?": "Paris",
    "What is the capital of Spain?": "Madrid",
    "What is 2 + 2?": "4",
}

SCENARIO = """
name: hand-checked
tiers:
  - model: openai/small
    api_base: "{api_base}"
    price: {{input_per_mtok: 1, output_per_mtok: 2}}
  - model: openai/large
    api_base: "{api_base}"
    price: {{input_per_mtok: 10, output_per_mtok: 20}}
judge: {{type: regex, pattern: '^\\w+$'}}
cache: {{semantic: false}}
strategies: [singles, hierarchy, hierarchy+demos+cache]
tasks:
  - {{id: fr, query: "What is the capital of France?", check: {{contains: Paris}}}}
  - {{id: es, query: "What is the capital of Spain?", check: {{contains: Madrid}}}}
  - {{id: sum, query: "What is 2 + 2?", check: {{number: 4}}}}
  - {{id: fr-again, query: "What is the capital of France?", check: {{contains: Paris}}}}
"""


def answer_from(table: dict[str, str]) -> Any:
    def reply(body: dict[str, Any]) -> Reply:
        prompt = body["messages"][-1]["content"]
        for question, text in table.items():
            if prompt.endswith(question):  # demonstrations come before the query
                return Reply(text, prompt_tokens=10, completion_tokens=2)
        raise AssertionError(f"unexpected prompt {prompt!r}")

    return reply


def scenario_file(tmp_path: Path, server: FakeLLMServer) -> Path:
    path = tmp_path / "hand.yaml"
    path.write_text(SCENARIO.format(api_base=server.api_base), encoding="utf-8")
    return path


def run_cli(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ecocascade", "eval", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )


def by_name(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in results["strategies"]}


@pytest.mark.slow
def test_a_small_scenario_end_to_end_with_hand_checked_metrics(
    tmp_path: Path, server: FakeLLMServer
) -> None:
    server.always("small", answer_from(SMALL))
    server.always("large", answer_from(LARGE))
    out = tmp_path / "out"
    done = run_cli(scenario_file(tmp_path, server), "--out", out)
    assert done.returncode == 0, done.stderr

    results = json.loads((out / "results.json").read_text())
    assert results["scenario"] == "hand-checked" and results["complete"] is True
    assert results["reference"] == "only:openai/large"
    s = by_name(results)
    assert list(s) == [
        "only:openai/small",
        "only:openai/large",
        "hierarchy",
        "hierarchy+demos+cache",
    ]

    small = s["only:openai/small"]
    assert small["tasks"] == 4
    assert small["success_rate"] == 0.5  # Paris twice; Lisbon and "four, I think" are wrong
    assert small["judge_accuracy"] == 0.75  # the only disagreement: Lisbon accepted
    assert small["false_accepts"] == 1 and small["false_rejects"] == 0
    assert small["total_cost_usd"] == pytest.approx(4 * SMALL_CALL)
    assert small["resolved_per_tier"] == {"openai/small": 3, "cache": 0, "unresolved": 1}

    large = s["only:openai/large"]
    assert large["success_rate"] == 1.0 and large["judge_accuracy"] == 1.0
    assert large["total_cost_usd"] == pytest.approx(4 * LARGE_CALL)

    hierarchy = s["hierarchy"]
    assert hierarchy["success_rate"] == 0.75  # 2 + 2 escalates and is solved; Spain is not
    assert hierarchy["escalation_rate"] == 0.25
    assert hierarchy["total_cost_usd"] == pytest.approx(4 * SMALL_CALL + LARGE_CALL)
    assert hierarchy["resolved_per_tier"] == {
        "openai/small": 3,
        "openai/large": 1,
        "cache": 0,
        "unresolved": 0,
    }
    assert hierarchy["cost_per_success_usd"] == pytest.approx((4 * SMALL_CALL + LARGE_CALL) / 3)
    assert hierarchy["cost_vs_reference"] == pytest.approx(
        (4 * SMALL_CALL + LARGE_CALL) / (4 * LARGE_CALL)
    )
    assert hierarchy["success_vs_reference"] == pytest.approx(-0.25)
    assert hierarchy["cache_hit_rate"] is None and hierarchy["demo_hit_rate"] is None  # off

    full = s["hierarchy+demos+cache"]
    assert full["cache_hit_rate"] == 0.25  # the repeated question
    assert full["success_rate"] == 0.75
    assert full["total_cost_usd"] == pytest.approx(3 * SMALL_CALL + LARGE_CALL)
    # Spain's question finds France's verified answer; 2 + 2 finds nothing similar enough;
    # the repeat is answered by the cache before any retrieval.
    assert full["demo_hit_rate"] == 0.25
    assert full["success_after_demo"] == 0.0

    lines = [json.loads(x) for x in (out / "tasks.jsonl").read_text().splitlines()]
    assert len(lines) == 16
    escalated = next(o for o in lines if o["strategy"] == "hierarchy" and o["task_id"] == "sum")
    assert [(a["model"], a["verdict"], a["correct"]) for a in escalated["attempts"]] == [
        ("openai/small", "reject", False),
        ("openai/large", "accept", True),
    ]
    # The demonstration is a prior exchange in the cheap model's prompt, before the query.
    (spain,) = [
        r.body["messages"]
        for r in server.requests_for("small")
        if len(r.body["messages"]) > 2 and r.body["messages"][-1]["content"].endswith("Spain?")
    ]
    assert [m["role"] for m in spain] == ["user", "assistant", "user"]
    assert spain[0]["content"] == "What is the capital of France?"
    assert spain[1]["content"] == "Paris"

    html = (out / "report.html").read_text()
    assert html.count("<svg") == 4
    assert "hierarchy+demos+cache" in html and "<script" not in html
    assert "report.html" in done.stdout and "hierarchy" in done.stdout


@pytest.mark.slow
def test_record_then_replay_gives_the_same_outcomes_without_calling_models(
    tmp_path: Path, server: FakeLLMServer
) -> None:
    server.always("small", answer_from(SMALL))
    server.always("large", answer_from(LARGE))
    scenario = scenario_file(tmp_path, server)
    tape = tmp_path / "tape.jsonl"
    first = run_cli(
        scenario, "-s", "hierarchy,only:openai/small", "--out", tmp_path / "a", "--record", tape
    )
    assert first.returncode == 0, first.stderr
    calls = len(server.requests)
    assert calls == 9  # hierarchy: 4 small + 1 large; small alone: 4

    server.always("small", Fault.server_error())  # replay must never reach the server
    server.always("large", Fault.server_error())
    second = run_cli(
        scenario, "-s", "hierarchy,only:openai/small", "--out", tmp_path / "b", "--replay", tape
    )
    assert second.returncode == 0, second.stderr
    assert len(server.requests) == calls

    def outcomes(run: str) -> list[tuple[Any, ...]]:
        rows = [json.loads(x) for x in (tmp_path / run / "tasks.jsonl").read_text().splitlines()]
        return [
            (
                o["strategy"],
                o["task_id"],
                o["answer"],
                o["success"],
                o["cost_usd"],
                [(a["model"], a["verdict"]) for a in o["attempts"]],
            )
            for o in rows
        ]

    assert outcomes("a") == outcomes("b")
    a = json.loads((tmp_path / "a" / "results.json").read_text())
    b = json.loads((tmp_path / "b" / "results.json").read_text())
    keys = ("success_rate", "judge_accuracy", "total_cost_usd", "resolved_per_tier")
    assert [[s[k] for k in keys] for s in a["strategies"]] == [
        [s[k] for k in keys] for s in b["strategies"]
    ]
    assert b["replay_misses"] == 0


def test_replaying_a_missing_recording_is_a_clear_error(
    tmp_path: Path, server: FakeLLMServer
) -> None:
    done = run_cli(scenario_file(tmp_path, server), "--replay", tmp_path / "nope.jsonl")
    assert done.returncode == 2
    assert "no such recording" in done.stderr


@pytest.mark.slow
def test_ctrl_c_leaves_valid_partial_results(tmp_path: Path, server: FakeLLMServer) -> None:
    server.script("small", Reply("Paris", prompt_tokens=10, completion_tokens=2))
    server.always("small", Fault.timeout(delay_s=60))  # the second task hangs
    out = tmp_path / "out"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ecocascade",
            "eval",
            str(scenario_file(tmp_path, server)),
            "-s",
            "only:openai/small",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        tasks = out / "tasks.jsonl"
        while not (tasks.exists() and tasks.read_text().count("\n") >= 1):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the first task never finished"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "partial results" in stderr
    results = json.loads((out / "results.json").read_text())
    assert results["complete"] is False and results["interrupted"] is True
    (small,) = results["strategies"]
    assert small["tasks"] == 1 and small["success_rate"] == 1.0
    assert "did not finish" in (out / "report.html").read_text()


def test_concurrent_tasks_give_the_same_metrics_in_task_order(
    tmp_path: Path, server: FakeLLMServer
) -> None:
    server.always("small", answer_from(SMALL))
    server.always("large", answer_from(LARGE))
    out = tmp_path / "out"
    done = run_cli(
        scenario_file(tmp_path, server), "-s", "hierarchy", "--concurrency", "4", "--out", out
    )
    assert done.returncode == 0, done.stderr
    (hierarchy,) = json.loads((out / "results.json").read_text())["strategies"]
    assert hierarchy["success_rate"] == 0.75
    assert hierarchy["total_cost_usd"] == pytest.approx(4 * SMALL_CALL + LARGE_CALL)
    assert len(server.requests_for("small")) == 4
    rows = [json.loads(x) for x in (out / "tasks.jsonl").read_text().splitlines()]
    finished = {o["task_id"]: (o["answer"], o["tier"]) for o in rows}
    assert finished == {
        "fr": ("Paris", 0),
        "es": ("Lisbon", 0),
        "sum": ("4", 1),
        "fr-again": ("Paris", 0),
    }


def test_bad_flags_are_usage_errors(tmp_path: Path, server: FakeLLMServer) -> None:
    scenario = scenario_file(tmp_path, server)
    for args, message in (
        (("-s", "fastest"), "unknown strategy 'fastest'"),
        (("--concurrency", "0"), "--concurrency: must be >= 1"),
        (("--record", tmp_path / "a", "--replay", tmp_path / "b"), "not both"),
    ):
        done = run_cli(scenario, *args, "--out", tmp_path / "out")
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr
