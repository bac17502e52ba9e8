"""The confusion model recovers what generated the answers; the reliability judge asks fewer
references when answers agree; code answers are compared by behaviour; random escalation."""

from __future__ import annotations

import numpy as np
import pytest
from structlog.testing import capture_logs

from ecocascade.controller.cascade import Cascade
from ecocascade.judges.behaviour import (
    BehaviourJudge,
    analyse_code,
    behaviour_key,
    harvest_inputs,
    inputs_for,
    run_code,
)
from ecocascade.judges.reliability import ConfusionModel, ReliabilityJudge
from ecocascade.replay.data import RecordedAnswer, RecordedDataset, RecordedItem
from ecocascade.replay.provider import replay_tier
from ecocascade.replay.run import run_cascade_on
from ecocascade.tuning.metrics import auc, random_escalation

from .conftest import Serve

LETTERS = "ABCD"


def letters(n: int, accuracy: dict[str, float], bias: dict[str, str], seed: int = 0):
    """Multiple-choice answers: each model right with its accuracy; when wrong, a biased model
    says its favourite letter, the others a uniformly random wrong letter."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 4, n)
    keys, correct = [], []
    for i in range(n):
        row, ok = [], []
        for m, acc in accuracy.items():
            if rng.random() < acc:
                k = truth[i]
            elif m in bias:
                k = LETTERS.index(bias[m])
            else:
                k = rng.choice([x for x in range(4) if x != truth[i]])
            row.append(f"choice:{LETTERS[k]}")
            ok.append(float(k == truth[i]))
        keys.append(row)
        correct.append(ok)
    return keys, np.array(correct), truth


def test_confusion_model_recovers_per_model_accuracy_and_letter_bias() -> None:
    accuracy = {"good": 0.9, "fair": 0.7, "biased": 0.5}
    keys, correct, _ = letters(3000, accuracy, {"biased": "A"})
    model = ConfusionModel.fit(list(accuracy), keys, correct)
    assert model.mode == "closed"
    assert model.labels == tuple(f"choice:{x}" for x in LETTERS)
    # the biased model is right when it says its answer and when the truth is "A"
    expected = [0.9, 0.7, 0.5 + 0.5 * 0.25]
    assert model.model_accuracy() == pytest.approx(expected, abs=0.03)
    biased = model.confusion[2]  # rows: truth; columns: what it says
    assert biased[1:, 0] == pytest.approx([0.5] * 3, abs=0.05)  # wrong answers all go to "A"
    assert biased[1:, 1:4].sum() == pytest.approx(1.5, abs=0.1)  # and the rest is right
    # so "A" from the biased model is weak evidence, "B" strong
    p_a = model.posterior({"biased": "choice:A"}, "choice:A")
    p_b = model.posterior({"biased": "choice:B"}, "choice:B")
    assert p_a < 0.5 < 0.9 < p_b
    # without any correctness labels EM still finds the accuracies
    unlabelled = ConfusionModel.fit(list(accuracy), keys)
    assert unlabelled.model_accuracy() == pytest.approx(expected, abs=0.04)


def test_open_answers_weigh_agreement_by_each_models_reliability(tmp_path) -> None:
    rng = np.random.default_rng(1)
    keys, correct = [], []
    for i in range(400):
        row, ok = [], []
        for acc in (0.9, 0.6, 0.3):
            right = rng.random() < acc
            row.append(f"number:{i}" if right else f"number:{i}.{rng.integers(0, 50)}")
            ok.append(float(right))
        keys.append(row)
        correct.append(ok)
    model = ConfusionModel.fit(["a", "b", "c"], keys, np.array(correct))
    assert model.mode == "open"
    assert model.accuracy == pytest.approx([0.9, 0.6, 0.3], abs=0.06)
    both = model.posterior({"a": "number:1", "b": "number:1"}, "number:1")
    alone = model.posterior({"a": "number:1"}, "number:1")
    against = model.posterior({"a": "number:1", "b": "number:2"}, "number:1")
    weak_pair = model.posterior({"b": "number:1", "c": "number:1"}, "number:1")
    assert against < alone < both
    assert weak_pair < both
    path = tmp_path / "c.json"
    model.save(path)
    assert ConfusionModel.load(path).posterior({"a": "number:1"}, "number:1") == alone


def _dataset(n: int, seed: int = 0) -> RecordedDataset:
    """Three cheap models and a strong one; the cheap ones agree on most items."""
    rng = np.random.default_rng(seed)
    models = ("c1", "c2", "c3", "strong")
    costs = {"c1": 1e-4, "c2": 2e-4, "c3": 3e-4, "strong": 1e-2}
    items = []
    for i in range(n):
        truth = LETTERS[i % 4]
        answers = {}
        for m, acc in zip(models, (0.8, 0.75, 0.7, 1.0), strict=True):
            right = rng.random() < acc
            text = truth if right else LETTERS[(i + 1 + int(rng.integers(0, 3))) % 4]
            answers[m] = RecordedAnswer(text, right, costs[m])
        items.append(RecordedItem(f"r{i}", f"Question {i}: pick one of A, B, C, D", answers))
    return RecordedDataset("rel", models, tuple(items))


async def test_early_stopping_asks_fewer_references_when_answers_agree(serve: Serve) -> None:
    ds = serve(_dataset(200))
    keys = [[f"choice:{it.answers[m].text}" for m in ds.models] for it in ds.items]
    model = ConfusionModel.fit(ds.models, keys, np.nan_to_num(ds.correct))
    judge = ReliabilityJudge(model, [replay_tier("c2"), replay_tier("c3")], tau=0.9)
    cascade = Cascade([replay_tier("c1"), replay_tier("strong")], judge)
    with capture_logs() as logs:
        # one at a time, so the log's verdicts come in the dataset's order
        outcomes = await run_cascade_on(cascade, ds, concurrency=1)
    verdicts = [e for e in logs if e.get("event") == "judge.verdict" and e.get("tier") == 0]
    assert len(verdicts) == len(ds)
    asked = {"agree": [], "disagree": []}
    for item, verdict in zip(ds.items, verdicts, strict=True):
        c1, c2 = item.answers["c1"].text, item.answers["c2"].text
        n = int(verdict["reason"].split(" after ")[1].split()[0])
        asked["agree" if c1 == c2 else "disagree"].append(n)
    # on agreement the first reference nearly always settles it (no need for the second one)
    assert np.mean(np.array(asked["agree"]) == 1) > 0.9
    assert np.mean(asked["agree"]) < np.mean(asked["disagree"]) or max(asked["disagree"]) == 1
    total = sum(asked["agree"]) + sum(asked["disagree"])
    assert total < 1.3 * len(ds)  # asking every reference every time: 2 per item
    accuracy = np.mean([o.correct for o in outcomes])
    assert accuracy > 0.9  # better than any cheap model alone (0.8), for less than always-strong
    assert np.mean([o.cost_usd for o in outcomes]) < 0.6e-2


CORRECT = """Here you go:

```python
def add_one(x):
    return x + 1
```

```python
print(add_one(1))  # 2
assert add_one(5) == 6
```
"""
SAME_BEHAVIOUR = """[PYTHON]
def inc(n):
    result = n
    result += 1
    return result
[/PYTHON]
[TESTS]
assert inc(10) == 11
[/TESTS]
"""
OFF_BY_ONE = """```python
def plus_one(v):
    return v + 2

plus_one(3)  # 4
```"""


async def test_behaviour_separates_a_correct_function_from_an_off_by_one(tmp_path) -> None:
    analyses = [analyse_code(t) for t in (CORRECT, SAME_BEHAVIOUR, OFF_BY_ONE)]
    assert all(a is not None and a.parses and a.arity == (1, 1) for a in analyses)
    assert [a.function for a in analyses if a] == ["add_one", "inc", "plus_one"]
    pool = harvest_inputs(analyses)
    assert set(pool) == {"(1, )", "(5, )", "(10, )", "(3, )"}
    runs = []
    for a in analyses:
        assert a is not None
        runs.append(await run_code(a, inputs_for(a, pool), cache_dir=tmp_path))
    assert [(r.passed, r.examples) for r in runs if r] == [(2, 2), (1, 1), (0, 1)]
    keys = [behaviour_key(inputs_for(a, pool), r) for a, r in zip(analyses, runs, strict=True) if a]
    assert keys[0] == keys[1] != keys[2]
    # cached: the same run again reads the file
    files = list(tmp_path.rglob("*.json"))
    assert len(files) == 3
    assert analyses[0] is not None
    assert await run_code(analyses[0], inputs_for(analyses[0], pool), cache_dir=tmp_path) == runs[0]


async def test_behaviour_judge_accepts_by_behaviour_and_rejects_the_off_by_one(
    serve: Serve, tmp_path
) -> None:
    items = (
        RecordedItem(
            "q1",
            "Write a function that adds one.",
            {
                "cheap": RecordedAnswer(CORRECT, True, 1e-4),
                "ref": RecordedAnswer(SAME_BEHAVIOUR, True, 2e-4),
                "strong": RecordedAnswer(CORRECT, True, 1e-2),
            },
        ),
        RecordedItem(
            "q2",
            "Write a function that adds one, please.",
            {
                "cheap": RecordedAnswer(OFF_BY_ONE, False, 1e-4),
                "ref": RecordedAnswer(SAME_BEHAVIOUR, True, 2e-4),
                "strong": RecordedAnswer(CORRECT, True, 1e-2),
            },
        ),
    )
    ds = serve(RecordedDataset("code", ("cheap", "ref", "strong"), items))
    judge = BehaviourJudge([replay_tier("ref")], cache_dir=tmp_path, min_pass_rate=0.0)
    cascade = Cascade([replay_tier("cheap"), replay_tier("strong")], judge)
    outcomes = await run_cascade_on(cascade, ds)
    assert [o.tier for o in outcomes] == [0, 1]  # the off-by-one answer escalates
    assert all(o.correct for o in outcomes)


def test_random_escalation_on_a_hand_checkable_case() -> None:
    # cheap A: 0.6 at $1; cheap B: 0.7 at $2; strong: 0.9 at $10
    accuracy, cost = [0.6, 0.7, 0.9], [1.0, 2.0, 10.0]
    assert random_escalation(accuracy, cost, 2, 0.5) is None  # below every cheap model
    assert random_escalation(accuracy, cost, 2, 1.0) == pytest.approx(0.6)
    # at $2: A with 1/9 of queries to the strong model = 0.6 + 0.3/9 = 0.6333 < B alone
    assert random_escalation(accuracy, cost, 2, 2.0) == pytest.approx(0.7)
    # at $6: A + 5/9 → 0.7667; B + 4/8 → 0.8: the better mix wins
    assert random_escalation(accuracy, cost, 2, 6.0) == pytest.approx(0.8)
    assert random_escalation(accuracy, cost, 2, 12.0) == pytest.approx(0.9)


def test_auc_counts_ties_half() -> None:
    assert auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    assert auc(np.array([0.5, 0.5]), np.array([0, 1])) == pytest.approx(0.5)
    assert auc(np.array([0.5, 0.5]), np.array([1, 1])) is None
