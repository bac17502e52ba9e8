"""``ecocascade eval``: run a scenario's strategies side by side, with a live progress bar."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from ecocascade.eval.runner import EvalRun

__all__ = ["eval_command"]


def eval_command(
    scenario: Annotated[
        Path, typer.Argument(help="Scenario file (YAML), e.g. scenarios/quickstart.yaml.")
    ],
    strategies: Annotated[
        str | None,
        typer.Option(
            "--strategies",
            "-s",
            help="Comma-separated: singles, only:<tier>, hierarchy, hierarchy+demos, "
            "hierarchy+demos+cache, or a custom name from the scenario. Default: the scenario's.",
        ),
    ] = None,
    tier: Annotated[
        list[str] | None,
        typer.Option("--tier", "-t", help="Replace the scenario's ladder; repeat, cheapest first."),
    ] = None,
    api_base: Annotated[
        str | None, typer.Option("--api-base", help="api_base for the --tier models.")
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", help="Run only the first N tasks.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Output directory (default: runs/<scenario>-<time>)."),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", help="Tasks in flight at once, per strategy.")
    ] = 1,
    record: Annotated[
        Path | None, typer.Option("--record", help="Save every model response to this file.")
    ] = None,
    replay: Annotated[
        Path | None,
        typer.Option("--replay", help="Answer from a --record file instead of calling models."),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option("--store", help="Reuse this solution store instead of a fresh one each."),
    ] = None,
    cache: Annotated[
        str | None, typer.Option("--cache", help="Reuse this cache instead of a fresh one each.")
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="Log events shown (stderr).")] = (
        "warning"
    ),
) -> int:
    """Run a scenario: each strategy on the same tasks, scored by ground truth.

    Writes DIR/results.json (metrics per strategy), DIR/tasks.jsonl (every attempt of every
    task) and DIR/report.html (tables and charts). Ctrl-C stops early and keeps partial results.
    """
    import asyncio
    import contextlib
    import sys

    from rich.console import Console

    from ecocascade.cli.logs import configure_logging
    from ecocascade.config.schema import TierSpec
    from ecocascade.eval.runner import run_eval
    from ecocascade.eval.scenario import load_scenario
    from ecocascade.exceptions import ConfigError
    from ecocascade.models.tape import Tape

    configure_logging(log_level, json=False)
    if record is not None and replay is not None:
        raise ConfigError("use --record or --replay, not both", where="--record/--replay")
    spec = load_scenario(scenario)
    tiers = [TierSpec(model=m, api_base=api_base) for m in tier] if tier else None
    names = [n.strip() for n in strategies.split(",") if n.strip()] if strategies else None
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = out or Path("runs") / f"{spec.name}-{stamp}"
    tape = Tape(replay, "replay") if replay else Tape(record, "record") if record else None
    err = Console(stderr=True)
    progress = _Progress(err)
    run_holder: dict[str, EvalRun] = {}

    async def go() -> EvalRun:
        run = await run_eval(
            spec,
            out_dir=out_dir,
            strategies=names,
            tiers=tiers,
            limit=limit,
            concurrency=concurrency,
            store_location=store,
            cache_location=cache,
            on_task=progress.task_done,
            on_strategy=progress.strategy_started,
        )
        run_holder["run"] = run
        return run

    try:
        with tape or contextlib.nullcontext(), progress:
            run = asyncio.run(go())
    except KeyboardInterrupt:
        if (out_dir / "results.json").exists():
            err.print(f"interrupted — partial results in {out_dir / 'results.json'}")
        raise
    # Piped output (CI logs, `| tee`) gets the full table rather than rich's 80-column default.
    console = Console() if sys.stdout.isatty() else Console(width=120)
    print_summary(run.results(), console)
    console.print(
        f"\nreport: {out_dir / 'report.html'}\nresults: {out_dir / 'results.json'}"
        f" · every attempt: {out_dir / 'tasks.jsonl'}"
    )
    if run.replay_misses:
        err.print(
            f"[yellow]warning: {run.replay_misses} model calls were not in {replay}: "
            "this run diverged from the recording[/]"
        )
    return 0


class _Progress:
    """One progress bar per strategy: tasks done, running cost, success so far."""

    def __init__(self, console: Console) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._bar = Progress(
            TextColumn("{task.description:<26}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            console=console,
            transient=False,
        )
        self._current: Any = None
        self._started = False

    def __enter__(self) -> _Progress:
        return self  # the bar starts with the first strategy: an error before it prints alone

    def __exit__(self, *exc: object) -> None:
        if self._started:
            self._bar.stop()

    def strategy_started(self, strategy: Any, total: int) -> None:
        if not self._started:
            self._bar.start()
            self._started = True
        self._current = self._bar.add_task(strategy.name, total=total, stats="")

    def task_done(self, strategy: Any, outcome: dict[str, Any], done: list[dict[str, Any]]) -> None:
        cost = sum(
            (a["cost_usd"] or 0.0) + (a["judge_cost_usd"] or 0.0)
            for o in done
            for a in o["attempts"]
        )
        wins = sum(1 for o in done if o["success"])
        stats = f"${cost:.5f} · success {wins}/{len(done)}"
        self._bar.update(self._current, advance=1, stats=stats)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def _usd(value: float | None) -> str:
    return "–" if value is None else f"${value:.5f}"


def print_summary(results: dict[str, Any], console: Console) -> None:
    """The summary table (fits 100 columns), then where each strategy resolved its tasks."""
    from rich import box
    from rich.table import Table

    status = "" if results["complete"] else " (partial: interrupted)"
    table = Table(
        title=f"{results['scenario']}: {results['tasks_total']} tasks{status}",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    columns = (
        "strategy",
        "success",
        "judge",
        "FA",
        "cost $",
        "vs ref.",
        "escal.",
        "demos",
        "cache",
        "p50",
        "p95",
    )
    for column in columns:
        if column == "strategy":
            table.add_column(column, no_wrap=True)
        else:
            table.add_column(column, justify="right", no_wrap=True)
    for s in results["strategies"]:
        ratio = s["cost_vs_reference"]
        table.add_row(
            s["name"],
            _pct(s["success_rate"]),
            _pct(s["judge_accuracy"]),
            str(s["false_accepts"]),
            f"{s['total_cost_usd']:.5f}",
            "–" if ratio is None else f"{ratio:.2f}×",
            _pct(s["escalation_rate"]),
            _pct(s["demo_hit_rate"]),
            _pct(s["cache_hit_rate"]),
            "–" if s["latency_p50_s"] is None else f"{s['latency_p50_s']:.2f}s",
            "–" if s["latency_p95_s"] is None else f"{s['latency_p95_s']:.2f}s",
        )
    console.print(table)
    reference = results["reference"] or "(no single-tier reference ran)"
    console.print(
        "judge: verdicts agreeing with ground truth · FA: false accepts (wrong answers the judge"
        f" passed) · vs ref.: cost relative to {reference}\nresolved per tier:"
    )
    for s in results["strategies"]:
        resolved = ", ".join(f"{label} {n}" for label, n in s["resolved_per_tier"].items() if n)
        console.print(f"  {s['name']}: {resolved}")
