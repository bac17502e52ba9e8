"""The toolworld scenario: its offline tool API, its generated task files and their gold checks."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ecocascade.eval.checks import Scorer
from ecocascade.eval.scenario import CodeSolverSpec, ScenarioTask, load_scenario
from ecocascade.sandbox import run_python

HERE = Path(__file__).resolve().parents[2] / "scenarios" / "toolworld"
TOOL = HERE / "toolworld.py"
DOMAINS = ("weather", "stocks", "places")
GENERATED = (*DOMAINS, "mixed", "reference")


def _load(name: str) -> ModuleType:
    """A fresh import of toolworld.py under its own module name."""
    spec = importlib.util.spec_from_file_location(name, TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tw(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("TOOLWORLD_API_KEY", "test")
    return _load("toolworld_under_test")


# Runs here and in another process (another hash seed): the two must agree.
SAMPLE = """
def sample(tw):
    return [
        tw.get_weather("Paris", "tomorrow"),
        tw.get_weather("sydney", "2024-07-01"),
        tw.get_forecast("Tokyo", 7),
        tw.get_stock_price("HOOL", "2025-03-11"),
        tw.get_price_history("VDLY", "2024-12-20", "2025-01-10"),
        tw.search_places("italian restaurant", "Seoul"),
        tw.place_details(tw.search_places("pharmacy", "Cairo")[0]["place_id"]),
    ]
"""


def _sample(module: ModuleType) -> Any:
    namespace: dict[str, Any] = {}
    exec(SAMPLE, namespace)
    return namespace["sample"](module)


def test_two_imports_and_another_process_see_the_same_world(tw: ModuleType) -> None:
    here = _sample(tw)
    assert here == _sample(_load("toolworld_again"))
    script = f"import sys, json\nsys.path.insert(0, {str(HERE)!r})\nimport toolworld\n{SAMPLE}\n"
    script += "print(json.dumps(sample(toolworld)))\n"
    env = {"TOOLWORLD_API_KEY": "other", "PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"}
    output = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(output) == json.loads(json.dumps(here))


def test_the_generator_is_sha256_and_nothing_else(tw: ModuleType) -> None:
    digest = hashlib.sha256(b"rating|Paris|0").digest()
    assert tw._unit("rating", "Paris", 0) == int.from_bytes(digest[:8], "big") / 2.0**64
    first_paris_place = tw.place_details("PAR-001")
    assert first_paris_place["rating"] == round(2.8 + 2.2 * tw._unit("rating", "Paris", 0), 1)


def test_price_history_agrees_with_daily_prices_and_skips_weekends(tw: ModuleType) -> None:
    history = tw.get_price_history("ACME", "2025-02-01", "2025-03-12")
    assert [row["date"] for row in history][-1] == "2025-03-11"  # today has not closed
    for row in history:
        assert dt.date.fromisoformat(row["date"]).weekday() < 5
        assert row == tw.get_stock_price("acme", row["date"])
        assert row["low"] <= min(row["open"], row["close"]) <= max(row["open"], row["close"])
        assert max(row["open"], row["close"]) <= row["high"]
    assert tw.get_stock_price("ACME", "yesterday") == history[-1]
    with pytest.raises(ValueError, match="Saturday"):
        tw.get_stock_price("ACME", "2025-03-08")
    with pytest.raises(ValueError, match="lookup_symbol"):
        tw.get_stock_price("Acme Robotics", "2025-03-11")
    assert tw.lookup_symbol("acme robotics") == "ACME"


def test_forecast_days_are_the_weather_of_the_coming_days(tw: ModuleType) -> None:
    forecast = tw.get_forecast("Berlin", 3)
    assert (
        forecast[0]
        == tw.get_weather("Berlin", "tomorrow")
        == tw.get_weather("berlin", "2025-03-13")
    )
    assert [day["date"] for day in forecast] == ["2025-03-13", "2025-03-14", "2025-03-15"]
    assert tw.get_weather("Berlin")["kind"] == "observed" and forecast[0]["kind"] == "forecast"
    with pytest.raises(ValueError, match="forecasts end"):
        tw.get_weather("Berlin", "2025-03-20")
    with pytest.raises(ValueError, match="unknown city"):
        tw.get_weather("Atlantis", "today")


def test_search_matches_every_word_and_sorts_best_first(tw: ModuleType) -> None:
    found = tw.search_places("restaurants", "London", min_rating=3.5)
    assert found and all(p["kind"] == "restaurant" and p["rating"] >= 3.5 for p in found)
    assert [p["rating"] for p in found] == sorted((p["rating"] for p in found), reverse=True)
    italian = tw.search_places("italian restaurant", "London")
    assert italian and {p["cuisine"] for p in italian} == {"italian"}
    assert tw.search_places("italian pharmacy", "London") == []


@pytest.mark.parametrize(
    ("call", "args"),
    [
        ("today", ()),
        ("get_weather", ("Paris", "today")),
        ("get_forecast", ("Paris",)),
        ("get_stock_price", ("ACME", "2025-03-11")),
        ("get_price_history", ("ACME", "2025-03-03", "2025-03-11")),
        ("search_places", ("cafe", "Paris")),
        ("place_details", ("PAR-001",)),
    ],
)
def test_every_call_needs_the_api_key(
    monkeypatch: pytest.MonkeyPatch, call: str, args: tuple[Any, ...]
) -> None:
    monkeypatch.delenv("TOOLWORLD_API_KEY", raising=False)
    module = _load("toolworld_without_key")
    with pytest.raises(module.MissingAPIKeyError, match="TOOLWORLD_API_KEY"):
        getattr(module, call)(*args)


@pytest.mark.parametrize("name", [*DOMAINS, "mixed"])
def test_every_scenario_file_loads_with_its_tasks(name: str) -> None:
    scenario = load_scenario(HERE / f"{name}.yaml")
    tasks = scenario.load_tasks()
    assert isinstance(scenario.solver, CodeSolverSpec)
    assert scenario.solver.secrets == ["TOOLWORLD_API_KEY"]
    assert scenario.resolve_path(scenario.solver.files[0]) == TOOL
    assert scenario.judge == load_scenario(HERE / "weather.yaml").judge
    if name == "mixed":
        assert len(tasks) == len(_all_tasks())
    else:
        assert 20 <= len(tasks) <= 30
    assert {t.group for t in tasks} <= set(DOMAINS)


@pytest.mark.parametrize(
    ("words", "exit_code", "output", "accepted"),
    [
        ("It will be 8.8 °C.", 0, "8.8\n", True),
        ("", 0, "{'temperature_c': 8.8}", True),
        ("Done.", 0, "", False),  # ran, printed nothing: cannot have answered
        ("Done.", 0, "  \n", False),
        ("It will be 8.8 °C.", 1, "Traceback ...\nKeyError: 'temp'", False),
        ("Output:\n```text\n8.8\n```", 0, "", False),  # the model's own words do not count
    ],
)
async def test_the_runtime_judge_wants_a_clean_run_that_printed_something(
    words: str, exit_code: int, output: str, accepted: bool
) -> None:
    from ecocascade.agents.code import CodeRun, render_answer

    judge = load_scenario(HERE / "weather.yaml").judge
    assert judge is not None
    run = CodeRun("import toolworld\n", exit_code, output, timed_out=False, duration_s=0.1)
    verdict = await judge.build().judge(
        "Temperature in Paris tomorrow?", render_answer(words, run, 10)
    )
    assert verdict.accepted is accepted, verdict.reason


def _all_tasks() -> dict[str, ScenarioTask]:
    tasks: dict[str, ScenarioTask] = {}
    for domain in DOMAINS:
        for task in load_scenario(HERE / f"{domain}.yaml").load_tasks():
            assert task.id not in tasks
            tasks[task.id] = task
    return tasks


def test_the_mixed_set_interleaves_all_three_sets() -> None:
    mixed = load_scenario(HERE / "mixed.yaml").load_tasks()
    assert {t.id: t for t in mixed} == _all_tasks()
    first_ten = {t.group for t in mixed[:10]}
    assert first_ten == set(DOMAINS)


def _reference() -> list[dict[str, str]]:
    lines = (HERE / "reference.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


async def test_reference_solutions_pass_their_checks_and_fail_their_siblings() -> None:
    """Each task's reference script, run in the sandbox beside toolworld.py, prints an answer
    its check accepts; the same template's other answers are rejected (checks discriminate)."""
    tasks, reference = _all_tasks(), _reference()
    assert sorted(r["id"] for r in reference) == sorted(tasks)
    limit = asyncio.Semaphore(4)

    async def run(code: str) -> str:
        async with limit:
            result = await run_python(
                code, files=[TOOL], extra_env={"TOOLWORLD_API_KEY": "demo"}, timeout_s=20
            )
        assert result.ok, result.stderr
        return result.stdout

    outputs = await asyncio.gather(*(run(r["code"]) for r in reference))
    by_id = {r["id"]: (r["template"], out) for r, out in zip(reference, outputs, strict=True)}
    for task_id, (template, output) in by_id.items():
        task = tasks[task_id]
        scorer = Scorer(task.check)
        assert await scorer(output), (task_id, output)
        for other_id, (other_template, other_output) in by_id.items():
            if other_template == template and tasks[other_id].check != task.check:
                assert not await scorer(other_output), (task_id, other_id, other_output)


async def test_without_the_key_the_sandboxed_code_fails_with_a_clear_error() -> None:
    result = await run_python("import toolworld\nprint(toolworld.today())\n", files=[TOOL])
    assert not result.ok
    assert "MissingAPIKeyError" in result.stderr and "TOOLWORLD_API_KEY" in result.stderr


def test_make_tasks_regenerates_identical_files(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(HERE / "make_tasks.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "999"},
    )
    for name in GENERATED:
        assert (tmp_path / f"{name}.jsonl").read_bytes() == (HERE / f"{name}.jsonl").read_bytes()
