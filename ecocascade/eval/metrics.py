"""Per-strategy metrics, computed from task outcomes (so a partial run has honest metrics too)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["compare_to_reference", "percentile", "strategy_metrics"]


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default method); ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def strategy_metrics(
    name: str,
    outcomes: Sequence[Mapping[str, Any]],
    tier_labels: Sequence[str],
    *,
    demos: bool = True,
    cache: bool = True,
) -> dict[str, Any]:
    """The summary of one strategy over its task outcomes (dicts as written to tasks.jsonl).

    Every ``*_rate`` is a share of all the strategy's tasks, except ``judge_accuracy`` (of judged
    attempts), ``false_accept_rate`` (of accepted attempts) and ``success_after_demo`` (of tasks
    that got a demonstration). A rate is ``None`` when there was nothing to count — and the demo
    and cache rates are ``None`` for a strategy without a store or a cache.
    Costs sum what is known; ``unpriced_tasks`` counts tasks with a part of unknown price (their
    known part is still included, so the total is then a lower bound). ``paid_cost_usd`` and
    ``local_cost_usd`` split the models' cost by tier; ``judge_cost_usd`` is the judges' own.
    """
    n = len(outcomes)
    successes = sum(1 for o in outcomes if o["success"])
    accepted = sum(1 for o in outcomes if o["accepted"])
    cache_hits = sum(1 for o in outcomes if o["cache_hit"])
    with_demos = [o for o in outcomes if o["demonstrations"] > 0]
    escalated = sum(1 for o in outcomes if len(o["attempts"]) > 1)

    judged = [a for o in outcomes for a in o["attempts"] if a["verdict"] in ("accept", "reject")]
    scored = [a for a in judged if a.get("correct") is not None]
    agree = sum(1 for a in scored if (a["verdict"] == "accept") == a["correct"])
    false_accepts = sum(1 for a in scored if a["verdict"] == "accept" and not a["correct"])
    false_rejects = sum(1 for a in scored if a["verdict"] == "reject" and a["correct"])

    paid = local = judging = 0.0
    unpriced = 0
    for o in outcomes:
        task_unpriced = False
        for a in o["attempts"]:
            if a["cost_usd"] is None:
                task_unpriced = True
            elif a["local"]:
                local += a["cost_usd"]
            else:
                paid += a["cost_usd"]
            if a["judge_cost_usd"] is None:
                task_unpriced = True
            else:
                judging += a["judge_cost_usd"]
        unpriced += task_unpriced
    total = paid + local + judging

    resolved: dict[str, int] = {label: 0 for label in tier_labels}
    resolved["cache"] = 0
    resolved["unresolved"] = 0
    for o in outcomes:
        if o["cache_hit"]:
            resolved["cache"] += 1
        elif o["accepted"] and o["tier"] is not None and o["tier"] < len(tier_labels):
            resolved[tier_labels[o["tier"]]] += 1
        else:
            resolved["unresolved"] += 1

    latencies = [o["latency_s"] for o in outcomes]
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    return {
        "name": name,
        "tiers": list(tier_labels),
        "tasks": n,
        "successes": successes,
        "success_rate": _rate(successes, n),
        "accepted_rate": _rate(accepted, n),
        "judge_accuracy": _rate(agree, len(scored)),
        "judged_attempts": len(scored),
        "false_accepts": false_accepts,
        "false_rejects": false_rejects,
        "false_accept_rate": _rate(
            false_accepts, sum(1 for a in scored if a["verdict"] == "accept")
        ),
        "total_cost_usd": total,
        "paid_cost_usd": paid,
        "local_cost_usd": local,
        "judge_cost_usd": judging,
        "unpriced_tasks": unpriced,
        "cost_per_query_usd": total / n if n else None,
        "cost_per_success_usd": total / successes if successes else None,
        "resolved_per_tier": resolved,
        "escalation_rate": _rate(escalated, n),
        "demo_hit_rate": _rate(len(with_demos), n) if demos else None,
        "success_after_demo": _rate(sum(1 for o in with_demos if o["success"]), len(with_demos)),
        "cache_hit_rate": _rate(cache_hits, n) if cache else None,
        "latency_p50_s": None if p50 is None else round(p50, 4),
        "latency_p95_s": None if p95 is None else round(p95, 4),
        "input_tokens": sum(a["input_tokens"] for o in outcomes for a in o["attempts"]),
        "output_tokens": sum(a["output_tokens"] for o in outcomes for a in o["attempts"]),
        "cached_input_tokens": sum(
            a.get("cached_input_tokens", 0) for o in outcomes for a in o["attempts"]
        ),
        "model_calls": sum(len(o["attempts"]) for o in outcomes),
    }


def compare_to_reference(strategies: list[dict[str, Any]], reference: str | None) -> None:
    """Add ``cost_vs_reference`` (ratio of cost per query: fair when a run was interrupted
    part-way) and ``success_vs_reference`` (difference of success rates) against the reference
    strategy — the ladder's last tier alone."""
    ref = next((s for s in strategies if s["name"] == reference), None)
    for s in strategies:
        s["reference"] = reference if ref is not None else None
        if ref is None:
            s["cost_vs_reference"] = s["success_vs_reference"] = None
            continue
        ref_cost = ref["cost_per_query_usd"]
        mine = s["cost_per_query_usd"]
        s["cost_vs_reference"] = mine / ref_cost if ref_cost and mine is not None else None
        if s["success_rate"] is None or ref["success_rate"] is None:
            s["success_vs_reference"] = None
        else:
            s["success_vs_reference"] = s["success_rate"] - ref["success_rate"]
