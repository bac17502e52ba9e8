"""Replay tiers: recorded answers and costs served through the real LiteLLM path and Cascade."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from ecocascade.controller.cascade import Cascade
from ecocascade.controller.demos import DEFAULT_DEMO_TEMPLATE
from ecocascade.exceptions import ConfigError, ProviderRejectedError
from ecocascade.judges.check import ContainsJudge
from ecocascade.replay.data import (
    RecordedAnswer,
    RecordedDataset,
    RecordedItem,
    read_recorded,
    read_routerbench_csv,
    read_tasks_jsonl,
)
from ecocascade.replay.provider import registered, replay_tier, unregister_dataset
from ecocascade.types import Demonstration

from .conftest import synthetic_dataset, write_routerbench_csv

ARITHMETIC = RecordedDataset(
    "arithmetic",
    ("cheap", "strong"),
    (
        RecordedItem(
            "q1",
            "What is 2+2?",
            {
                "cheap": RecordedAnswer("5", False, 0.0007),
                "strong": RecordedAnswer("4", True, 0.012),
            },
        ),
        RecordedItem(
            "q2",
            "What is 3+3?",
            {"cheap": RecordedAnswer("6", True, 0.0005)},
        ),
    ),
)


@pytest.fixture
def arithmetic() -> Iterator[RecordedDataset]:
    with registered(ARITHMETIC) as ds:
        yield ds


async def test_cascade_over_replay_tiers_serves_recorded_answers_and_costs(
    arithmetic: RecordedDataset,
) -> None:
    cascade = Cascade([replay_tier("cheap"), replay_tier("strong")], ContainsJudge("4"))
    result = await cascade.run("What is 2+2?", use_cache=False)
    assert [(a.model, a.answer, a.verdict) for a in result.attempts] == [
        ("replay/cheap", "5", "reject"),
        ("replay/strong", "4", "accept"),
    ]
    assert [a.cost_usd for a in result.attempts] == [0.0007, 0.012]
    assert result.cost_usd == pytest.approx(0.0127)


async def test_the_query_is_found_after_demonstrations_in_the_message(
    arithmetic: RecordedDataset,
) -> None:
    demo = Demonstration("d1", "What is 1+1?", "2", similarity=0.9)
    content = DEFAULT_DEMO_TEMPLATE.render("What is 3+3?", [demo])
    assert content != "What is 3+3?" and content.endswith("What is 3+3?")
    from ecocascade.models.client import TierClient

    completion = await TierClient(replay_tier("cheap")).complete(
        [{"role": "user", "content": content}]
    )
    assert (completion.text, completion.cost_usd) == ("6", 0.0005)


async def test_a_model_without_a_recorded_answer_is_an_error_attempt_and_we_escalate(
    arithmetic: RecordedDataset,
) -> None:
    cascade = Cascade([replay_tier("strong"), replay_tier("cheap")], ContainsJudge("6"))
    with capture_logs() as logs:
        result = await cascade.run("What is 3+3?", use_cache=False)
    assert [a.verdict for a in result.attempts] == ["error", "accept"]
    assert result.attempts[0].error == "rejected"
    assert result.cost_usd == pytest.approx(0.0005)
    assert any(e["event"] == "cascade.escalated" for e in logs)


async def test_a_missing_answer_fails_naming_the_item_and_never_serves_another_sources(
    arithmetic: RecordedDataset,
) -> None:
    from ecocascade.models.client import TierClient

    # another source has the same query with an answer of "strong"; the one asked first has not
    other = RecordedDataset(
        "other",
        ("strong",),
        (RecordedItem("o1", "What is 3+3?", {"strong": RecordedAnswer("7", False, 1.0)}),),
    )
    with registered(other):
        unregister_dataset(ARITHMETIC)  # re-register so ARITHMETIC is asked first
        with (
            registered(ARITHMETIC),
            pytest.raises(
                ProviderRejectedError,
                match="item q2 of arithmetic has no recorded answer of strong",
            ),
        ):
            await TierClient(replay_tier("strong")).complete(
                [{"role": "user", "content": "What is 3+3?"}]
            )


async def test_items_sharing_a_query_are_served_only_when_their_answers_agree() -> None:
    from ecocascade.models.client import TierClient

    same = RecordedAnswer("B", True, 1e-3)
    twins = RecordedDataset(
        "twins",
        ("m", "n"),
        (
            RecordedItem(
                "a", "Pick one: A or B?", {"m": same, "n": RecordedAnswer("A", False, 1e-3)}
            ),
            RecordedItem(
                "b", "Pick one: A or B?", {"m": same, "n": RecordedAnswer("B", True, 1e-3)}
            ),
        ),
    )
    with capture_logs() as logs, registered(twins):
        ask = [{"role": "user", "content": "Pick one: A or B?"}]
        assert (await TierClient(replay_tier("m")).complete(ask)).text == "B"
        with pytest.raises(ProviderRejectedError, match="items a, b of twins share this query"):
            await TierClient(replay_tier("n")).complete(ask)
    [event] = [e for e in logs if e["event"] == "replay.duplicate_queries"]
    assert event["items"] == [["a", "b"]]


async def test_a_registered_dataset_is_served_only_inside_its_block() -> None:
    from ecocascade.models.client import TierClient

    ask = [{"role": "user", "content": "What is 2+2?"}]
    with registered(ARITHMETIC):
        assert (await TierClient(replay_tier("strong")).complete(ask)).text == "4"
    with pytest.raises(ProviderRejectedError, match="no recorded item has this query"):
        await TierClient(replay_tier("strong")).complete(ask)


async def test_a_tier_reads_its_recorded_file_from_api_base(tmp_path: Path) -> None:
    data = write_routerbench_csv(synthetic_dataset(8), tmp_path / "bench.csv")
    item = read_routerbench_csv(data).items[3]
    cascade = Cascade([replay_tier("small", data)], ContainsJudge(item.answers["small"].text))
    result = await cascade.run(item.query, use_cache=False)
    assert result.success
    assert result.attempts[0].answer == item.answers["small"].text
    assert result.cost_usd == pytest.approx(item.answers["small"].cost_usd)


def test_routerbench_csv_reader_parses_list_literals_scores_costs_and_missing_cells(
    tmp_path: Path,
) -> None:
    source = synthetic_dataset(6)
    path = write_routerbench_csv(source, tmp_path / "x.csv")
    text = path.read_text().splitlines()
    # blank the first data row's score for "small": an unknown correctness
    header = text[0].split(",")
    cells = text[1].split(",")
    cells[header.index("small")] = ""
    path.write_text("\n".join([text[0], ",".join(cells), *text[2:]]) + "\n")
    ds = read_recorded(path)
    assert ds.models == ("small", "medium", "large") and len(ds) == 6
    assert ds.items[0].query == source.items[0].query
    assert ds.items[0].answers["small"].correct is None
    assert ds.items[1].answers["large"] == source.items[1].answers["large"]
    assert ds.correct.shape == (6, 3) and ds.cost[2, 2] == pytest.approx(1e-2)


def test_routerbench_rows_reusing_a_sample_id_for_another_prompt_are_kept_and_reported(
    tmp_path: Path,
) -> None:
    source = synthetic_dataset(4)
    items = list(source.items)
    items[2] = RecordedItem("s0", items[2].query, items[2].answers)  # another question, same id
    items.append(items[1])  # the very same row twice
    path = write_routerbench_csv(
        RecordedDataset("dups", source.models, tuple(items)), tmp_path / "d.csv"
    )
    with capture_logs() as logs:
        ds = read_routerbench_csv(path)
    assert [it.id for it in ds.items] == ["s0", "s1", "s0#2", "s3"]
    assert [it.query for it in ds.items] == [it.query for it in source.items]
    assert ds.items[2].answers == source.items[2].answers
    [event] = [e for e in logs if e["event"] == "replay.duplicate_sample_ids"]
    assert event["renamed"] == ["s0#2"] and event["skipped_repeated_rows"] == 1


def test_tasks_jsonl_reader_learns_from_attempts_with_known_correctness(tmp_path: Path) -> None:
    def attempt(model: str, answer: str, correct: bool | None, cost: float | None) -> dict:
        return {
            "tier": 0,
            "model": model,
            "verdict": "accept",
            "answer": answer,
            "correct": correct,
            "cost_usd": cost,
            "input_tokens": 10,
            "output_tokens": 2,
            "latency_s": 0.1,
        }

    records = [
        {
            "strategy": "cascade",
            "position": 0,
            "task_id": "t1",
            "query": "2+2?",
            "success": True,
            "accepted": True,
            "stop_reason": "accepted",
            "answer": "4",
            "tier": 1,
            "model": "b",
            "cache_hit": False,
            "demonstrations": 0,
            "cost_usd": 0.3,
            "latency_s": 1.0,
            "attempts": [attempt("a", "5", False, 0.1), attempt("b", "4", True, 0.2)],
        },
        {
            "strategy": "big-only",
            "position": 0,
            "task_id": "t1",
            "query": "2+2?",
            "success": True,
            "accepted": True,
            "stop_reason": "accepted",
            "answer": "4",
            "tier": 0,
            "model": "b",
            "cache_hit": False,
            "demonstrations": 0,
            "cost_usd": 0.2,
            "latency_s": 1.0,
            "attempts": [attempt("b", "four", True, 0.25)],
        },
        {
            "strategy": "cascade",
            "position": 1,
            "task_id": "t2",
            "query": "3+3?",
            "success": False,
            "accepted": False,
            "stop_reason": "exhausted",
            "answer": None,
            "tier": None,
            "model": None,
            "cache_hit": False,
            "demonstrations": 0,
            "cost_usd": None,
            "latency_s": 1.0,
            "attempts": [attempt("a", "7", None, None)],
        },
    ]
    path = tmp_path / "run" / "tasks.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    ds = read_tasks_jsonl(path)
    assert ds.name == "run" and ds.models == ("a", "b")
    assert [it.id for it in ds.items] == ["t1"]  # t2 has nothing with a known outcome
    assert ds.items[0].answers["a"] == RecordedAnswer("5", False, 0.1, 10, 2)
    assert ds.items[0].answers["b"].text == "4"  # the first record of a model wins


def test_unreadable_recorded_files_are_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    with pytest.raises(ConfigError):
        read_recorded(bad)
    csv_file = tmp_path / "x.csv"
    csv_file.write_text("a,b\n1,2\n")
    with pytest.raises(ConfigError, match="RouterBench"):
        read_recorded(csv_file)
    jsonl = tmp_path / "tasks.jsonl"
    jsonl.write_text("{not json\n")
    with pytest.raises(ConfigError, match=r"tasks\.jsonl"):
        read_recorded(jsonl)


def test_a_config_naming_a_missing_recorded_file_fails_at_build_naming_the_tier(
    tmp_path: Path,
) -> None:
    from ecocascade.config.loader import parse_config

    config = parse_config(
        {
            "tiers": [{"model": "replay/small", "api_base": str(tmp_path / "gone.csv")}],
            "judge": {
                "type": "any",
                "judges": [{"type": "agreement", "references": [{"model": "replay/medium"}]}],
            },
        }
    )
    with pytest.raises(ConfigError, match="no such file") as raised:
        config.build()
    assert raised.value.where == "tier replay/small: api_base"
