"""``ecocascade bench replay``: every single model, the oracle, tuned cascades and the kNN-router
baseline on recorded data — cross-validated, or tuned on train files and scored on eval files.

Protocol (the same code and settings for every file; nothing is set per dataset):

- per split, everything is fitted on the split's train rows only: the learned judge (scores for
  the train rows are cross-fitted, so the tuner never sees a judge's in-sample scores), the
  history router (leave-one-out on train rows), the kNN router, and the tuner's choice;
- the tuner's target is the accuracy of the most accurate single model on the train rows
  ("match the best model"); the curve comes from budgets spaced evenly in log-cost between the
  cheapest and the dearest single model;
- every eval row is scored exactly once; numbers are pooled over splits.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ecocascade.replay.data import RecordedDataset
from ecocascade.tuning.features import Features, dataset_features, make_table
from ecocascade.tuning.metrics import (
    KNN_LAMBDAS,
    aiq,
    auc,
    knn_router,
    oracle,
    random_escalation,
)
from ecocascade.tuning.simulate import (
    Candidate,
    Outcome,
    candidates_scores,
    reference_pool,
    simulate,
    trajectory,
)
from ecocascade.tuning.tuner import select, select_mixed, train_table
from ecocascade.types import Embedder

__all__ = ["BUDGET_LEVELS", "FAMILIES", "bench_dataset", "render_html", "single_accuracy"]

Rows = npt.NDArray[np.int_]
BUDGET_LEVELS = 15
MAX_COST_FRACTION = 0.2


def _family(judges: set[str], router: bool) -> Callable[[Candidate], bool]:
    def allowed(c: Candidate) -> bool:
        return (c.judge in judges or c.judge == "none") and (router or c.skip_below is None)

    return allowed


_TUNED = _family({"learned", "agreement", "any", "all", "reliability"}, router=True)
_RELIABILITY = _family({"reliability"}, router=False)
Rule = tuple[
    str, float
]  # ("target", share of the best model's accuracy) or ("budget", share of its cost)

FAMILIES: dict[str, tuple[Callable[[Candidate], bool], Rule]] = {
    "cascade: learned judge": (_family({"learned"}, router=False), ("target", 1.0)),
    "cascade: agreement judge": (_family({"agreement"}, router=False), ("target", 1.0)),
    "cascade: learned judge + history router": (_family({"learned"}, router=True), ("target", 1.0)),
    "cascade: tuned, target 100% of best model's accuracy": (
        _TUNED,
        ("target", 1.0),
    ),
    "cascade: tuned, target 98% of best model's accuracy": (
        _TUNED,
        ("target", 0.98),
    ),
    "cascade: tuned, target 95% of best model's accuracy": (
        _TUNED,
        ("target", 0.95),
    ),
    "cascade: tuned, budget 20% of best model's cost": (
        _TUNED,
        ("budget", MAX_COST_FRACTION),
    ),
    "cascade: tuned, budget 35% of best model's cost": (_TUNED, ("budget", 0.35)),
    "cascade: reliability judge, budget 20% of best model's cost": (
        _RELIABILITY,
        ("budget", MAX_COST_FRACTION),
    ),
    "cascade: reliability judge, budget 35% of best model's cost": (_RELIABILITY, ("budget", 0.35)),
}
"""What the bench reports: which candidates a strategy may use, and the rule that picks one on
the train rows (relative to the best single model there — the same rule for every dataset)."""


@dataclass
class _Pool:
    """Per-item outcomes gathered over splits."""

    correct: list[float] = field(default_factory=list)
    cost: list[float] = field(default_factory=list)
    configs: list[str] = field(default_factory=list)

    def add(self, correct: npt.NDArray[Any], cost: npt.NDArray[Any], config: str = "") -> None:
        self.correct.extend(float(x) for x in correct)
        self.cost.extend(float(x) for x in cost)
        if config:
            self.configs.append(config)

    def point(self) -> tuple[float, float]:
        return float(np.mean(self.cost)), float(np.mean(self.correct))


def splits(n: int, folds: int, seed: int) -> list[tuple[Rows, Rows]]:
    order = np.random.default_rng(seed).permutation(n)
    parts = np.array_split(order, folds)
    return [
        (np.sort(np.concatenate([p for j, p in enumerate(parts) if j != i])), np.sort(part))
        for i, part in enumerate(parts)
    ]


def single_accuracy(ds: RecordedDataset, rows: Rows) -> npt.NDArray[np.float64]:
    """Each model's accuracy on ``rows`` (an unanswered item counts as wrong)."""
    ok = ds.answered[rows] & (np.nan_to_num(ds.correct[rows]) > 0.5)
    return np.asarray(ok.mean(axis=0), dtype=np.float64)


async def bench_dataset(
    dataset: RecordedDataset,
    embedder: Embedder,
    *,
    eval_rows: Rows | None = None,
    folds: int = 5,
    seed: int = 0,
    execute: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Benchmark one dataset. ``eval_rows`` given: tune on the other rows, score on these;
    else ``folds``-fold cross-validation."""
    say = progress or (lambda _: None)
    started = time.perf_counter()
    features = await dataset_features(dataset, embedder, execute=execute, progress=say)
    say(f"{dataset.name}: features in {time.perf_counter() - started:.1f}s")
    n = len(dataset)
    if eval_rows is None:
        split_list = splits(n, folds, seed)
        protocol = f"{folds}-fold cross-validation (seed {seed})"
    else:
        train = np.setdiff1d(np.arange(n), eval_rows)
        split_list = [(train, np.sort(eval_rows))]
        protocol = "tuned on the train file, scored on the eval file"
    scope = np.sort(np.concatenate([v for _, v in split_list]))

    pools = {name: _Pool() for name in FAMILIES}
    budget_pools = [_Pool() for _ in range(BUDGET_LEVELS)]
    knn_pools = [_Pool() for _ in KNN_LAMBDAS]
    candidates_seen = 0
    scores: dict[str, list[Any]] = {"rows": [], "learned": [], "reliability": []}
    for number, (train, test) in enumerate(split_list):
        t0 = time.perf_counter()
        candidates_seen = _run_split(
            features, train, test, pools, budget_pools, knn_pools, seed + number, scores
        )
        elapsed = time.perf_counter() - t0
        say(f"{dataset.name}: split {number + 1}/{len(split_list)} in {elapsed:.1f}s")

    costs = np.nan_to_num(dataset.cost[scope])
    accuracy = single_accuracy(dataset, scope)
    mean_cost = costs.mean(axis=0)
    single = [
        {"name": m, "accuracy": float(accuracy[j]), "cost_per_query_usd": float(mean_cost[j])}
        for j, m in enumerate(dataset.models)
    ]
    best = int(np.argmax(accuracy))
    lo, hi = float(mean_cost.min()), float(mean_cost.max())
    o_acc, o_cost = oracle(np.nan_to_num(dataset.correct[scope]), costs, dataset.answered[scope])

    def baseline(cost: float) -> float | None:
        return random_escalation(accuracy, mean_cost, best, cost)

    def versus(acc: float, cost: float) -> dict[str, Any]:
        base = baseline(cost)
        return {
            "random_escalation_accuracy": base,
            "beats_random_escalation": None if base is None else bool(acc > base + 1e-9),
        }

    strategies = []
    for name, pool in pools.items():
        cost, acc = pool.point()
        strategies.append(
            {
                "name": name,
                "accuracy": acc,
                "cost_per_query_usd": cost,
                "cost_vs_best_model": cost / float(mean_cost[best]) if mean_cost[best] else None,
                "meets_target": bool(
                    acc >= float(accuracy[best]) and cost <= MAX_COST_FRACTION * mean_cost[best]
                ),
                **versus(acc, cost),
                "configs": pool.configs,
            }
        )
    knn_points = [p.point() for p in knn_pools]
    best_knn = max(range(len(knn_points)), key=lambda i: (knn_points[i][1], -knn_points[i][0]))
    strategies.append(
        {
            "name": "knn router (the most accurate point of its curve)",
            "accuracy": knn_points[best_knn][1],
            "cost_per_query_usd": knn_points[best_knn][0],
            "cost_vs_best_model": knn_points[best_knn][0] / float(mean_cost[best]),
            "meets_target": bool(
                knn_points[best_knn][1] >= float(accuracy[best])
                and knn_points[best_knn][0] <= MAX_COST_FRACTION * mean_cost[best]
            ),
            **versus(knn_points[best_knn][1], knn_points[best_knn][0]),
            "configs": [],
        }
    )
    sweep = [p.point() for p in budget_pools]
    random_curve = sorted(
        {
            (float(c), float(b))
            for c in [*mean_cost, *(x for x, _ in sweep)]
            if (b := baseline(c)) is not None
        }
    )
    cascade_points = [p.point() for p in budget_pools] + [p.point() for p in pools.values()]
    single_points = [(float(mean_cost[j]), float(accuracy[j])) for j in range(len(single))]
    return {
        "dataset": dataset.name,
        "items": len(scope),
        "models": list(dataset.models),
        "protocol": protocol,
        "candidates_per_split": candidates_seen,
        "reliability_keys": (
            "behaviour of the executed code (shared input pool)"
            if features.judge_keys is not None
            else "extracted answers"
        ),
        "single_models": single,
        "oracle": {"accuracy": o_acc, "cost_per_query_usd": o_cost},
        "strategies": strategies,
        "target": {
            "reference_model": dataset.models[best],
            "accuracy": float(accuracy[best]),
            "cost_per_query_usd": float(mean_cost[best]),
            "max_cost_fraction": MAX_COST_FRACTION,
        },
        "budget_sweep": [
            {"cost_per_query_usd": c, "accuracy": a, **versus(a, c)} for c, a in sweep
        ],
        "judge_auc": _judge_auc(dataset, scores),
        "curves": {
            "cascade (budget sweep)": [list(p) for p in sorted(cascade_points)],
            "random escalation": [list(p) for p in random_curve],
            "knn router": [list(p) for p in sorted(knn_points)],
            "single models": [list(p) for p in sorted(single_points)],
        },
        "aiq": {
            "cost_range_usd": [lo, hi],
            "cascade": aiq(cascade_points, lo, hi),
            "knn_router": aiq(knn_points, lo, hi),
            "single_models": aiq(single_points, lo, hi),
            # RouterBench's "zero router" convention: a router may always fall back to mixing
            # single models, so its curve is judged with theirs added
            "knn_router_with_singles": aiq(knn_points + single_points, lo, hi),
            "cascade_with_singles": aiq(cascade_points + single_points, lo, hi),
        },
        "seconds": round(time.perf_counter() - started, 1),
    }


def _run_split(
    features: Features,
    train: Rows,
    test: Rows,
    pools: dict[str, _Pool],
    budget_pools: list[_Pool],
    knn_pools: list[_Pool],
    seed: int,
    scores: dict[str, list[Any]],
) -> int:
    ds = features.dataset
    table_train = train_table(features, train, seed=seed)
    judge = features.fit_judge(train)
    table_test = make_table(
        features,
        test,
        features.predict(judge, test),
        features.route_rates(test, train, leave_one_out=False),
        features.reliability(test, train),
    )
    scores["rows"].append(test)
    scores["learned"].append(table_test.score)
    ref_pool = reference_pool(table_train)
    scores["reliability"].append(
        np.stack([trajectory(table_test, m, ref_pool)[0][:, -1] for m in range(len(ds.models))], 1)
    )
    candidates, accuracy, cost = candidates_scores(table_train)
    single = single_accuracy(ds, train)
    best = int(np.argmax(single))
    best_cost = float(np.nan_to_num(ds.cost[train, best]).mean())
    masks: dict[int, npt.NDArray[np.bool_]] = {}
    last = np.array([c.ladder[-1] for c in candidates], dtype=np.int64)
    mixable = np.array([c.skip_below is None for c in candidates], dtype=bool)
    for name, (allowed, (rule, share)) in FAMILIES.items():
        mask = masks.setdefault(id(allowed), np.array([allowed(c) for c in candidates]))
        if rule == "target":
            chosen = candidates[
                select(accuracy, cost, target=share * float(single[best]), allowed=mask)
            ]
        else:
            chosen, _, _ = select_mixed(
                table_train,
                candidates,
                accuracy,
                cost,
                share * best_cost,
                allowed=mask,
                last_tiers=last,
                mixable=mixable,
            )
        outcome: Outcome = simulate(table_test, chosen)
        pools[name].add(outcome.correct, outcome.cost, chosen.describe(ds.models))
    mean_cost = np.nan_to_num(ds.cost[train]).mean(axis=0)
    budgets = np.geomspace(max(mean_cost.min(), 1e-12), max(mean_cost.max(), 1e-12), BUDGET_LEVELS)
    for pool, budget in zip(budget_pools, budgets, strict=True):
        chosen, _, _ = select_mixed(
            table_train, candidates, accuracy, cost, float(budget), last_tiers=last, mixable=mixable
        )
        outcome = simulate(table_test, chosen)
        pool.add(outcome.correct, outcome.cost)
    for pool, (correct, spent) in zip(
        knn_pools,
        knn_router(features.query, train, test, ds.correct, ds.cost, ds.answered),
        strict=True,
    ):
        pool.add(correct, spent)
    return len(candidates)


def _judge_auc(ds: RecordedDataset, scores: dict[str, list[Any]]) -> dict[str, Any]:
    """Per model: AUC of each judge's out-of-fold score for the answer being right (learned:
    P(correct); reliability: the posterior of its answer given the reference pool's answers)."""
    rows = np.concatenate(scores["rows"])
    correct, known = np.nan_to_num(ds.correct[rows]), ~np.isnan(ds.correct[rows])
    out: dict[str, Any] = {}
    for judge in ("learned", "reliability"):
        values = np.concatenate(scores[judge])
        out[judge] = {
            m: auc(values[known[:, j], j], correct[known[:, j], j]) for j, m in enumerate(ds.models)
        }
    return out


def render_html(results: Sequence[dict[str, Any]], *, command: str = "") -> str:
    """A self-contained page: per dataset a table and an inline SVG cost/accuracy plot."""
    from ecocascade.eval.svg import Series, color, xy_chart

    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>ecocascade bench replay</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:right}td:first-child,th:first-child{text-align:left}</style></head><body>",
        "<h1>Cost/accuracy on recorded answers</h1>",
    ]
    if command:
        parts.append(f"<p><code>{html.escape(command)}</code></p>")
    for r in results:
        parts.append(
            f"<h2>{html.escape(r['dataset'])}</h2><p>{html.escape(r['protocol'])}, "
            f"{r['items']} items.</p>"
        )
        rows = [
            ("single: " + s["name"], s["accuracy"], s["cost_per_query_usd"])
            for s in r["single_models"]
        ]
        rows.append(("oracle", r["oracle"]["accuracy"], r["oracle"]["cost_per_query_usd"]))
        rows += [(s["name"], s["accuracy"], s["cost_per_query_usd"]) for s in r["strategies"]]
        parts.append("<table><tr><th>strategy</th><th>accuracy</th><th>$/query</th></tr>")
        for name, acc, cost in rows:
            parts.append(
                f"<tr><td>{html.escape(name)}</td><td>{acc:.3f}</td><td>{cost:.2e}</td></tr>"
            )
        parts.append("</table>")
        aiq_row = ", ".join(f"{k}: {v:.4f}" for k, v in r["aiq"].items() if isinstance(v, float))
        parts.append(f"<p>AIQ — {html.escape(aiq_row)}</p>")
        series = [
            Series(
                name, [tuple(p) for p in points], color=color(i), mode="both" if i < 2 else "points"
            )
            for i, (name, points) in enumerate(r["curves"].items())
        ]
        series.append(
            Series(
                "oracle",
                [(r["oracle"]["cost_per_query_usd"], r["oracle"]["accuracy"])],
                color=color(len(series)),
            )
        )
        tuned = [s for s in r["strategies"] if s["name"].startswith("cascade")]
        series.append(
            Series(
                "tuned cascades (the rules in the table)",
                [(s["cost_per_query_usd"], s["accuracy"]) for s in tuned],
                color=color(len(series)),
            )
        )
        parts.append(
            xy_chart(
                series,
                title=f"{r['dataset']}: accuracy vs cost per query",
                x_label="USD per query (log)",
                y_label="accuracy",
                log_x=True,
                y_range=(_floor_tenth(min(y for s in series for _, y in s.points)), 1.0),
                width=900,
                height=440,
            )
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_outputs(results: Sequence[dict[str, Any]], out: Path, *, command: str = "") -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(
        json.dumps({"command": command, "datasets": list(results)}, indent=2, allow_nan=False)
        + "\n"
    )
    (out / "bench.html").write_text(render_html(results, command=command))


def _floor_tenth(value: float) -> float:
    return max(0.0, int(value * 10) / 10)
