"""Bad files and flags: one clear error up front (CLI: one line, exit 2), never a traceback, and
never a caller's mistake retried as if the provider were down."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecocascade import Cascade, ContainsJudge, Tier
from ecocascade.cli import main
from ecocascade.eval.runner import run_eval
from ecocascade.eval.scenario import parse_scenario
from ecocascade.exceptions import ConfigError
from ecocascade.models.client import TierClient
from ecocascade.testing import FakeLLMServer


def invoke(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def assert_one_line_usage_error(code: int, err: str, *expected: str) -> None:
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for text in expected:
        assert text in err, err


# -- --api-base ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "api_base",
    ["localhost:8000/v1", "http://", "htp://127.0.0.1:8000", "http://127.0.0.1:99999/v1",
     "http://127.0.0.1:80x/v1", "http://local host/v1", "", "http://[::1/v1"],
)  # fmt: skip
def test_a_malformed_api_base_is_a_config_error(api_base: str) -> None:
    with pytest.raises(ConfigError, match="api_base"):
        Tier("openai/small", api_base=api_base)


@pytest.mark.parametrize(
    "api_base", ["http://127.0.0.1:8000/v1", "https://api.example.com", "http://[::1]:8080/v1"]
)
def test_a_well_formed_api_base_is_accepted(api_base: str) -> None:
    assert Tier("openai/small", api_base=api_base).api_base == api_base


def test_a_replay_tiers_api_base_names_recorded_files_not_a_url() -> None:
    files = "/data/routerbench.csv:/runs/x/tasks.jsonl"
    assert Tier("replay/gpt-4", api_base=files).api_base == files


def test_a_malformed_api_base_flag_is_exit_2_before_any_call(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = invoke(capsys, "run", "-t", "openai/small", "--api-base", "localhost:1/v1", "Q?")
    assert_one_line_usage_error(code, err, "api_base", "localhost:1/v1")


# -- invalid Unicode ---------------------------------------------------------------------------

LONE_SURROGATE = "What is caf\udce9?"  # what Python makes of invalid UTF-8 bytes in argv


async def test_a_query_with_a_lone_surrogate_is_a_config_error_and_calls_nothing(
    server: FakeLLMServer,
) -> None:
    server.always("small", "Paris")
    cascade = Cascade([Tier("openai/small", api_base=server.api_base)], judge=ContainsJudge("P"))
    with pytest.raises(ConfigError, match="not valid Unicode"):
        await cascade.run(LONE_SURROGATE)
    assert server.requests == []


async def test_a_message_with_a_lone_surrogate_is_not_retried_as_an_outage(
    server: FakeLLMServer,
) -> None:
    server.always("small", "Paris")
    client = TierClient(Tier("openai/small", api_base=server.api_base))
    with pytest.raises(ConfigError, match="not valid Unicode"):
        await client.complete([{"role": "user", "content": LONE_SURROGATE}])
    assert server.requests == []


def test_the_cli_refuses_an_invalid_unicode_query_with_exit_2(
    capsys: pytest.CaptureFixture[str], server: FakeLLMServer
) -> None:
    code, _, err = invoke(
        capsys, "run", "-t", "openai/small", "--api-base", server.api_base, "--no-store",
        "-j", "contains:x", LONE_SURROGATE,
    )  # fmt: skip
    assert_one_line_usage_error(code, err, "not valid Unicode")
    assert server.requests == []


# -- files that are not what the flag expects --------------------------------------------------


def test_eval_out_pointing_at_a_file_is_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, server: FakeLLMServer
) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        f"name: s\ntiers: [{{model: openai/small, api_base: '{server.api_base}'}}]\n"
        "judge: {type: contains, text: x}\ntasks: [{id: a, query: 'Q?', check: {contains: x}}]\n"
    )
    taken = tmp_path / "results.txt"
    taken.write_text("mine\n")
    code, _, err = invoke(capsys, "eval", str(scenario), "--out", str(taken))
    assert_one_line_usage_error(code, err, str(taken), "not a directory")
    assert taken.read_text() == "mine\n" and server.requests == []


def test_solutions_import_of_a_non_utf8_file_is_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "export.jsonl"
    bad.write_bytes(b'{"query": "caf\xe9"}\n')  # Latin-1, not UTF-8
    code, _, err = invoke(capsys, "solutions", "import", str(bad))
    assert_one_line_usage_error(code, err, str(bad), "UTF-8")


def test_solutions_export_to_a_directory_is_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = invoke(capsys, "solutions", "export", str(tmp_path))
    assert_one_line_usage_error(code, err, str(tmp_path), "directory")


# -- a ground-truth check that raises ------------------------------------------------------------


async def test_a_check_that_raises_scores_wrong_and_keeps_the_error(
    tmp_path: Path, server: FakeLLMServer
) -> None:
    server.always("small", "42")
    check = "def check(answer):\n    return 1 / (len(answer) - 2) > 0\n"  # '42' → ZeroDivisionError
    spec = parse_scenario(
        {
            "name": "raising-check",
            "tiers": [{"model": "openai/small", "api_base": server.api_base}],
            "judge": {"type": "regex", "pattern": r"^\d+$"},
            "tasks": [{"id": "t", "query": "A number?", "check": {"python": check}}],
        }
    )
    run = await run_eval(spec, out_dir=tmp_path, strategies=["singles"])
    (outcome,) = run.outcomes["only:openai/small"]
    assert outcome["success"] is False
    assert "ZeroDivisionError: division by zero" in outcome["check_error"]
    assert outcome["attempts"][0]["correct"] is False
    assert "ZeroDivisionError" in outcome["attempts"][0]["check_error"]
    (record,) = [json.loads(line) for line in (tmp_path / "tasks.jsonl").read_text().splitlines()]
    assert "ZeroDivisionError" in record["check_error"]
