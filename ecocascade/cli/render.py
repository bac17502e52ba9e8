"""Human-readable output for the CLI (rich)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from ecocascade.controller.result import CascadeResult

__all__ = ["format_cost", "print_demo", "print_result"]

_VERDICT_STYLE = {"accept": "green", "reject": "yellow", "error": "red"}


def format_cost(cost: float | None) -> str:
    return "unknown" if cost is None else f"${cost:.6f}"


def total_cost_line(result: CascadeResult) -> str:
    if result.cost_usd is not None:
        return f"total cost {format_cost(result.cost_usd)}"
    return (
        f"total cost ≥ {format_cost(result.known_cost_usd)} — price unknown for "
        f"{', '.join(result.unpriced)} (set a price override on the tier)"
    )


def attempts_table(result: CascadeResult) -> Table:
    table = Table(show_header=True, header_style="bold")
    table.add_column("tier", justify="right")
    table.add_column("model")
    table.add_column("verdict")
    table.add_column("tokens", justify="right")
    table.add_column("cost", justify="right")
    table.add_column("time", justify="right")
    table.add_column("why", overflow="fold", ratio=1)
    for a in result.attempts:
        style = _VERDICT_STYLE[a.verdict]
        why = a.reason if a.error is None else f"{a.error}" + (f": {a.reason}" if a.reason else "")
        if a.retries:
            why += f" (after {a.retries} retr{'y' if a.retries == 1 else 'ies'})"
        table.add_row(
            str(a.tier),
            a.model,
            f"[{style}]{a.verdict}[/{style}]",
            f"{a.usage.input_tokens}+{a.usage.output_tokens}"
            + (f" ({a.usage.cached_input_tokens} cached)" if a.usage.cached_input_tokens else ""),
            format_cost(a.total_cost_usd),
            f"{a.latency_s + a.judge_latency_s:.2f}s",
            why,
        )
    return table


def print_result(result: CascadeResult, console: Console | None = None) -> None:
    console = console or Console()
    console.print(attempts_table(result))
    if result.success:
        console.print(f"[bold green]answered by tier {result.tier} ({result.model})[/]")
        console.print(result.answer or "", markup=False, highlight=False)
    else:
        why = {"budget": "stopped by the budget", "exhausted": "every tier failed"}
        console.print(
            f"[bold red]not resolved: {why.get(result.stop_reason, result.stop_reason)}[/]"
        )
    console.print(total_cost_line(result))


def print_demo(results: Sequence[CascadeResult], console: Console | None = None) -> None:
    console = console or Console()
    for result in results:
        console.rule(result.query, style="dim")
        print_result(result, console)
    console.rule("summary", style="bold")
    console.print(summary_line(results))


def summary_line(results: Sequence[CascadeResult]) -> str:
    """``8 queries: 3 resolved on tier 0, 4 on tier 1, 1 unresolved; total cost $0 …``"""
    by_tier: dict[int, int] = {}
    for r in results:
        if r.tier is not None:
            by_tier[r.tier] = by_tier.get(r.tier, 0) + 1
    parts = [f"{n} on tier {t}" for t, n in sorted(by_tier.items())]
    unresolved = sum(1 for r in results if not r.success)
    known = sum(r.known_cost_usd for r in results)
    unknown = any(r.cost_usd is None for r in results)
    cost = f"≥ ${known:.6f} (some prices unknown)" if unknown else f"${known:.6f}"
    seconds = sum(r.latency_s for r in results)
    return (
        f"{len(results)} queries: resolved {', '.join(parts) or 'none'}; {unresolved} unresolved;"
        f" total cost {cost}; model+judge time {seconds:.1f}s"
    )
