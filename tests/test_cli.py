"""The ``ecocascade`` command, run in-process through ``main`` and once as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ecocascade.cli import main
from ecocascade.testing import FakeLLMServer, Fault, Reply


def invoke(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def write_config(tmp_path: Path, server: FakeLLMServer, **extra: object) -> Path:
    config = {
        "tiers": [
            {
                "model": "openai/small",
                "api_base": server.api_base,
                "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
                "retry": {"max_retries": 1, "base_delay_s": 0.01},
            },
            {
                "model": "openai/large",
                "api_base": server.api_base,
                "price": {"input_per_mtok": 10.0, "output_per_mtok": 30.0},
            },
        ],
        "judge": {"type": "contains", "text": "Paris"},
        **extra,
    }
    path = tmp_path / "cascade.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_run_json_reports_the_escalation_and_every_attempts_cost(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, server: FakeLLMServer
) -> None:
    server.script("small", Reply("Lyon", prompt_tokens=10, completion_tokens=1))
    server.script("large", Reply("Paris", prompt_tokens=10, completion_tokens=1))
    config = write_config(tmp_path, server)
    code, out, err = invoke(capsys, "run", "--config", str(config), "--json", "Capital?")

    assert code == 0, err
    data = json.loads(out)
    assert data["answer"] == "Paris" and data["success"] is True
    assert (data["tier"], data["model"]) == (1, "openai/large")
    assert data["cost_usd"] == pytest.approx((10 * 1 + 1 * 2 + 10 * 10 + 1 * 30) / 1e6)
    small, large = data["attempts"]
    assert {"model", "verdict", "cost_usd", "latency_s", "error"} <= small.keys()
    assert (small["model"], small["verdict"], small["error"]) == ("openai/small", "reject", None)
    assert small["cost_usd"] == pytest.approx(12 / 1e6)
    assert (large["verdict"], large["cost_usd"]) == ("accept", pytest.approx(130 / 1e6))
    assert all(a["latency_s"] >= 0 for a in data["attempts"])


def test_run_json_records_a_provider_error_as_an_error_attempt(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, server: FakeLLMServer
) -> None:
    server.always("small", Fault.server_error(500))
    server.script("large", "Paris")
    code, out, _ = invoke(
        capsys, "run", "-c", str(write_config(tmp_path, server)), "--json", "Capital?"
    )
    attempts = json.loads(out)["attempts"]
    assert code == 0
    assert (attempts[0]["verdict"], attempts[0]["error"]) == ("error", "unavailable")
    assert attempts[0]["retries"] == 1


def test_an_unresolved_query_exits_1_and_still_prints_every_attempt(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, server: FakeLLMServer
) -> None:
    server.script("small", "Lyon")
    server.script("large", "Marseille")
    code, out, _ = invoke(
        capsys, "run", "-c", str(write_config(tmp_path, server)), "--json", "Capital?"
    )
    data = json.loads(out)
    assert code == 1
    assert data["success"] is False and data["answer"] is None
    assert [a["answer"] for a in data["attempts"]] == ["Lyon", "Marseille"]


def test_tier_and_judge_flags_build_a_cascade_without_a_config_file(
    capsys: pytest.CaptureFixture[str], server: FakeLLMServer
) -> None:
    server.script("small", "no idea")
    server.script("large", "It is Paris.")
    code, out, _ = invoke(
        capsys,
        "run",
        "--tier", "openai/small",
        "--tier", "openai/large",
        "--api-base", server.api_base,
        "--judge", "contains:Paris",
        "--json",
        "Capital of France?",
    )  # fmt: skip
    data = json.loads(out)
    assert code == 0 and data["tier"] == 1
    # no price for these made-up models: unknown, not zero
    assert data["cost_usd"] is None and data["unpriced"] == ["openai/small", "openai/large"]


def test_without_a_judge_the_strongest_tier_judges(
    capsys: pytest.CaptureFixture[str], server: FakeLLMServer
) -> None:
    server.script("small", "Paris")
    server.script("large", "yes")  # the large tier, asked as the judge
    code, out, _ = invoke(
        capsys,
        "run",
        "-t", "openai/small",
        "-t", "openai/large",
        "--api-base", server.api_base,
        "--json",
        "Capital of France?",
    )  # fmt: skip
    data = json.loads(out)
    assert code == 0 and data["attempts"][0]["judge"] == "llm:openai/large"
    judge_prompt = server.requests_for("large")[0].messages[0]["content"]
    assert "Capital of France?" in judge_prompt and "Paris" in judge_prompt


def test_the_readable_summary_says_when_a_price_is_unknown(
    capsys: pytest.CaptureFixture[str], server: FakeLLMServer
) -> None:
    server.script("mystery", "Paris")
    code, out, _ = invoke(
        capsys,
        "run", "-t", "openai/mystery", "--api-base", server.api_base, "-j", "contains:Paris", "Q?",
    )  # fmt: skip
    assert code == 0
    assert "answered by tier 0" in out
    assert "price unknown for openai/mystery" in " ".join(out.split())


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("tiers: []\njudge: {type: contains, text: x}\n", "tiers: List should have at least 1"),
        (
            "tiers:\n  - model: m\n    price: {input_per_mtok: abc, output_per_mtok: 1}\n"
            "judge: {type: contains, text: x}\n",
            "tiers.0.price.input_per_mtok",
        ),
        ("tiers:\n  - model: m\n    api_bas: x\njudge: {type: human}\n", "unknown field"),
        ("tiers: [{model: m}]\njudge: {type: oracle}\n", "judge"),
        ("tiers: [{model: m}\n", "not valid YAML"),
    ],
    ids=["empty-tiers", "bad-price", "typo", "unknown-judge", "yaml-syntax"],
)
def test_a_bad_config_is_one_clear_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    code, out, err = invoke(capsys, "run", "--config", str(path), "Q?")
    assert code == 2 and out == ""
    assert err.startswith(f"error: {path}") and expected in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_a_missing_config_file_is_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = invoke(capsys, "run", "--config", str(tmp_path / "nope.yaml"), "Q?")
    assert code == 2 and "no such file" in err


def test_run_without_config_or_tiers_says_what_to_give(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = invoke(capsys, "run", "Q?")
    assert code == 2 and "--config FILE or at least one --tier" in err


def test_a_bad_judge_flag_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = invoke(capsys, "run", "-t", "openai/x", "-j", "oracle", "Q?")
    assert code == 2 and "--judge" in err and "contains:TEXT" in err


def test_the_human_judge_without_a_terminal_fails_before_any_model_is_called(
    capsys: pytest.CaptureFixture[str], server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", open(__file__))  # a file, not a TTY  # noqa: SIM115
    code, _, err = invoke(
        capsys, "run", "-t", "openai/small", "--api-base", server.api_base, "-j", "human", "Q?"
    )
    sys.stdin.close()
    assert code == 2 and "not a TTY" in err
    assert server.requests == []


def test_a_missing_api_key_variable_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ECOCASCADE_TEST_MISSING_KEY", raising=False)
    path = tmp_path / "c.yaml"
    path.write_text(
        "tiers: [{model: openai/gpt-4o, api_key_env: ECOCASCADE_TEST_MISSING_KEY}]\n"
        "judge: {type: contains, text: x}\n"
    )
    code, _, err = invoke(capsys, "run", "-c", str(path), "Q?")
    assert code == 2 and "ECOCASCADE_TEST_MISSING_KEY is not set" in err


def test_the_scripted_demo_tours_retries_and_escalation_offline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = invoke(capsys, "demo", "--scripted", "--json")
    results = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(results) == 4
    assert [r["tier"] for r in results] == [0, 1, 0, 1]
    assert results[2]["attempts"][0]["retries"] == 1
    assert results[3]["attempts"][0]["error"] == "unavailable"


def test_the_installed_entry_point_prints_json_on_stdout_and_logs_on_stderr(
    tmp_path: Path, server: FakeLLMServer
) -> None:
    server.script("small", "Paris")
    config = write_config(tmp_path, server)
    proc = subprocess.run(
        [sys.executable, "-m", "ecocascade", "run", "-c", str(config), "--json",
         "--log-level", "info", "--log-json", "Capital?"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["answer"] == "Paris"
    events = [json.loads(line)["event"] for line in proc.stderr.splitlines()]
    assert events == [
        "cache.miss",
        "demos.retrieved",
        "judge.verdict",
        "cascade.attempt",
        "solutions.recorded",
        "cache.stored",
        "cascade.resolved",
    ]
