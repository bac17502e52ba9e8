"""Run a scenario's strategies side by side on the same tasks and score them by ground truth.

Each strategy is a real :class:`~ecocascade.controller.cascade.Cascade` — the same controller,
judges, solution store and cache a user runs — built fresh for the strategy: its own empty
solution store and cache in a temporary directory unless the scenario (or the caller) names one
to reuse. Tasks run in scenario order, so the store grows as it would in use.

Results stream to ``tasks.jsonl`` (one line per task and strategy, every attempt inside);
``results.json`` is rewritten after every strategy and once more if the run is interrupted,
so a Ctrl-C leaves valid, partial results.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from ecocascade.config.schema import JudgeSpec, TierSpec
from ecocascade.eval.checks import Scorer
from ecocascade.eval.metrics import compare_to_reference, strategy_metrics
from ecocascade.eval.report import write_report
from ecocascade.eval.scenario import (
    BUILTIN_STRATEGIES,
    Scenario,
    ScenarioTask,
    check_unique_labels,
)
from ecocascade.exceptions import ConfigError
from ecocascade.judging import ask_judge
from ecocascade.text import mask_secrets_in
from ecocascade.types import Judge, JudgeContext, Solver, Verdict

__all__ = ["EvalRun", "Strategy", "TaskOutcome", "resolve_strategies", "run_eval"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Strategy:
    """One way of answering the tasks: a ladder, and whether it uses demonstrations and cache."""

    name: str
    tiers: tuple[TierSpec, ...]
    demos: bool = False
    cache: bool = False
    judge: JudgeSpec | None = None  # overrides the scenario's judges for every task

    @property
    def labels(self) -> list[str]:
        return [_label(t) for t in self.tiers]


def _label(tier: TierSpec) -> str:
    return tier.name or tier.model


def resolve_strategies(
    scenario: Scenario, names: Sequence[str] | None = None, tiers: Sequence[TierSpec] | None = None
) -> list[Strategy]:
    """Turn strategy names into strategies: ``singles`` (each tier alone), ``only:<tier>``,
    ``hierarchy``, ``hierarchy+demos``, ``hierarchy+demos+cache`` and the scenario's ``custom``
    ladders. ``tiers`` replaces the scenario's ladder (the CLI's ``--tier``)."""
    ladder = tuple(tiers) if tiers else tuple(scenario.tiers)
    try:
        check_unique_labels(ladder)
    except ValueError as error:
        raise ConfigError(str(error), where="--tier") from None
    custom = {c.name: c for c in scenario.custom}
    wanted = list(names) if names else list(scenario.strategies)
    strategies: list[Strategy] = []
    for name in wanted:
        if name == "singles":
            strategies += [Strategy(f"only:{_label(t)}", (t,)) for t in ladder]
        elif name.startswith("only:"):
            strategies.append(Strategy(name, (_find_tier(ladder, name[5:], where=name),)))
        elif name == "hierarchy":
            strategies.append(Strategy(name, ladder))
        elif name == "hierarchy+demos":
            strategies.append(Strategy(name, ladder, demos=True))
        elif name == "hierarchy+demos+cache":
            strategies.append(Strategy(name, ladder, demos=True, cache=True))
        elif name in custom:
            spec = custom[name]
            picked = tuple(
                t if isinstance(t, TierSpec) else _find_tier(ladder, t, where=name)
                for t in spec.tiers
            )
            strategies.append(Strategy(name, picked, spec.demos, spec.cache, spec.judge))
        else:
            known = [*BUILTIN_STRATEGIES, *custom, "only:<tier>"]
            raise ConfigError(
                f"unknown strategy {name!r}; expected one of {', '.join(known)}",
                where="--strategies",
            )
    seen: set[str] = set()
    unique = []
    for s in strategies:
        if s.name not in seen:
            seen.add(s.name)
            unique.append(s)
    return unique


def _find_tier(ladder: Sequence[TierSpec], ref: int | str, *, where: str) -> TierSpec:
    if isinstance(ref, int):
        if 0 <= ref < len(ladder):
            return ladder[ref]
        raise ConfigError(f"no tier {ref}: the ladder has {len(ladder)}", where=where)
    for tier in ladder:
        if ref in (tier.name, tier.model):
            return tier
    labels = ", ".join(_label(t) for t in ladder)
    raise ConfigError(f"no tier named {ref!r} (tiers: {labels})", where=where)


_CURRENT_TASK: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "ecocascade_eval_task", default=None
)


class _TaskJudge:
    """The runtime judge for a scenario whose tasks have their own judges: the one of the task
    being run (set per task by the runner; two tasks may share a query but not a judge)."""

    def __init__(self, by_task: dict[str, Judge]) -> None:
        self.by_task = by_task

    @property
    def name(self) -> str:
        return "per-task(" + ", ".join(sorted({j.name for j in self.by_task.values()})) + ")"

    async def judge(self, query: str, answer: str, context: JudgeContext | None = None) -> Verdict:
        task_id = _CURRENT_TASK.get()
        judge = self.by_task.get(task_id) if task_id is not None else None
        if judge is None:  # only reachable from outside the eval runner
            return Verdict(False, "no task is being run: no judge", judge=self.name)
        return await ask_judge(judge, query, answer, context)


def _build_judge(scenario: Scenario, tasks: Sequence[ScenarioTask], strategy: Strategy) -> Judge:
    if strategy.judge is not None:
        return strategy.judge.build()
    built: dict[str, Judge] = {}
    by_task: dict[str, Judge] = {}
    for task in tasks:
        key = scenario.judge_for(task).model_dump_json()
        if key not in built:
            built[key] = scenario.judge_for(task).build()
        by_task[task.id] = built[key]
    if len(built) == 1:
        return next(iter(built.values()))
    return _TaskJudge(by_task)


def _build_solver(scenario: Scenario) -> Solver:
    from ecocascade.controller.solvers import ChatSolver

    if scenario.solver.type == "chat":
        return ChatSolver(demo_style=scenario.solver.demo_style)
    from ecocascade.eval.solvers import code_solver  # the AutoGen code-writing agent

    solver: Solver = code_solver(scenario)
    return solver


@dataclass(slots=True)
class TaskOutcome:
    """One task under one strategy, as written to ``tasks.jsonl``."""

    data: dict[str, Any]

    @property
    def success(self) -> bool:
        return bool(self.data["success"])


@dataclass(slots=True)
class EvalRun:
    """Everything an eval produced; ``outcomes`` maps strategy name → outcomes in task order."""

    scenario: Scenario
    strategies: list[Strategy]
    tasks: list[ScenarioTask]
    out_dir: Path
    created: str
    ladder: tuple[TierSpec, ...] = ()  # the scenario's tiers, or the --tier override
    outcomes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    complete: bool = False
    interrupted: bool = False
    replay_misses: int = 0

    @property
    def reference(self) -> str | None:
        """The strongest single tier (the ladder's last) alone, if that strategy ran."""
        singles = [s for s in self.strategies if len(s.tiers) == 1 and s.name.startswith("only:")]
        for s in singles:
            if s.tiers[0] == self.ladder[-1]:
                return s.name
        return singles[-1].name if singles else None

    def summary(self) -> list[dict[str, Any]]:
        rows = [
            strategy_metrics(s.name, self.outcomes[s.name], s.labels, demos=s.demos, cache=s.cache)
            for s in self.strategies
            if s.name in self.outcomes
        ]
        compare_to_reference(rows, self.reference)
        return rows

    def results(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.name,
            "description": self.scenario.description,
            "created": self.created,
            "complete": self.complete,
            "interrupted": self.interrupted,
            "tasks_total": len(self.tasks),
            "tiers": [_label(t) for t in self.ladder],
            "reference": self.reference,
            "replay_misses": self.replay_misses,
            "strategies": self.summary(),
        }

    def write_results(self) -> Path:
        path = self.out_dir / "results.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.results(), indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)  # atomic: a reader never sees half a file
        return path


ProgressCallback = Callable[[Strategy, dict[str, Any], list[dict[str, Any]]], None]


async def run_eval(
    scenario: Scenario,
    *,
    out_dir: str | Path,
    strategies: Sequence[str] | None = None,
    tiers: Sequence[TierSpec] | None = None,
    limit: int | None = None,
    concurrency: int = 1,
    store_location: str | None = None,
    cache_location: str | None = None,
    on_task: ProgressCallback | None = None,
    on_strategy: Callable[[Strategy, int], None] | None = None,
) -> EvalRun:
    """Run every strategy over the scenario's tasks; write ``tasks.jsonl`` and ``results.json``
    into ``out_dir``. Cancellation (Ctrl-C) writes partial results, then propagates."""
    if concurrency < 1:
        raise ConfigError(f"must be >= 1, got {concurrency}", where="--concurrency")
    if limit is not None and limit < 1:
        raise ConfigError(f"must be >= 1, got {limit}", where="--limit")
    tasks = scenario.load_tasks()[:limit]
    chosen = resolve_strategies(scenario, strategies, tiers)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (once, before anything runs)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError("not a directory: a file has that name", where=str(out)) from None
    except OSError as error:
        raise ConfigError(f"cannot create: {error.strerror or error}", where=str(out)) from None
    run = EvalRun(
        scenario=scenario,
        strategies=chosen,
        tasks=tasks,
        out_dir=out,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        ladder=tuple(tiers) if tiers else tuple(scenario.tiers),
    )
    scorers = {task.id: Scorer(task.check) for task in tasks}
    solver = _build_solver(scenario)
    await _warm_up_local_tiers(chosen)
    with (out / "tasks.jsonl").open("w", encoding="utf-8") as sink:
        try:
            for strategy in chosen:
                if on_strategy is not None:
                    on_strategy(strategy, len(tasks))
                await _run_strategy(
                    run,
                    strategy,
                    solver,
                    scorers,
                    sink,
                    concurrency=concurrency,
                    store_location=store_location,
                    cache_location=cache_location,
                    on_task=on_task,
                )
                run.write_results()
            run.complete = True
        except (asyncio.CancelledError, KeyboardInterrupt):
            run.interrupted = True
            raise
        finally:
            from ecocascade.models.tape import active_tape

            tape = active_tape()
            run.replay_misses = tape.misses if tape is not None else 0
            run.write_results()
            write_report(out, run.results(), run.outcomes)
    return run


async def _warm_up_local_tiers(strategies: Sequence[Strategy]) -> None:
    """Start local model servers before timing anything, so the first strategy's latencies do
    not include a model load the others never pay (not when replaying: no model is called)."""
    from ecocascade.models.tape import active_tape
    from ecocascade.models.tier import Tier

    tape = active_tape()
    if tape is not None and tape.mode == "replay":
        return

    seen: set[str] = set()
    for strategy in strategies:
        for spec in strategy.tiers:
            tier: Tier = spec.to_tier()
            if not tier.is_local or tier.model in seen:
                continue
            seen.add(tier.model)
            from ecocascade.models.local.server import RUNTIME_PARAMS, route_for

            runtime = {k: v for k, v in tier.params.items() if k in RUNTIME_PARAMS}
            await asyncio.to_thread(route_for, tier.model, runtime)


async def _run_strategy(
    run: EvalRun,
    strategy: Strategy,
    solver: Solver,
    scorers: dict[str, Scorer],
    sink: Any,
    *,
    concurrency: int,
    store_location: str | None,
    cache_location: str | None,
    on_task: ProgressCallback | None,
) -> None:
    from ecocascade.cache.cache import ResponseCache
    from ecocascade.controller.cascade import Cascade
    from ecocascade.controller.demos import DemoSettings

    scenario = run.scenario
    outcomes: list[dict[str, Any]] = []
    run.outcomes[strategy.name] = outcomes
    with tempfile.TemporaryDirectory(prefix="ecocascade-eval-") as scratch:
        store = None
        if strategy.demos:
            from ecocascade.store.chroma import SolutionStore

            store = SolutionStore(
                store_location or scenario.demos.location or str(Path(scratch) / "solutions")
            )
        cache = None
        if strategy.cache:
            cache = ResponseCache(
                cache_location or scenario.cache.location or str(Path(scratch) / "cache.sqlite3"),
                ttl_s=scenario.cache.ttl_s,
                semantic_namespaces=[scenario.demos.namespace] if scenario.cache.semantic else (),
                semantic_threshold=scenario.cache.threshold,
            )
        cascade = Cascade(
            [t.to_tier() for t in strategy.tiers],
            _build_judge(scenario, run.tasks, strategy),
            solver=solver,
            system_prompt=scenario.system_prompt,
            store=store,
            demos=DemoSettings(
                namespace=scenario.demos.namespace,
                k=scenario.demos.k,
                threshold=scenario.demos.threshold,
            ),
            cache=cache,
        )
        gate = asyncio.Semaphore(concurrency)

        async def one(position: int, task: ScenarioTask) -> None:
            async with gate:
                # Scored on the raw answers; kept (tasks.jsonl, results, report) masked.
                outcome = mask_secrets_in(
                    await _run_task(cascade, strategy, position, task, scorers[task.id])
                )
            sink.write(json.dumps(outcome, ensure_ascii=False) + "\n")
            sink.flush()
            outcomes.append(outcome)
            if on_task is not None:
                on_task(strategy, outcome, outcomes)

        try:
            if concurrency == 1:
                for position, task in enumerate(run.tasks):
                    await one(position, task)
            else:
                try:
                    async with asyncio.TaskGroup() as group:
                        for position, task in enumerate(run.tasks):
                            group.create_task(one(position, task))
                except BaseExceptionGroup as errors:
                    raise errors.exceptions[0] from None  # e.g. a ConfigError: say it plainly
        finally:
            outcomes.sort(key=lambda o: o["position"])
            if cache is not None:
                with contextlib.suppress(Exception):
                    await cache.close()


async def _run_task(
    cascade: Any, strategy: Strategy, position: int, task: ScenarioTask, scorer: Scorer
) -> dict[str, Any]:
    _CURRENT_TASK.set(task.id)  # this asyncio task's context: concurrent tasks don't mix
    started = time.perf_counter()
    result = await cascade.run(task.query, time_sensitive=task.time_sensitive)
    latency = time.perf_counter() - started
    attempts = []
    for attempt in result.attempts:
        data = attempt.to_dict()
        data["correct"], data["check_error"] = (
            (None, None) if attempt.answer is None else await scorer.score(attempt.answer)
        )
        attempts.append(data)
    # The strategy's final answer: the accepted one, else the last tier's (what a user of that
    # ladder would end up with). Only the eval scores it: nothing unverified is stored or cached.
    answer = result.answer
    if answer is None:
        answer = next((a.answer for a in reversed(result.attempts) if a.answer), None)
    success, check_error = await scorer.score(answer) if answer is not None else (False, None)
    return {
        "strategy": strategy.name,
        "position": position,
        "task_id": task.id,
        "group": task.group,
        "query": task.query,
        "success": success,
        "check_error": check_error,  # the ground-truth check raised: scored wrong, and why
        "accepted": result.success,
        "stop_reason": result.stop_reason,
        "answer": answer,
        "tier": result.tier,
        "model": result.model,
        "cache_hit": result.cache_hit,
        "cache_kind": result.cache.kind if result.cache is not None else None,
        "demonstrations": len(result.demonstrations),
        "demonstration_ids": [d.id for d in result.demonstrations],
        "recorded_id": result.recorded_id,
        "cost_usd": result.cost_usd,
        "latency_s": round(latency, 4),
        "attempts": attempts,
    }
