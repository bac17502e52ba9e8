"""Scenario files: validation with clear errors, and ground-truth checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecocascade.eval.checks import Scorer, extract_numbers, result_text
from ecocascade.eval.runner import resolve_strategies
from ecocascade.eval.scenario import load_scenario, parse_scenario
from ecocascade.exceptions import ConfigError

REPO = Path(__file__).resolve().parents[2]

MINIMAL = """
name: mini
tiers:
  - {model: openai/small, api_base: "http://127.0.0.1:9/v1"}
  - {model: openai/large, api_base: "http://127.0.0.1:9/v1"}
judge: {type: regex, pattern: '\\w'}
tasks:
  - {id: a, query: "What is 2 + 2?", check: {number: 4}}
"""


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_minimal_scenario_loads_with_defaults(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, MINIMAL))
    assert scenario.name == "mini"
    assert [t.id for t in scenario.load_tasks()] == ["a"]
    assert scenario.solver.type == "chat"
    names = [s.name for s in resolve_strategies(scenario)]
    assert names == [
        "only:openai/small",
        "only:openai/large",
        "hierarchy",
        "hierarchy+demos",
        "hierarchy+demos+cache",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\ntiers: [\n", r"s\.yaml:\d+:\d+: not valid YAML"),
        ("- just\n- a list\n", "expected a mapping"),
        (
            MINIMAL.replace("type: regex, pattern: '\\w'", "type: oracle"),
            r"judge: .*'oracle'",
        ),
        (MINIMAL.replace("{number: 4}", "{equals: 4}"), "a check needs one of the keys"),
        (MINIMAL.replace("{number: 4}", "{regex: '('}"), "not a valid regular expression"),
        (MINIMAL.replace("{number: 4}", "{python: 'x = 1'}"), "must define a function"),
        (MINIMAL + "  - {id: a, query: again, check: {number: 1}}\n", "duplicate task id 'a'"),
        (MINIMAL.replace("id: a,", "id: a, group: nope,"), "unknown group 'nope'"),
        (MINIMAL.replace("judge: {type: regex, pattern: '\\w'}\n", ""), "has no runtime judge"),
        (MINIMAL + "strategies: [hierarchy, fastest]\n", "unknown strategy 'fastest'"),
        (MINIMAL.replace("tiers:", "tierz:"), "tierz: unknown field"),
        (MINIMAL + "tasks_file: t.jsonl\n", "not both"),
    ],
)
def test_bad_scenarios_fail_with_a_message_naming_the_problem(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected) as caught:
        load_scenario(write(tmp_path, text))
    assert "s.yaml" in str(caught.value)


def test_missing_scenario_and_missing_tasks_file_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such scenario file"):
        load_scenario(tmp_path / "absent.yaml")
    text = MINIMAL.split("tasks:")[0] + "tasks_file: absent.jsonl\n"
    scenario = load_scenario(write(tmp_path, text))
    with pytest.raises(ConfigError, match=r"absent\.jsonl: tasks file not found"):
        scenario.load_tasks()


def test_tasks_file_is_read_next_to_the_scenario_and_bad_lines_are_located(
    tmp_path: Path,
) -> None:
    lines = [
        {"id": "a", "query": "q1", "check": {"contains": "x"}},
        {"id": "b", "query": "q2", "check": {"exact": "y"}, "time_sensitive": True},
    ]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    text = MINIMAL.split("tasks:")[0] + "tasks_file: t.jsonl\n"
    tasks = load_scenario(write(tmp_path, text)).load_tasks()
    assert [(t.id, t.time_sensitive) for t in tasks] == [("a", None), ("b", True)]

    (tmp_path / "t.jsonl").write_text(json.dumps(lines[0]) + '\n{"id": "b", "query": "q"}\n')
    with pytest.raises(ConfigError, match=r"t\.jsonl:2: check: Field required"):
        load_scenario(write(tmp_path, text)).load_tasks()


def test_shuffle_is_seeded(tmp_path: Path) -> None:
    tasks = "".join(f'  - {{id: t{i}, query: "q{i}", check: {{number: {i}}}}}\n' for i in range(20))
    text = MINIMAL.split("tasks:")[0] + "order: shuffle\nseed: 7\ntasks:\n" + tasks
    first = [t.id for t in load_scenario(write(tmp_path, text)).load_tasks()]
    again = [t.id for t in load_scenario(write(tmp_path, text)).load_tasks()]
    assert first == again
    assert first != sorted(first, key=lambda x: int(x[1:]))


def test_groups_give_tasks_their_judges(tmp_path: Path) -> None:
    text = (
        MINIMAL.replace("judge: {type: regex, pattern: '\\w'}\n", "")
        .replace("id: a,", "id: a, group: maths,")
        .replace("tasks:", "groups:\n  maths: {judge: {type: regex, pattern: '^\\d+$'}}\ntasks:")
    )
    scenario = load_scenario(write(tmp_path, text))
    judge = scenario.judge_for(scenario.load_tasks()[0])
    assert judge.type == "regex"


def test_custom_strategies_pick_tiers_by_name_or_position(tmp_path: Path) -> None:
    text = MINIMAL + (
        "custom:\n"
        "  - {name: big-only, tiers: [openai/large]}\n"
        "  - {name: two, tiers: [1, 0], demos: true}\n"
        "strategies: [big-only, two, only:openai/small]\n"
    )
    scenario = load_scenario(write(tmp_path, text))
    strategies = {s.name: s for s in resolve_strategies(scenario)}
    assert strategies["big-only"].labels == ["openai/large"]
    assert strategies["two"].labels == ["openai/large", "openai/small"]
    assert strategies["two"].demos and not strategies["two"].cache
    with pytest.raises(ConfigError, match="no tier named 'openai/nope'"):
        resolve_strategies(scenario, ["only:openai/nope"])


def test_the_built_in_quickstart_scenario_is_valid() -> None:
    scenario = load_scenario(REPO / "scenarios" / "quickstart.yaml")
    tasks = scenario.load_tasks()
    assert len(tasks) >= 40
    queries = [t.query for t in tasks]
    assert len(set(queries)) < len(queries), "exact repeats are what the cache strategy reuses"
    assert {t.group for t in tasks} == set(scenario.groups)


def test_parse_scenario_accepts_a_mapping() -> None:
    import yaml

    scenario = parse_scenario(yaml.safe_load(MINIMAL))
    assert scenario.tasks[0].check.number == 4  # type: ignore[union-attr]


# --- ground-truth checks ----------------------------------------------------------------------


def check(spec: dict[str, object]) -> Scorer:
    scenario = parse_scenario(
        {
            "name": "c",
            "tiers": [{"model": "openai/x"}],
            "judge": {"type": "regex", "pattern": "."},
            "tasks": [{"id": "a", "query": "q", "check": spec}],
        }
    )
    return Scorer(scenario.tasks[0].check)


@pytest.mark.parametrize(
    ("spec", "answer", "expected"),
    [
        ({"exact": "Paris"}, " paris. ", True),
        ({"exact": "Paris"}, "Paris, France", False),
        ({"exact": "Paris", "case_sensitive": True}, "paris", False),
        ({"contains": "Paris"}, "The capital is Paris.", True),
        ({"contains": "Paris"}, "Parisian food", False),
        ({"contains": "Paris", "word": False}, "Parisian food", True),
        ({"contains": ["Paris", "Lutetia"]}, "It was Lutetia once", True),
        ({"contains": "a@b.io", "word": False}, "mail a@b.io now", True),
        ({"regex": r"\bAu\b"}, "The symbol is Au.", True),
        ({"number": 19}, "12 + 7 = 19", True),
        ({"number": 19}, "12 + 7 = 9", False),
        ({"number": 19, "pick": "first"}, "19, since 12 + 7", True),
        ({"number": 1234.5, "tolerance": 0.01}, "about 1,234.5 units", True),
        ({"number": -3}, "it is −3", True),
        ({"number": 4}, "four", False),
        ({"python": "def check(answer):\n    return answer.count('!') == 2"}, "hi!!", True),
        ({"python": "def check(answer):\n    return 1 / 0"}, "anything", False),
        ({"contains": "x"}, "", False),
    ],
)
async def test_ground_truth_checks(spec: dict[str, object], answer: str, expected: bool) -> None:
    assert await check(spec)(answer) is expected


async def test_tests_check_runs_the_answer_code_in_the_sandbox() -> None:
    scorer = check({"tests": "assert add(2, 3) == 5"})
    good = "```python\ndef add(a, b):\n    return a + b\n```"
    bad = "```python\ndef add(a, b):\n    return a - b\n```"
    assert await scorer(good) is True
    assert await scorer(bad) is False
    assert await scorer("no code at all") is False


async def test_code_answers_are_scored_on_what_they_said_and_printed_not_their_code() -> None:
    from ecocascade.agents.code import CodeRun, render_answer

    run = CodeRun(
        code="print(21 * 2)  # 7 is not the answer\n",
        exit_code=0,
        output="42\n",
        timed_out=False,
        duration_s=0.1,
    )
    answer = render_answer("The answer is 42.", run, timeout_s=10)
    assert "Code that ran" not in result_text(answer)
    assert "[execution" not in result_text(answer)
    assert await check({"number": 42})(answer) is True
    assert await check({"number": 7, "pick": "any"})(answer) is False
    assert await check({"number": 0})(answer) is False  # the exit code is not an answer


async def test_yaml_numbers_are_read_as_text_where_text_is_expected(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        '{id: a, query: "What is 2 + 2?", check: {number: 4}}',
        "{id: 7, query: 42, check: {exact: 42}}",
    )
    (task,) = load_scenario(write(tmp_path, text)).load_tasks()
    assert (task.id, task.query) == ("7", "42")
    assert await Scorer(task.check)("42.") is True


def test_extract_numbers() -> None:
    assert extract_numbers("1,234 and -5.5 then x2 and 3.") == [1234.0, -5.5, 3.0]
