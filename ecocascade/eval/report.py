"""The eval's self-contained HTML report: summary table, charts, and every task's outcome."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from ecocascade.eval.svg import Series, color, stacked_bars, xy_chart

__all__ = ["render_report", "write_report"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;
max-width:1180px;color:#111;padding:0 16px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px}
.meta{color:#555;font-size:13px;margin-bottom:12px}
.warn{background:#fff4e5;border:1px solid #f0b35e;padding:8px 12px;border-radius:6px}
table{border-collapse:collapse;font-size:13px;width:100%}
th,td{padding:5px 8px;border-bottom:1px solid #e3e3e3;text-align:right}
td{white-space:nowrap} th{vertical-align:bottom;font-weight:600}
th{background:#f6f6f6;position:sticky;top:0} td:first-child,th:first-child{text-align:left}
tr.ref td{background:#f3f8ff}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:16px}
.ok{color:#0a7a3d}.bad{color:#b42318}.muted{color:#888}
details{margin-top:8px} summary{cursor:pointer;color:#0b5cad}
.scroll{overflow-x:auto;max-height:640px;overflow-y:auto}
"""


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def _usd(value: float | None) -> str:
    if value is None:
        return "–"
    return "$0" if value == 0 else f"${value:.6f}" if value < 0.01 else f"${value:.4f}"


def _secs(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}s"


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def _points(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:+.0f} pt"


SUMMARY_COLUMNS: tuple[tuple[str, str | None, Any], ...] = (
    ("success", "success_rate", _pct),
    ("judge acc.", "judge_accuracy", _pct),
    ("false accepts", "false_accepts", str),
    ("cost", "total_cost_usd", _usd),
    ("$/success", "cost_per_success_usd", _usd),
    ("cost vs ref.", "cost_vs_reference", _ratio),
    ("success vs ref.", "success_vs_reference", _points),
    ("escalated", "escalation_rate", _pct),
    ("demo hits", "demo_hit_rate", _pct),
    ("success w/ demo", "success_after_demo", _pct),
    ("cache hits", "cache_hit_rate", _pct),
    ("p50", "latency_p50_s", _secs),
    ("p95", "latency_p95_s", _secs),
    ("tokens in/out", None, None),
)


def _summary_table(results: dict[str, Any]) -> str:
    head = "".join(f"<th>{escape(title)}</th>" for title, _, _ in SUMMARY_COLUMNS)
    rows = []
    for s in results["strategies"]:
        cells = []
        for _, key, fmt in SUMMARY_COLUMNS:
            if key is None:
                cells.append(f"<td>{s['input_tokens']:,} / {s['output_tokens']:,}</td>")
            else:
                cells.append(f"<td>{escape(fmt(s[key]))}</td>")
        css = ' class="ref"' if s["name"] == results.get("reference") else ""
        rows.append(f"<tr{css}><td>{escape(s['name'])}</td>{''.join(cells)}</tr>")
    return (
        f'<div class="scroll"><table><tr><th>strategy</th>{head}</tr>{"".join(rows)}</table></div>'
    )


def _resolved_labels(strategies: list[dict[str, Any]]) -> list[str]:
    """Every tier any strategy used, in ladder order, then ``cache`` and ``unresolved``."""
    labels: list[str] = []
    for s in strategies:
        for label in s["resolved_per_tier"]:
            if label not in labels and label not in ("cache", "unresolved"):
                labels.append(label)
    return [*labels, "cache", "unresolved"]


def _resolved_table(results: dict[str, Any]) -> str:
    labels = _resolved_labels(results["strategies"])
    head = "".join(f"<th>{escape(label)}</th>" for label in labels)
    rows = []
    for s in results["strategies"]:
        counts = s["resolved_per_tier"]
        cells = "".join(
            f"<td>{counts[label]}</td>" if label in counts else '<td class="muted">–</td>'
            for label in labels
        )
        rows.append(f"<tr><td>{escape(s['name'])}</td>{cells}</tr>")
    return f"<table><tr><th>strategy</th>{head}</tr>{''.join(rows)}</table>"


def _charts(results: dict[str, Any], outcomes: dict[str, list[dict[str, Any]]]) -> list[str]:
    strategies = results["strategies"]
    charts = []
    costs = [s["total_cost_usd"] for s in strategies]
    log_cost = all(c > 0 for c in costs) and max(costs) / min(costs) > 20
    charts.append(
        xy_chart(
            [
                Series(s["name"], [(s["total_cost_usd"], s["success_rate"] or 0.0)], color(i))
                for i, s in enumerate(strategies)
            ],
            title="Cost vs success, per strategy (up and left is better)",
            x_label="total cost (USD)" + (", log scale" if log_cost else ""),
            y_label="success rate (ground truth)",
            x_unit="$",
            y_unit="%",
            log_x=log_cost,
            y_range=(0.0, 1.0),
        )
    )
    labels = _resolved_labels(strategies)
    fills = {label: color(i) for i, label in enumerate(labels)}
    fills["unresolved"] = "#bbbbbb"
    charts.append(
        stacked_bars(
            [s["name"] for s in strategies],
            [
                (label, [s["resolved_per_tier"].get(label, 0) for s in strategies], fills[label])
                for label in labels
            ],
            title="Where each query was resolved",
            y_label="tasks",
        )
    )
    success_series, cost_series = [], []
    for i, s in enumerate(strategies):
        done = sorted(outcomes.get(s["name"], []), key=lambda o: o["position"])
        wins = spent = 0.0
        success_points, cost_points = [], []
        for n, o in enumerate(done, 1):
            wins += o["success"]
            spent += sum(
                (a["cost_usd"] or 0.0) + (a["judge_cost_usd"] or 0.0) for a in o["attempts"]
            )
            success_points.append((float(n), wins / n))
            cost_points.append((float(n), spent))
        success_series.append(Series(s["name"], success_points, color(i), mode="line"))
        cost_series.append(Series(s["name"], cost_points, color(i), mode="line"))
    charts.append(
        xy_chart(
            success_series,
            title="Success so far, over task order",
            x_label="tasks processed",
            y_label="success rate so far",
            y_unit="%",
            y_range=(0.0, 1.0),
        )
    )
    charts.append(
        xy_chart(
            cost_series,
            title="Cumulative cost, over task order",
            x_label="tasks processed",
            y_label="cost so far (USD)",
            y_unit="$",
        )
    )
    return charts


def _task_table(results: dict[str, Any], outcomes: dict[str, list[dict[str, Any]]]) -> str:
    names = [s["name"] for s in results["strategies"]]
    by_task: dict[str, dict[str, dict[str, Any]]] = {}
    order: list[tuple[int, str, str]] = []
    for name in names:
        for o in outcomes.get(name, []):
            if o["task_id"] not in by_task:
                by_task[o["task_id"]] = {}
                order.append((o["position"], o["task_id"], o["query"]))
            by_task[o["task_id"]][name] = o
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    rows = []
    for position, task_id, query in sorted(order):
        cells = []
        for name in names:
            got = by_task[task_id].get(name)
            if got is None:
                cells.append('<td class="muted">not run</td>')
                continue
            mark = '<span class="ok">✓</span>' if got["success"] else '<span class="bad">✗</span>'
            where = (
                "cache"
                if got["cache_hit"]
                else (f"tier {got['tier']}" if got["accepted"] else "unresolved")
            )
            answer = escape((got["answer"] or "")[:300])
            cells.append(f'<td title="{answer}">{mark} {escape(where)}</td>')
        rows.append(
            f"<tr><td>{position + 1}. {escape(task_id)}"
            f' <span class="muted">{escape(query[:80])}</span></td>{"".join(cells)}</tr>'
        )
    return f'<div class="scroll"><table><tr><th>task</th>{head}</tr>{"".join(rows)}</table></div>'


def render_report(results: dict[str, Any], outcomes: dict[str, list[dict[str, Any]]]) -> str:
    """The report page for ``results`` (as in results.json) and the per-task ``outcomes``."""
    title = f"ecocascade eval — {results['scenario']}"
    status = ""
    if not results["complete"]:
        why = "it was interrupted" if results.get("interrupted") else "it stopped on an error"
        status = (
            f'<p class="warn">This run did not finish ({why}): the numbers cover the tasks '
            "that completed.</p>"
        )
    if results.get("replay_misses"):
        status += (
            f'<p class="warn">{results["replay_misses"]} model calls were not in the recording '
            "being replayed: the run diverged from it.</p>"
        )
    ref = results.get("reference")
    ref_note = (
        f"“vs ref.” compares with <b>{escape(ref)}</b>: the ladder's last tier alone."
        if ref
        else "No single-tier strategy ran, so there is no reference for the relative columns."
    )
    charts = "".join(f"<div>{svg}</div>" for svg in _charts(results, outcomes))
    description = escape(results.get("description") or "")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{escape(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{escape(title)}</h1>
<div class="meta">{description}<br>
{results["tasks_total"]} tasks · tiers: {escape(" → ".join(results["tiers"]))} ·
created {escape(results["created"])}</div>
{status}
<h2>Summary</h2>
<p class="meta">Success is scored by ground truth on each strategy's final answer (the accepted
one, else the last tier's). Judge accuracy compares the runtime judge's verdicts with ground truth;
a false accept is a wrong answer passed off as right. {ref_note}</p>
{_summary_table(results)}
<h2>Charts</h2>
<div class="charts">{charts}</div>
<h2>Resolved per tier</h2>
{_resolved_table(results)}
<h2>Every task</h2>
<details><summary>Show the outcome of every task under every strategy</summary>
{_task_table(results, outcomes)}</details>
</body></html>
"""


def write_report(
    out_dir: Path, results: dict[str, Any], outcomes: dict[str, list[dict[str, Any]]]
) -> Path:
    path = out_dir / "report.html"
    path.write_text(render_report(results, outcomes), encoding="utf-8")
    return path


def load_outcomes(tasks_jsonl: Path, names: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Read ``tasks.jsonl`` back, grouped by strategy (to re-render a report from files)."""
    import json

    grouped: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    with tasks_jsonl.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                o = json.loads(line)
                grouped.setdefault(o["strategy"], []).append(o)
    return grouped
