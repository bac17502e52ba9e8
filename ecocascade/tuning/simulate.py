"""The cascade's semantics on recorded data, fast enough to score tens of thousands of configs.

A :class:`Table` holds, per item and model: correctness, cost, whether the model answered, the
learned judge's P(correct), the extracted answer (as an integer code) and the history router's
neighbour success rate. :func:`simulate` walks a :class:`Candidate` ladder exactly as
:class:`~ecocascade.controller.cascade.Cascade` does over ``replay/`` tiers:

- the router (if any) picks the start tier: the first non-last tier whose model solved at least
  ``skip_below`` of the query's neighbours (unknown rates never skip), else the last tier;
- a tier whose model has no recorded answer is an error attempt: cost 0, escalate;
- the judge decides: ``learned`` accepts when P(correct) ≥ the tier's threshold (the last tier's
  threshold is 0: always accept); ``agreement`` accepts on the last tier outright, rejects an
  answer with nothing extractable for free, else pays every other reference model's recorded
  cost and accepts when ``min_agree`` of them give the same extracted answer; ``any`` / ``all``
  combine the two as :class:`~ecocascade.judges.AnyOf` / :class:`~ecocascade.judges.AllOf` of
  (learned, agreement) do, asking the references only when the learned verdict leaves it open;
  ``reliability`` (:class:`~ecocascade.judges.reliability.ReliabilityJudge`) accepts on the last
  tier outright, rejects an unextractable answer for free, else asks the references one at a time
  in order (skipping the judged model), paying each one asked, and stops when the judged answer's
  posterior under the confusion model reaches ``τ`` (accept) or cannot reach it any more (reject);
- the query's outcome is correct when the accepted answer is; a ladder that ends without an
  accepted answer is wrong. Cost is every attempt's recorded cost plus judge costs.

:func:`grid_scores` evaluates whole grids of thresholds at once (matrix products over items).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from ecocascade.judges.reliability import (
    ConfusionModel,
    posterior_trajectory,
    sequential_decision,
)

__all__ = [
    "THRESHOLD_GRID",
    "Candidate",
    "Outcome",
    "Table",
    "candidates_scores",
    "simulate",
    "start_tiers",
]

Array = npt.NDArray[np.float64]
JudgeKind = Literal["learned", "agreement", "any", "all", "reliability", "none"]
"""``any``: learned OR agreement (AnyOf: the learned judge first, references asked only when it
rejects); ``all``: learned AND agreement (AllOf: references asked only when it accepts)."""
THRESHOLDED = frozenset({"learned", "any", "all"})

THRESHOLD_GRID: tuple[float, ...] = (
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.7,
    0.75,
    0.8,
    0.85,
    0.9,
    0.95,
    0.98,
)
HYBRID_GRID: tuple[float, ...] = (0.5, 0.7, 0.85, 0.95)
TAU_GRID: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.995)
MAX_REFERENCES = 3
ROUTER_GRID: tuple[float | None, ...] = (None, 0.3, 0.5)


@dataclass(frozen=True)
class Reliability:
    """A confusion model and the rows (of a :class:`Table`) it scores, with their answer codes
    as it reads them (-2: the model did not answer)."""

    rows: npt.NDArray[np.int64]
    model: ConfusionModel
    obs: npt.NDArray[np.int64]


@dataclass(frozen=True)
class Table:
    """Per item and model arrays (items in rows, ``models`` in columns)."""

    models: tuple[str, ...]
    correct: Array  # 0/1 (unknown → 0: an unverifiable answer never counts as right)
    cost: Array  # USD (unknown → 0)
    answered: npt.NDArray[np.bool_]
    score: Array  # learned P(correct)
    keys: npt.NDArray[np.int64]  # extracted answer code; -1 = nothing extractable
    route: Array  # router: neighbours' success rate (NaN unknown)
    reliability: tuple[Reliability, ...] = ()
    """Confusion models over row groups (cross-fitted: each group's model never saw its rows)."""
    unit: Array | None = None
    """Per item :func:`~ecocascade.routing.query_unit` of its query (random-share routing)."""

    @property
    def n(self) -> int:
        return int(self.correct.shape[0])

    def mean_cost(self) -> Array:
        return np.asarray(self.cost.mean(axis=0), dtype=np.float64)


@dataclass(frozen=True)
class Candidate:
    """One cascade configuration: ladder (model columns, cheapest first) and judge."""

    ladder: tuple[int, ...]
    judge: JudgeKind = "none"
    thresholds: tuple[float, ...] = ()  # learned: one per non-last tier
    references: tuple[int, ...] = ()  # agreement: model columns asked
    min_agree: int = 1
    skip_below: float | None = None  # history router (None: no router)
    escalate_share: float = 0.0  # RandomShareRouter: this share starts on the last tier

    def describe(self, models: Sequence[str]) -> str:
        ladder = " → ".join(models[m] for m in self.ladder)
        learned = "learned@" + "/".join(f"{t:g}" for t in self.thresholds)
        refs = "+".join(models[r] for r in self.references)
        agree = f"agree({refs}, {self.min_agree})"
        if self.judge == "reliability":
            taus = "/".join(f"{t:g}" for t in self.thresholds)
            ladder = " → ".join(models[m] for m in self.ladder)
            return f"{ladder} [posterior≥{taus} asking {refs or 'nobody'}]{self._share()}"
        judge = {
            "learned": learned,
            "agreement": agree,
            "any": f"{learned} | {agree}",
            "all": f"{learned} & {agree}",
        }.get(self.judge, "accept")
        router = "" if self.skip_below is None else f", router≥{self.skip_below:g}"
        return f"{ladder} [{judge}{router}]{self._share()}"

    def _share(self) -> str:
        return f" + {self.escalate_share:.1%} of queries straight to the last tier" * (
            self.escalate_share > 0
        )


@dataclass(frozen=True)
class Outcome:
    """Per item: correct (0/1), cost (USD), the tier that was accepted (-1: none)."""

    correct: Array
    cost: Array
    tier: npt.NDArray[np.int64] = field(repr=False)

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean()) if len(self.correct) else 0.0

    @property
    def cost_per_query(self) -> float:
        return float(self.cost.mean()) if len(self.cost) else 0.0


def start_tiers(
    table: Table, ladder: Sequence[int], skip_below: float | None
) -> npt.NDArray[np.int64]:
    """The router's start tier per item (all zeros without a router)."""
    start = np.full(table.n, len(ladder) - 1, dtype=np.int64)
    if skip_below is None or len(ladder) == 1:
        return np.zeros(table.n, dtype=np.int64)
    undecided = np.ones(table.n, dtype=bool)
    for j, m in enumerate(ladder[:-1]):
        rate = table.route[:, m]
        keep = np.isnan(rate) | (rate >= skip_below)
        chosen = undecided & keep
        start[chosen] = j
        undecided &= ~keep
    return start


def _agreement(
    table: Table, m: int, references: Sequence[int], min_agree: int
) -> tuple[npt.NDArray[np.bool_], Array]:
    """Accepted, and the judge's cost, for model ``m``'s answers judged by ``references``."""
    key = table.keys[:, m]
    extractable = table.answered[:, m] & (key >= 0)
    others = [r for r in references if r != m]
    agree = np.zeros(table.n, dtype=np.int64)
    judge_cost = np.zeros(table.n)
    for r in others:
        agree += (table.answered[:, r] & (table.keys[:, r] == key)).astype(np.int64)
        judge_cost += table.cost[:, r]
    accepted = extractable & (agree >= min_agree) if others else np.zeros(table.n, dtype=bool)
    return accepted, np.where(extractable, judge_cost, 0.0)


def trajectory(table: Table, m: int, references: Sequence[int]) -> tuple[Array, Array]:
    """Posterior of model ``m``'s answer after 0…k references, and its ceiling (see
    :func:`~ecocascade.judges.reliability.posterior_trajectory`), stitched over row groups."""
    refs = [r for r in references if r != m]
    post = np.zeros((table.n, len(refs) + 1))
    ceil = np.zeros_like(post)
    if not table.reliability:
        raise ValueError("the table has no confusion model")
    for group in table.reliability:
        p, c = posterior_trajectory(group.model, group.obs, m, refs)
        post[group.rows], ceil[group.rows] = p, c
    return post, ceil


def _reliability(
    table: Table,
    m: int,
    references: Sequence[int],
    taus: Sequence[float],
    cache: dict[tuple[int, tuple[int, ...]], tuple[Array, Array]] | None = None,
) -> tuple[Array, Array]:
    """Accept indicators and judge costs, (n, len(taus)), of the reliability judge on ``m``."""
    refs = tuple(r for r in references if r != m)
    key = (m, refs)
    if cache is not None and key in cache:
        post, ceil = cache[key]
    else:
        post, ceil = trajectory(table, m, refs)
        if cache is not None:
            cache[key] = (post, ceil)
    extractable = np.zeros(table.n, dtype=bool)
    for group in table.reliability:
        extractable[group.rows] = group.obs[:, m] >= 0
    ref_costs = table.cost[:, list(refs)] if refs else np.zeros((table.n, 0))
    accept = np.zeros((table.n, len(taus)))
    cost = np.zeros((table.n, len(taus)))
    for g, tau in enumerate(taus):
        a, c, _ = sequential_decision(post, ceil, ref_costs, extractable, tau)
        accept[:, g], cost[:, g] = a, c
    return accept, cost


def _tier_decision(
    table: Table, candidate: Candidate, j: int
) -> tuple[npt.NDArray[np.bool_], Array]:
    m = candidate.ladder[j]
    answered = table.answered[:, m]
    last = j == len(candidate.ladder) - 1
    if last or candidate.judge == "none":
        return answered, np.zeros(table.n)
    if candidate.judge == "agreement":
        return _agreement(table, m, candidate.references, candidate.min_agree)
    if candidate.judge == "reliability":
        accept, judge_cost = _reliability(
            table, m, candidate.references, (candidate.thresholds[j],)
        )
        return accept[:, 0] > 0.5, judge_cost[:, 0]
    confident = answered & (table.score[:, m] >= candidate.thresholds[j])
    if candidate.judge == "learned":
        return confident, np.zeros(table.n)
    agree, judge_cost = _agreement(table, m, candidate.references, candidate.min_agree)
    if candidate.judge == "any":
        return confident | agree, np.where(confident, 0.0, judge_cost)
    return confident & agree, np.where(confident, judge_cost, 0.0)


def simulate(table: Table, candidate: Candidate) -> Outcome:
    """Walk the ladder for every item at once; the reference semantics (see the module doc)."""
    start = start_tiers(table, candidate.ladder, candidate.skip_below)
    if candidate.escalate_share > 0:
        if table.unit is None:
            raise ValueError("random-share routing needs the table's query units")
        start = np.where(table.unit < candidate.escalate_share, len(candidate.ladder) - 1, 0)
    open_ = np.ones(table.n, dtype=bool)
    correct = np.zeros(table.n)
    cost = np.zeros(table.n)
    tier = np.full(table.n, -1, dtype=np.int64)
    for j, m in enumerate(candidate.ladder):
        attempted = open_ & (start <= j)
        accepted, judge_cost = _tier_decision(table, candidate, j)
        cost += np.where(attempted, table.cost[:, m] + judge_cost, 0.0)
        done = attempted & accepted
        correct[done] = table.correct[done, m]
        tier[done] = j
        open_ &= ~done
    return Outcome(correct, cost, tier)


def ladders(n_models: int, order: Array, max_tiers: int = 3) -> Iterator[tuple[int, ...]]:
    """Every subset of up to ``max_tiers`` models, ordered cheapest first by ``order``."""
    ranked = [int(m) for m in np.argsort(order, kind="stable")]
    for size in range(1, max_tiers + 1):
        yield from itertools.combinations(ranked, size)


def _columns(
    table: Table, candidate: Candidate, j: int, grid: Sequence[float]
) -> tuple[Array, Array]:
    """Accept indicators and judge costs of tier ``j`` as columns (one per judge setting)."""
    m = candidate.ladder[j]
    confident = table.answered[:, m, None] & (table.score[:, m, None] >= np.asarray(grid)[None])
    if candidate.judge == "learned":
        return confident.astype(np.float64), np.zeros((table.n, len(grid)))
    agree, judge_cost = _agreement(table, m, candidate.references, candidate.min_agree)
    if candidate.judge == "agreement":
        return agree[:, None].astype(np.float64), judge_cost[:, None]
    if candidate.judge == "any":
        accept = confident | agree[:, None]
        return accept.astype(np.float64), np.where(confident, 0.0, judge_cost[:, None])
    accept = confident & agree[:, None]
    return accept.astype(np.float64), np.where(confident, judge_cost[:, None], 0.0)


def candidates_scores(
    table: Table,
    *,
    max_tiers: int = 3,
    grid: Sequence[float] = THRESHOLD_GRID,
    hybrid_grid: Sequence[float] = HYBRID_GRID,
    routers: Sequence[float | None] = ROUTER_GRID,
    agreement: bool = True,
    learned: bool = True,
    reliability: bool = True,
    taus: Sequence[float] = TAU_GRID,
) -> tuple[list[Candidate], Array, Array]:
    """Mean accuracy and cost per query of every candidate on ``table``, vectorised over the
    threshold grid (matrix products over items). Same semantics as :func:`simulate`."""
    found: list[Candidate] = []
    accuracy: list[float] = []
    cost: list[float] = []
    mc = table.mean_cost()
    ok = table.answered.astype(np.float64)
    judge_families: list[tuple[JudgeKind, tuple[int, ...], int]] = []
    if learned:
        judge_families.append(("learned", (), 1))
    if agreement:
        cols = range(len(table.models))
        judge_families += [("agreement", (r,), 1) for r in cols]
        judge_families += [("agreement", pair, 2) for pair in itertools.combinations(cols, 2)]
    if agreement and learned:
        judge_families += [(mode, (r,), 1) for mode in ("any", "all") for r in cols]
    use_reliability = reliability and bool(table.reliability)
    pool = reference_pool(table) if use_reliability else ()
    cache: dict[tuple[int, tuple[int, ...]], tuple[Array, Array]] = {}
    for ladder in ladders(len(table.models), mc, max_tiers):
        last = ladder[-1]
        if len(ladder) == 1:
            found.append(Candidate(ladder))
            accuracy.append(float((ok[:, last] * table.correct[:, last]).mean()))
            cost.append(float(table.cost[:, last].mean()))
            continue
        if use_reliability:
            for refs in reference_sets(pool, ladder, mc):
                acc_r, cost_r = _reliability_grid(table, ladder, refs, taus, cache)
                found.extend(
                    Candidate(
                        ladder, "reliability", thresholds=(t,) * (len(ladder) - 1), references=refs
                    )
                    for t in taus
                )
                accuracy.extend(acc_r)
                cost.extend(cost_r)
        for skip in routers:
            start = start_tiers(table, ladder, skip)
            for kind, refs, need in judge_families:
                base = Candidate(ladder, kind, references=refs, min_agree=need, skip_below=skip)
                settings = grid if kind == "learned" else hybrid_grid
                acc_c, cost_c, params = _ladder_grid(table, base, start, settings)
                found.extend(
                    Candidate(
                        ladder, kind, thresholds=p, references=refs, min_agree=need, skip_below=skip
                    )
                    for p in params
                )
                accuracy.extend(acc_c)
                cost.extend(cost_c)
    return found, np.asarray(accuracy), np.asarray(cost)


REFERENCE_POOL = 6


def reference_pool(table: Table) -> tuple[int, ...]:
    """The models a reliability judge may ask: the ``REFERENCE_POOL`` most reliable under the
    confusion models (mean over row groups), whatever they cost."""
    reliab = np.mean([g.model.model_accuracy() for g in table.reliability], axis=0)
    order = np.argsort(-reliab, kind="stable")[:REFERENCE_POOL]
    return tuple(int(m) for m in order)


def reference_sets(
    pool: Sequence[int], ladder: Sequence[int], mean_cost: Array
) -> Iterator[tuple[int, ...]]:
    """Reference lists for a ladder: none, or up to ``MAX_REFERENCES`` pool models outside the
    ladder that are cheaper than its last tier — asked cheapest first."""
    usable = sorted(
        (m for m in pool if m not in ladder and mean_cost[m] < mean_cost[ladder[-1]]),
        key=lambda m: (mean_cost[m], m),
    )
    yield ()
    for size in range(1, MAX_REFERENCES + 1):
        yield from itertools.combinations(usable, size)


def _reliability_grid(
    table: Table,
    ladder: tuple[int, ...],
    refs: tuple[int, ...],
    taus: Sequence[float],
    cache: dict[tuple[int, tuple[int, ...]], tuple[Array, Array]],
) -> tuple[list[float], list[float]]:
    """Mean accuracy and cost per ``τ`` (the same ``τ`` on every non-last tier)."""
    last = ladder[-1]
    open_ = np.ones((table.n, len(taus)))
    acc = np.zeros(len(taus))
    cost = np.zeros(len(taus))
    for m in ladder[:-1]:
        accept, judge_cost = _reliability(table, m, refs, taus, cache)
        cost += (open_ * (table.cost[:, m, None] + judge_cost)).sum(0)
        acc += (open_ * accept * table.correct[:, m, None]).sum(0)
        open_ = open_ * (1 - accept)
    cost += (open_ * table.cost[:, last, None]).sum(0)
    acc += (open_ * (table.answered[:, last] * table.correct[:, last])[:, None]).sum(0)
    return list(acc / table.n), list(cost / table.n)


def _ladder_grid(
    table: Table, base: Candidate, start: npt.NDArray[np.int64], grid: Sequence[float]
) -> tuple[list[float], list[float], list[tuple[float, ...]]]:
    n = table.n
    ladder = base.ladder
    columns = [_columns(table, base, j, grid) for j in range(len(ladder) - 1)]
    thresholded = base.judge in THRESHOLDED
    settings = list(grid) if thresholded else [0.0]
    last = ladder[-1]
    k_last = table.cost[:, last]
    c_last = table.answered[:, last] * table.correct[:, last]
    if len(ladder) == 2:
        a1, j1 = columns[0]
        m1 = ladder[0]
        here = (start == 0).astype(np.float64)[:, None]
        ea1 = a1 * here
        cost_m = (here * (table.cost[:, m1, None] + j1)).sum(0) + ((1 - ea1) * k_last[:, None]).sum(
            0
        )
        acc_m = (ea1 * table.correct[:, m1, None]).sum(0) + ((1 - ea1) * c_last[:, None]).sum(0)
        params: list[tuple[float, ...]] = [(t,) if thresholded else () for t in settings]
        return list(acc_m / n), list(cost_m / n), params
    (a1, j1), (a2, j2) = columns
    m1, m2 = ladder[0], ladder[1]
    s0 = (start == 0).astype(np.float64)[:, None]
    s01 = (start <= 1).astype(np.float64)[:, None]
    ea1, ea2 = a1 * s0, a2 * s01
    r1 = 1 - ea1
    cost1 = (s0 * (table.cost[:, m1, None] + j1)).sum(0)  # (G1,)
    cost2 = r1.T @ (s01 * (table.cost[:, m2, None] + j2))  # (G1, G2)
    cost3 = r1.T @ ((1 - ea2) * k_last[:, None])
    acc1 = (ea1 * table.correct[:, m1, None]).sum(0)
    acc2 = r1.T @ (ea2 * table.correct[:, m2, None])
    acc3 = r1.T @ ((1 - ea2) * c_last[:, None])
    cost_m = (cost1[:, None] + cost2 + cost3) / n
    acc_m = (acc1[:, None] + acc2 + acc3) / n
    params = [(t1, t2) for t1 in settings for t2 in settings]
    if not thresholded:
        params = [()]
    return list(acc_m.ravel()), list(cost_m.ravel()), params
