"""The HTML report and its SVG charts: well-formed, and every bar inside its axes."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from ecocascade.eval.metrics import compare_to_reference, percentile, strategy_metrics
from ecocascade.eval.report import render_report
from ecocascade.eval.svg import Series, _nice_ticks, stacked_bars, xy_chart


def outcome(position: int, *, success: bool, tier: int | None, cost: float) -> dict[str, object]:
    return {
        "strategy": "s",
        "position": position,
        "task_id": f"t{position}",
        "query": f"question {position} <b>",
        "success": success,
        "accepted": tier is not None,
        "answer": "x",
        "tier": tier,
        "cache_hit": False,
        "demonstrations": 0,
        "latency_s": 0.1 * (position + 1),
        "attempts": [
            {
                "verdict": "accept" if tier is not None else "reject",
                "correct": success,
                "cost_usd": cost,
                "judge_cost_usd": 0.0,
                "local": False,
                "input_tokens": 10,
                "output_tokens": 2,
            }
        ],
    }


@pytest.mark.parametrize(("low", "high"), [(0, 48), (0, 0.0031), (0, 1), (0, 7), (-3, 12)])
def test_ticks_cover_the_data(low: float, high: float) -> None:
    ticks = _nice_ticks(low, high)
    assert ticks[0] <= low and ticks[-1] >= high
    assert 3 <= len(ticks) <= 8


def test_bars_stay_inside_the_plot() -> None:
    svg = stacked_bars(
        ["a", "b"], [("x", [22, 30], "#000"), ("y", [26, 18], "#111")], title="t", y_label="n"
    )
    root = ET.fromstring(svg)
    tops = [float(r.get("y", 0)) for r in root.iter("{http://www.w3.org/2000/svg}rect")]
    assert min(tops[1:]) >= 28  # the plot's top margin; [0] is the background


def test_charts_are_well_formed_and_escape_labels() -> None:
    svg = xy_chart(
        [Series("<a&b>", [(0.001, 0.5), (0.01, 0.7)], mode="both")],
        title="t",
        x_label="x",
        y_label="y",
        log_x=True,
    )
    ET.fromstring(svg)
    assert "&lt;a&amp;b&gt;" in svg
    assert "no data" in xy_chart([], title="t", x_label="x", y_label="y")


def test_metrics_and_report_of_a_small_run() -> None:
    outcomes = [
        outcome(0, success=True, tier=0, cost=0.001),
        outcome(1, success=False, tier=0, cost=0.001),  # a false accept
        outcome(2, success=False, tier=None, cost=0.001),
    ]
    row = strategy_metrics("s", outcomes, ["cheap"])
    assert row["success_rate"] == pytest.approx(1 / 3)
    assert row["judge_accuracy"] == pytest.approx(2 / 3)
    assert row["false_accepts"] == 1
    assert row["resolved_per_tier"] == {"cheap": 2, "cache": 0, "unresolved": 1}
    assert row["latency_p50_s"] == pytest.approx(0.2)
    compare_to_reference([row], "s")
    assert row["cost_vs_reference"] == 1.0
    results = {
        "scenario": "demo",
        "description": "d",
        "created": "now",
        "complete": True,
        "tasks_total": 3,
        "tiers": ["cheap"],
        "reference": "s",
        "strategies": [row],
    }
    page = render_report(results, {"s": outcomes})
    assert page.count("<svg") == 4
    assert "question 0 &lt;b&gt;" in page
    assert not re.search(r"<script", page)


def test_percentile_matches_numpy_linear() -> None:
    assert percentile([], 50) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 95) == pytest.approx(3.85)
