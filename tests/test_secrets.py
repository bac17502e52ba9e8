"""API keys never reach a sink: every place that keeps or shows text masks them, with one function.

Each test puts a fake key in the environment (``ECOCASCADE_PROBE_API_KEY``) and/or a key-shaped
string (``sk-…``) in what a model, a provider or a program says, and reads the sink back.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import pytest
import structlog

from ecocascade import Cascade, ContainsJudge, Price, RetryPolicy, Tier
from ecocascade.cache.cache import ResponseCache
from ecocascade.cli import main
from ecocascade.cli.logs import configure_logging
from ecocascade.controller.result import Attempt
from ecocascade.exceptions import ProviderRejectedError
from ecocascade.judges.execution import ExecutionJudge
from ecocascade.models.tape import Tape
from ecocascade.testing import FakeLLMServer, Fault, Reply
from ecocascade.text import mask_secrets, mask_secrets_in
from ecocascade.types import Verdict

SHAPED = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0" * 2  # an OpenAI-shaped key from nowhere in env


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    value = "probe-" + uuid.uuid4().hex
    monkeypatch.setenv("ECOCASCADE_PROBE_API_KEY", value)
    return value


def _ladder(server: FakeLLMServer) -> list[Tier]:
    fast = RetryPolicy(max_retries=0)
    price = Price(input_per_mtok=1.0, output_per_mtok=2.0)
    return [
        Tier(f"openai/{name}", api_base=server.api_base, price=price, retry=fast, timeout_s=5)
        for name in ("small", "large")
    ]


def test_mask_secrets_in_masks_every_string_of_a_structure(key: str) -> None:
    """Nested dicts, lists and tuples: every string value is masked, keys and numbers kept."""
    data = {"a": [f"x {key} y", (SHAPED, 3)], "b": {"c": key}, "n": 1.5, "none": None}
    assert mask_secrets_in(data) == {
        "a": ["x <ECOCASCADE_PROBE_API_KEY> y", ("<REDACTED>", 3)],
        "b": {"c": "<ECOCASCADE_PROBE_API_KEY>"},
        "n": 1.5,
        "none": None,
    }


def test_the_store_masks_with_the_same_function() -> None:
    """The solution store uses the one masking function (no second copy to drift)."""
    from ecocascade.store import chroma

    assert chroma.mask_secrets is mask_secrets


async def test_the_cache_stores_neither_query_nor_answer_with_a_key(
    key: str, tmp_path: Path
) -> None:
    """A cached entry's query and answer are masked on disk; the exact lookup still hits."""
    path = tmp_path / "cache.sqlite3"
    cache = ResponseCache(str(path))
    query = f"Call the API with {key} please"
    try:
        await cache.store(
            query,
            namespace="default",
            fingerprint="f",
            answer=f"Done with {key} and {SHAPED}",
            model="m",
            tier=0,
        )
        hit, _ = await cache.lookup(query, namespace="default", fingerprint="f")
    finally:
        await cache.close()
    assert hit is not None
    assert key not in hit.answer and SHAPED not in hit.answer
    with sqlite3.connect(path) as db:
        dump = "\n".join(db.iterdump())
    assert key not in dump and SHAPED not in dump
    assert "<ECOCASCADE_PROBE_API_KEY>" in dump


async def test_a_provider_error_echoing_the_key_is_masked_on_the_attempt(
    key: str, server: FakeLLMServer
) -> None:
    """A 401 whose message quotes the key: the exception, the attempt, the result's dict and the
    log events all show the placeholder."""
    server.always("small", Fault.status(401, f"Incorrect API key provided: {key}"))
    server.always("large", Reply(f"Paris ({SHAPED})"))
    with structlog.testing.capture_logs() as logs:
        result = await Cascade(_ladder(server), ContainsJudge("Paris")).run("Capital?")
    small = result.attempts[0]
    assert small.error == "rejected"
    assert small.error_message is not None and "<ECOCASCADE_PROBE_API_KEY>" in small.error_message
    dumped = json.dumps(result.to_dict())
    assert key not in dumped and SHAPED not in dumped
    assert key not in repr(logs) and SHAPED not in repr(logs)


def test_provider_errors_mask_their_message(key: str) -> None:
    """Every ecocascade error masks its message when it is made."""
    error = ProviderRejectedError(f"bad key {key}", model="m", status_code=401)
    assert str(error) == "bad key <ECOCASCADE_PROBE_API_KEY>"


def test_attempts_and_verdicts_mask_reasons_and_error_messages(key: str) -> None:
    """A judge's reason and an attempt's error message are masked whoever built them."""
    verdict = Verdict(accepted=False, reason=f"output: {key}")
    attempt = Attempt(
        tier=0,
        model="m",
        verdict="error",
        reason=f"saw {SHAPED}",
        error="judge_error",
        error_message=f"boom {key}",
    )
    assert verdict.reason == "output: <ECOCASCADE_PROBE_API_KEY>"
    assert (attempt.reason, attempt.error_message) == (
        "saw <REDACTED>",
        "boom <ECOCASCADE_PROBE_API_KEY>",
    )


async def test_an_execution_judge_reason_never_carries_a_key(key: str) -> None:
    """Code that prints a key (it was in the answer) is judged; the reason shows a placeholder."""
    answer = f"```python\nprint('{key}', '{SHAPED}')\n```"
    verdict = await ExecutionJudge(timeout_s=10, expected_output="nope").judge("q", answer)
    assert key not in verdict.reason and SHAPED not in verdict.reason
    assert "<ECOCASCADE_PROBE_API_KEY>" in verdict.reason


async def test_a_tape_records_no_key(key: str, server: FakeLLMServer, tmp_path: Path) -> None:
    """Recorded answers and recorded provider errors are masked in the tape file."""
    server.always("small", Fault.status(401, f"Incorrect API key provided: {key}"))
    server.always("large", Reply(f"Paris {SHAPED}"))
    tape_path = tmp_path / "tape.jsonl"
    with Tape(tape_path, "record"):
        await Cascade(_ladder(server), ContainsJudge("Paris")).run("Capital?")
    text = tape_path.read_text()
    assert "<ECOCASCADE_PROBE_API_KEY>" in text and "<REDACTED>" in text
    assert key not in text and SHAPED not in text


def test_run_json_shows_no_key(
    key: str, server: FakeLLMServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ecocascade run --json`` prints the placeholder where a provider error or the answer
    held a key."""
    import yaml

    server.always("small", Fault.status(401, f"Incorrect API key provided: {key}"))
    server.always("large", Reply(f"Paris {SHAPED}"))
    tiers = [
        {"model": f"openai/{name}", "api_base": server.api_base, "retry": {"max_retries": 0}}
        for name in ("small", "large")
    ]
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"tiers": tiers, "judge": {"type": "contains", "text": "P"}}))
    with pytest.raises(SystemExit):
        main(["run", "--config", str(config), "--json", f"Capital? my key is {key}"])
    out, err = capsys.readouterr()
    assert json.loads(out)["success"] is True
    assert key not in out + err and SHAPED not in out + err


def test_cli_log_events_are_masked(key: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Whatever a log event carries — a value, an exception's text — is masked on stderr."""
    configure_logging("info", json=True)
    log = structlog.get_logger("probe")
    try:
        raise ValueError(f"failed with {key}")
    except ValueError as error:
        log.warning("probe.failed", detail=f"header Authorization: {SHAPED}", exc_info=error)
    err = capsys.readouterr().err
    assert "probe.failed" in err
    assert key not in err and SHAPED not in err
    assert "<ECOCASCADE_PROBE_API_KEY>" in err


async def test_eval_outputs_hold_no_key(key: str, server: FakeLLMServer, tmp_path: Path) -> None:
    """``tasks.jsonl``, ``results.json`` and the report of an eval show placeholders only."""
    from ecocascade.eval.runner import run_eval
    from ecocascade.eval.scenario import load_scenario

    server.always("small", Fault.status(401, f"Incorrect API key provided: {key}"))
    server.always("large", Reply(f"Paris {SHAPED}"))
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        f"""
name: secrets
tiers:
  - {{model: openai/small, api_base: "{server.api_base}", retry: {{max_retries: 0}}}}
  - {{model: openai/large, api_base: "{server.api_base}", retry: {{max_retries: 0}}}}
judge: {{type: contains, text: Paris}}
strategies: [hierarchy]
tasks:
  - {{id: t, query: "Capital of France?", check: {{contains: Paris}}}}
""",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    await run_eval(load_scenario(scenario), out_dir=out)
    for name in ("tasks.jsonl", "results.json", "report.html"):
        text = (out / name).read_text()
        assert key not in text and SHAPED not in text, name
    assert "<ECOCASCADE_PROBE_API_KEY>" in (out / "tasks.jsonl").read_text()
