"""Reference points and the area under the cost/accuracy curve (RouterBench's AIQ)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["aiq", "auc", "hull", "knn_router", "oracle", "random_escalation"]

Array = npt.NDArray[np.float64]
KNN_K = 40
KNN_LAMBDAS = (0.0, *tuple(float(x) for x in np.logspace(-2, 3, 16)))


def oracle(correct: Array, cost: Array, answered: npt.NDArray[np.bool_]) -> tuple[float, float]:
    """The lower bound: per item the cheapest model that answered right (none right: the
    cheapest model that answered, still wrong). Returns (accuracy, cost per query)."""
    ok = answered & (correct > 0.5)
    big = np.where(ok, cost, np.inf)
    any_ok = ok.any(axis=1)
    cheapest_ok = big.min(axis=1)
    cheapest = np.where(answered, cost, np.inf).min(axis=1)
    per_item = np.where(any_ok, cheapest_ok, np.where(np.isfinite(cheapest), cheapest, 0.0))
    return float(any_ok.mean()), float(per_item.mean())


def hull(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The non-decreasing upper convex hull of (cost, accuracy) points: what mixing strategies
    at random can reach. Dominated points (costlier and no more accurate) drop out."""
    best: list[tuple[float, float]] = []
    for c, a in sorted(points, key=lambda p: (p[0], -p[1])):
        if not best or a > best[-1][1]:
            best.append((c, a))
    chain: list[tuple[float, float]] = []
    for p in best:
        while len(chain) >= 2:
            (c1, a1), (c2, a2) = chain[-2], chain[-1]
            # drop the middle point when it lies on or under the segment from c1 to p
            if (a2 - a1) * (p[0] - c1) <= (p[1] - a1) * (c2 - c1):
                chain.pop()
            else:
                break
        chain.append(p)
    return chain


def aiq(points: Sequence[tuple[float, float]], lo: float, hi: float) -> float:
    """Average accuracy of the hull over costs [lo, hi]: 0 below the cheapest point, flat after
    the last (RouterBench's AIQ, with the cost range fixed per dataset so strategies compare)."""
    if hi <= lo or not points:
        return 0.0
    chain = hull(points)
    xs = [c for c, _ in chain] + [max(hi, chain[-1][0])]
    ys = [a for _, a in chain] + [chain[-1][1]]
    grid = np.linspace(lo, hi, 4001)
    values = np.interp(grid, xs, ys, left=0.0)
    values[grid < xs[0]] = 0.0
    return float(np.trapezoid(values, grid) / (hi - lo))


def knn_router(
    query_vectors: npt.NDArray[np.float32],
    train: npt.NDArray[np.int_],
    test: npt.NDArray[np.int_],
    correct: Array,
    cost: Array,
    answered: npt.NDArray[np.bool_],
    *,
    k: int = KNN_K,
    lambdas: Sequence[float] = KNN_LAMBDAS,
) -> list[tuple[Array, Array]]:
    """The k-nearest-neighbour router baseline (RouterBench's): for each test query, estimate
    each model's accuracy and cost from its ``k`` nearest train queries and pick
    ``argmax(accuracy - λ·cost)``; ``λ`` is scaled by the dearest model's mean cost, and one
    (correct, cost) per-item pair is returned per ``λ``."""
    sims = query_vectors[test] @ query_vectors[train].T
    k = max(1, min(k, len(train)))
    nearest = train[np.argpartition(-sims, k - 1, axis=1)[:, :k]]
    acc_hat = np.nan_to_num(np.where(answered, correct, 0.0))[nearest].mean(axis=1)
    cost_hat = np.nan_to_num(cost)[nearest].mean(axis=1)
    scale = float(np.nan_to_num(cost[train]).mean(axis=0).max()) or 1.0
    results: list[tuple[Array, Array]] = []
    for lam in lambdas:
        # ties (equal estimated accuracy at λ=0) go to the cheaper model
        choice = np.argmax(acc_hat - (lam / scale + 1e-9 / scale) * cost_hat, axis=1)
        ok = answered[test, choice]
        results.append(
            (
                np.where(ok, np.nan_to_num(correct[test, choice]), 0.0),
                np.nan_to_num(cost[test, choice]),
            )
        )
    return results


def random_escalation(
    accuracy: Sequence[float] | Array, cost: Sequence[float] | Array, strongest: int, at_cost: float
) -> float | None:
    """The no-information baseline at ``at_cost`` per query: the best cheap model answers and a
    random share ``s`` of the queries goes to the ``strongest`` model instead, so cost is
    ``(1-s)·c_m + s·c_strong`` and accuracy ``(1-s)·a_m + s·a_strong``; the best such mix over
    cheap models ``m`` (any model cheaper than the strongest). ``None`` below every cheap
    model's cost; at or above the strongest model's cost, its accuracy."""
    a_s, c_s = float(accuracy[strongest]), float(cost[strongest])
    if at_cost >= c_s:
        return a_s
    best: float | None = None
    for m, (a_m, c_m) in enumerate(zip(accuracy, cost, strict=True)):
        if m == strongest or c_m > at_cost or c_m >= c_s:
            continue
        share = (at_cost - c_m) / (c_s - c_m)
        value = (1 - share) * float(a_m) + share * a_s
        best = value if best is None else max(best, value)
    return best


def auc(score: Array, label: Array) -> float | None:
    """Area under the ROC curve of ``score`` for binary ``label`` (ties count half);
    ``None`` when one class is missing."""
    score = np.asarray(score, dtype=np.float64)
    positive = np.asarray(label) > 0.5
    pos, neg = int(positive.sum()), int((~positive).sum())
    if pos == 0 or neg == 0:
        return None
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    sorted_scores = score[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    for start, count in zip(first, counts, strict=True):
        ranks[order[start : start + count]] = start + (count + 1) / 2
    return float((ranks[positive].sum() - pos * (pos + 1) / 2) / (pos * neg))
