"""The simulation has the real Cascade's semantics; the tuner respects its target; oracle and
AIQ on hand-computable cases."""

from __future__ import annotations

import numpy as np
import pytest

from ecocascade.controller.cascade import Cascade
from ecocascade.judges.agreement import AgreementJudge
from ecocascade.judges.combinators import AllOf, AnyOf
from ecocascade.judges.learned import LearnedJudge, LearnedModel
from ecocascade.judges.reliability import ConfusionModel, ReliabilityJudge
from ecocascade.replay.data import RecordedAnswer, RecordedDataset, RecordedItem
from ecocascade.replay.provider import replay_tier
from ecocascade.replay.run import run_cascade_on
from ecocascade.routing import HistoryRouter, RandomShareRouter
from ecocascade.tuning.features import dataset_features, make_table
from ecocascade.tuning.metrics import aiq, hull, knn_router, oracle
from ecocascade.tuning.simulate import (
    Candidate,
    Reliability,
    Table,
    candidates_scores,
    simulate,
)
from ecocascade.tuning.tuner import select, train_table, tune

from .conftest import Serve, WordsEmbedder, synthetic_dataset


def noisy_dataset(n: int = 48, seed: int = 1) -> RecordedDataset:
    """Like the synthetic set, with random errors, a missing answer and wrong-but-agreeing answers,
    so every branch of the semantics is exercised."""
    rng = np.random.default_rng(seed)
    base = synthetic_dataset(n, seed)
    items = []
    for i, item in enumerate(base.items):
        answers = {}
        for m, a in item.answers.items():
            if i == 3 and m == "medium":
                continue  # not recorded: an error attempt
            flip = rng.random() < 0.2
            text = ("ABCD"[(i + 2) % 4] if flip else a.text) if m != "large" else a.text
            right = a.correct and not flip if m != "large" else True
            answers[m] = RecordedAnswer(text, right, a.cost_usd)
        items.append(RecordedItem(item.id, item.query, answers))
    return RecordedDataset("noisy", base.models, tuple(items))


async def test_simulation_matches_the_real_cascade_over_replay_tiers(
    embedder: WordsEmbedder, serve: Serve
) -> None:
    ds = noisy_dataset()
    serve(ds)
    features = await dataset_features(ds, embedder)
    rows = np.arange(len(ds))
    model: LearnedModel = features.fit_judge(rows)
    correct, known = features.labels()
    router = HistoryRouter(
        features.query, np.where(known, correct, np.nan), ds.models, embedder, k=5, skip_below=0.5
    )
    route = np.array([router.success_rates(features.query[i]) for i in rows])
    table = make_table(
        features, rows, features.predict(model, rows), route, features.reliability(rows, rows)
    )
    confusion = features.fit_confusion(rows)
    small, medium, large = range(3)
    candidates = [
        Candidate((small, medium, large), "learned", thresholds=(0.6, 0.4)),
        Candidate((small, large), "learned", thresholds=(0.5,), skip_below=0.5),
        Candidate((small, medium, large), "agreement", references=(medium,)),
        Candidate((small, large), "agreement", references=(small, medium), min_agree=1),
        Candidate(
            (medium, large), "agreement", references=(small, medium), min_agree=1, skip_below=0.5
        ),
        Candidate((small, medium, large), "any", thresholds=(0.7, 0.6), references=(medium,)),
        Candidate(
            (small, large), "any", thresholds=(0.9,), references=(small, medium), min_agree=1
        ),
        Candidate((small, medium, large), "all", thresholds=(0.3, 0.2), references=(medium,)),
        Candidate((small, large), "all", thresholds=(0.4,), references=(medium,), skip_below=0.5),
        Candidate((small, large), "reliability", thresholds=(0.9,), references=(medium,)),
        Candidate((small, large), "reliability", thresholds=(0.6,), references=()),
        Candidate(
            (small, medium, large), "reliability", thresholds=(0.8, 0.8), references=(small, medium)
        ),
        Candidate((medium, large), "reliability", thresholds=(0.99,), references=(small,)),
        Candidate(
            (small, large),
            "reliability",
            thresholds=(0.9,),
            references=(medium,),
            escalate_share=0.3,
        ),
        Candidate((small, medium, large), "learned", thresholds=(0.6, 0.4), escalate_share=0.5),
    ]
    assert {c.judge for c in candidates} == {"learned", "agreement", "any", "all", "reliability"}
    for candidate in candidates:
        tiers = [replay_tier(ds.models[m]) for m in candidate.ladder]
        thresholds = dict(
            zip((ds.models[m] for m in candidate.ladder), candidate.thresholds, strict=False)
        )
        thresholds[ds.models[candidate.ladder[-1]]] = 0.0
        learned = LearnedJudge(model, embedder, thresholds=thresholds)
        references = [replay_tier(ds.models[r]) for r in candidate.references or (small,)]
        agreement = AgreementJudge(references, min_agree=candidate.min_agree)
        reliability = ReliabilityJudge(
            confusion,
            [replay_tier(ds.models[r]) for r in candidate.references],
            tau=candidate.thresholds[0] if candidate.thresholds else 0.9,
        )
        judge = {
            "reliability": reliability,
            "learned": learned,
            "agreement": agreement,
            "any": AnyOf(learned, agreement),
            "all": AllOf(learned, agreement),
        }[candidate.judge]
        chosen_router = (
            router
            if candidate.skip_below
            else RandomShareRouter(candidate.escalate_share)
            if candidate.escalate_share
            else None
        )
        cascade = Cascade(tiers, judge, router=chosen_router)
        real = await run_cascade_on(cascade, ds)
        simulated = simulate(table, candidate)
        assert [o.correct for o in real] == [bool(x) for x in simulated.correct], candidate
        assert [o.cost_usd for o in real] == pytest.approx(list(simulated.cost)), candidate
        assert [-1 if o.tier is None else o.tier for o in real] == list(simulated.tier), candidate
    # the batch features score exactly what the live judge scores
    item = ds.items[5]
    live = await LearnedJudge(model, embedder).probability(
        item.query, item.answers["medium"].text, "medium"
    )
    assert table.score[5, medium] == pytest.approx(live)


def random_table(n: int = 50, models: int = 4, seed: int = 0) -> Table:
    rng = np.random.default_rng(seed)
    answered = rng.random((n, models)) > 0.05
    keys = rng.integers(-1, 3, (n, models))
    correct = (rng.random((n, models)) < 0.6).astype(float)
    names = ("choice:A", "choice:B", "choice:C")
    names_m = tuple(f"m{j}" for j in range(models))
    rows = [
        [names[k] if k >= 0 and a else None for k, a in zip(r, ar, strict=True)]
        for r, ar in zip(keys, answered, strict=True)
    ]
    confusion = ConfusionModel.fit(names_m, rows, correct)
    obs = np.where(answered, confusion.codes(keys, names), -2)
    return Table(
        models=tuple(f"m{j}" for j in range(models)),
        correct=correct,
        cost=rng.random((n, models)) * np.array([1, 3, 10, 30])[:models] * 1e-4 * answered,
        answered=answered,
        score=rng.random((n, models)),
        keys=keys,
        route=np.where(rng.random((n, models)) < 0.1, np.nan, rng.random((n, models))),
        reliability=(Reliability(np.arange(n), confusion, obs),),
    )


def test_vectorised_search_scores_every_candidate_as_the_simulation_does() -> None:
    table = random_table()
    candidates, accuracy, cost = candidates_scores(table)
    assert len(candidates) > 1000
    assert sum(c.judge == "reliability" for c in candidates) > 100
    for i in [*range(0, len(candidates), 7), *range(len(candidates) - 300, len(candidates))]:
        outcome = simulate(table, candidates[i])
        assert outcome.accuracy == pytest.approx(accuracy[i], abs=1e-12), candidates[i]
        assert outcome.cost_per_query == pytest.approx(cost[i], abs=1e-15), candidates[i]


def test_tuner_picks_the_cheapest_candidate_that_reaches_the_target() -> None:
    table = random_table(seed=3)
    _, accuracy, cost = candidates_scores(table)
    for target in np.quantile(accuracy, [0.3, 0.7, 0.99]):
        chosen, acc, spent, _ = tune(table, target=target)
        assert acc >= target
        assert simulate(table, chosen).accuracy == pytest.approx(acc)
        assert spent == pytest.approx(cost[accuracy >= target].min())
    _, acc, _, _ = tune(table, target=1.01)
    assert acc == pytest.approx(accuracy.max())  # nothing reaches it: the most accurate


def test_tuner_stays_within_a_budget() -> None:
    table = random_table(seed=4)
    _, accuracy, cost = candidates_scores(table)
    budget = float(np.median(cost))
    _, acc, spent, _ = tune(table, budget=budget)
    assert spent <= budget and acc == pytest.approx(accuracy[cost <= budget].max())
    with pytest.raises(Exception, match="exactly one"):
        select(accuracy, cost)


async def test_tuner_on_synthetic_records_finds_a_cheap_cascade_at_the_large_models_accuracy(
    embedder: WordsEmbedder,
) -> None:
    ds = synthetic_dataset(80)
    features = await dataset_features(ds, embedder)
    table = train_table(features, np.arange(len(ds)))
    chosen, acc, spent, _ = tune(table, target=1.0)
    assert acc == 1.0
    # easy items never need the large model: the tuned cascade is cheaper than large alone
    assert spent < 0.8 * 1e-2
    assert chosen.ladder[-1] == ds.models.index("large")


def test_oracle_takes_the_cheapest_right_answer_per_item() -> None:
    correct = np.array([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    cost = np.array([[1.0, 10.0], [1.0, 10.0], [2.0, 10.0]])
    answered = np.ones_like(correct, dtype=bool)
    acc, spent = oracle(correct, cost, answered)
    assert acc == pytest.approx(2 / 3)
    assert spent == pytest.approx((1 + 10 + 2) / 3)


def test_aiq_is_the_mean_height_of_the_non_decreasing_convex_hull() -> None:
    points = [(1.0, 0.5), (2.0, 0.6), (3.0, 0.9), (4.0, 0.8)]
    assert hull(points) == [(1.0, 0.5), (3.0, 0.9)]
    # from 1 to 3 the line 0.5 → 0.9 (mean 0.7), then flat at 0.9 up to 5: (1.4 + 1.8) / 4
    assert aiq(points, 1.0, 5.0) == pytest.approx(0.8, abs=1e-3)
    # below the cheapest point nothing is reachable
    assert aiq([(2.0, 1.0)], 0.0, 4.0) == pytest.approx(0.5, abs=1e-3)


def test_knn_router_with_no_cost_weight_picks_the_neighbours_best_model() -> None:
    vectors = np.eye(4, dtype=np.float32)[[0, 0, 1, 1, 0, 1]]
    correct = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [1, 0], [0, 1]], dtype=float)
    cost = np.tile([1.0, 2.0], (6, 1))
    answered = np.ones_like(correct, dtype=bool)
    [(right, spent), *_] = knn_router(
        vectors, np.arange(4), np.array([4, 5]), correct, cost, answered, k=2, lambdas=[0.0, 9.0]
    )
    assert list(right) == [1.0, 1.0] and list(spent) == [1.0, 2.0]


def test_a_budget_between_two_configs_is_spent_on_a_random_share_to_the_last_tier() -> None:
    from ecocascade.tuning.tuner import select_mixed

    table = random_table(n=400, seed=5)
    candidates, accuracy, cost = candidates_scores(table)
    for budget in np.quantile(cost, [0.2, 0.5]):
        chosen, acc, spent = select_mixed(table, candidates, accuracy, cost, float(budget))
        assert spent <= budget + 1e-12
        assert acc >= accuracy[cost <= budget].max() - 1e-12  # never worse than no mixing
        if chosen.escalate_share:
            outcome = simulate(table, chosen)  # the hash split is close to its expectation
            assert outcome.cost_per_query == pytest.approx(spent, rel=0.25)
