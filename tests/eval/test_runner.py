"""The eval runner in-process: judges per task, --tier overrides, and the tape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ecocascade.config.schema import TierSpec
from ecocascade.eval.runner import run_eval
from ecocascade.eval.scenario import parse_scenario
from ecocascade.exceptions import ConfigError, ProviderRejectedError
from ecocascade.models.client import TierClient
from ecocascade.models.tape import Tape
from ecocascade.models.tier import Tier
from ecocascade.testing import FakeLLMServer, Fault, Reply


def scenario(server: FakeLLMServer, **extra: Any) -> Any:
    data = {
        "name": "runner",
        "tiers": [{"model": "openai/small", "api_base": server.api_base}],
        "judge": {"type": "regex", "pattern": r"^\d+$"},
        "groups": {"words": {"judge": {"type": "regex", "pattern": "^[a-z]+$"}}},
        "tasks": [
            {"id": "as-number", "query": "Say something.", "check": {"contains": "abc"}},
            {
                "id": "as-word",
                "group": "words",
                "query": "Say something.",
                "check": {"contains": "abc"},
            },
        ],
        **extra,
    }
    return parse_scenario(data)


async def test_tasks_sharing_a_query_keep_their_own_judges(
    tmp_path: Path, server: FakeLLMServer
) -> None:
    server.always("small", "abc")
    run = await run_eval(scenario(server), out_dir=tmp_path, strategies=["singles"])
    by_id = {o["task_id"]: o for o in run.outcomes["only:openai/small"]}
    assert by_id["as-number"]["attempts"][0]["verdict"] == "reject"  # not a number
    assert by_id["as-word"]["attempts"][0]["verdict"] == "accept"  # a lowercase word


async def test_a_tier_override_is_the_ladder_results_name(
    tmp_path: Path, server: FakeLLMServer
) -> None:
    server.always("other", "42")
    override = [TierSpec(model="openai/other", api_base=server.api_base)]
    run = await run_eval(
        scenario(server), out_dir=tmp_path, strategies=["singles", "hierarchy"], tiers=override
    )
    results = run.results()
    assert results["tiers"] == ["openai/other"]
    assert results["reference"] == "only:openai/other"
    assert [s["name"] for s in results["strategies"]] == ["only:openai/other", "hierarchy"]
    assert not server.requests_for("small")


async def test_duplicate_tier_labels_and_shadowing_names_are_rejected(
    server: FakeLLMServer, tmp_path: Path
) -> None:
    twice = {"model": "openai/small", "api_base": server.api_base}
    with pytest.raises(ConfigError, match="two tiers are called 'openai/small'"):
        scenario(server, tiers=[twice, twice])
    with pytest.raises(ConfigError, match="would shadow a built-in"):
        scenario(server, custom=[{"name": "hierarchy", "tiers": [0]}])
    ladder = [TierSpec(model="openai/x"), TierSpec(model="openai/x")]
    with pytest.raises(ConfigError, match="--tier"):
        await run_eval(scenario(server), out_dir=tmp_path, tiers=ladder)


async def test_the_tape_replays_errors_and_latency(tmp_path: Path, server: FakeLLMServer) -> None:
    server.script("small", Reply("one", prompt_tokens=3, completion_tokens=1))
    server.script("small", Fault.status(400, "no such thing"))
    client = TierClient(Tier("openai/small", api_base=server.api_base))
    first = [{"role": "user", "content": "first"}]
    second = [{"role": "user", "content": "second"}]
    with Tape(tmp_path / "tape.jsonl", "record"):
        recorded = await client.complete(first)
        with pytest.raises(ProviderRejectedError):
            await client.complete(second)
    calls = len(server.requests)

    with Tape(tmp_path / "tape.jsonl", "replay") as tape:
        replayed = await client.complete(first)
        with pytest.raises(ProviderRejectedError, match="no such thing"):
            await client.complete(second)
        with pytest.raises(ProviderRejectedError, match="not in the recording"):
            await client.complete([{"role": "user", "content": "never asked"}])
    assert len(server.requests) == calls
    assert (replayed.text, replayed.usage) == (recorded.text, recorded.usage)
    assert replayed.latency_s == pytest.approx(recorded.latency_s, abs=1e-3)
    assert tape.misses == 1


FAILING = "```python\nraise ValueError('not yet')\n```"
WORKING = "```python\nprint(6 * 7)\n```"


@pytest.mark.slow
async def test_a_code_writing_run_replays_exactly_even_after_a_traceback(
    tmp_path: Path, server: FakeLLMServer
) -> None:
    code_scenario = parse_scenario(
        {
            "name": "code",
            "tiers": [
                {"model": "openai/small", "api_base": server.api_base},
                {"model": "openai/large", "api_base": server.api_base},
            ],
            "solver": {"type": "code", "max_turns": 2},
            "judge": {"type": "code_run"},
            "tasks": [{"id": "t", "query": "What is 6 times 7?", "check": {"number": 42}}],
        }
    )
    # Tier 0's script raises; it sees the traceback, gives up; tier 1's script prints 42.
    server.script("small", FAILING, "Sorry, it failed. TERMINATE")
    server.script("large", WORKING, "The answer is 42. TERMINATE")

    def outcome(run: Any) -> list[Any]:
        (o,) = run.outcomes["hierarchy"]
        return [o["success"], o["tier"], [(a["verdict"], a["answer"]) for a in o["attempts"]]]

    tape = tmp_path / "tape.jsonl"
    with Tape(tape, "record"):
        recorded = await run_eval(code_scenario, out_dir=tmp_path / "a", strategies=["hierarchy"])
    assert outcome(recorded)[:2] == [True, 1]
    calls = len(server.requests)

    with Tape(tape, "replay") as replaying:
        replayed = await run_eval(code_scenario, out_dir=tmp_path / "b", strategies=["hierarchy"])
    assert replaying.misses == 0
    assert len(server.requests) == calls
    assert outcome(replayed) == outcome(recorded)
