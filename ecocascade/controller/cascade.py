"""The hierarchy controller: cheapest tier first, judge, escalate on rejection or failure.

This is where escalation happens. For each query the cascade walks the ladder:

0. (response cache) a cached accepted answer for this query ends the run at cost 0;
   (solution store) retrieve up to k verified solutions of similar queries: they go into every
   tier's prompt as demonstrations;
1. (budget) estimate the next attempt; stop if spent + estimate would exceed the budget;
2. the solver answers on this tier — a provider error that survives the tier's retries, a context
   window overflow or a crashing solver is recorded as an ``error`` attempt, never raised;
3. the judge decides; a judge that cannot decide counts as not accepted;
4. accepted → done; otherwise escalate to the next tier;
5. (solution store) record the accepted answer, so the next similar query can start cheap;
   (response cache) cache it, so the same query costs nothing next time.

Every attempt is kept in the result, so a query is never silently lost. A solution store that
fails is logged and skipped: it never fails a query.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from ecocascade._env import import_litellm
from ecocascade.controller.demos import DemoSettings
from ecocascade.controller.result import Attempt, CascadeResult, StopReason
from ecocascade.controller.solvers import ChatSolver
from ecocascade.exceptions import ConfigError, JudgeError, ProviderError, SolverError
from ecocascade.judging import reset_attempt, set_attempt
from ecocascade.models.client import TierClient, check_unicode
from ecocascade.models.tier import Tier
from ecocascade.routing import Router
from ecocascade.store.records import SolutionRecord, record_id
from ecocascade.text import extract_python_code
from ecocascade.types import (
    Demonstration,
    Judge,
    JudgeContext,
    Message,
    Solver,
    Task,
    Usage,
    Verdict,
)

if TYPE_CHECKING:
    from ecocascade.cache.base import CacheHit
    from ecocascade.cache.cache import ResponseCache
    from ecocascade.store.chroma import SolutionStore

__all__ = ["Cascade"]

log = structlog.get_logger(__name__)

_DEFAULT_OUTPUT_TOKENS_FOR_BUDGET = 512


class Cascade:
    """An ordered ladder of tiers, cheapest first, with a judge deciding when to stop.

    >>> cascade = Cascade(["openai/gpt-4o-mini", "openai/gpt-4o"], judge=ContainsJudge("Paris"))
    >>> result = await cascade.run("What is the capital of France?")

    ``budget_usd`` caps what one query may spend (models + judges): before each attempt the cascade
    estimates its cost — counted prompt tokens plus the tier's ``max_tokens`` (or
    ``budget_output_tokens`` when unset) at the tier's price — and stops escalating if the total
    would exceed the budget. A tier with an unknown price cannot be shown to fit, so under a budget
    the cascade stops before it.
    """

    def __init__(
        self,
        tiers: Sequence[Tier | str],
        judge: Judge,
        *,
        solver: Solver | None = None,
        system_prompt: str | None = None,
        budget_usd: float | None = None,
        budget_output_tokens: int = _DEFAULT_OUTPUT_TOKENS_FOR_BUDGET,
        store: SolutionStore | None = None,
        demos: DemoSettings | None = None,
        cache: ResponseCache | None = None,
        router: Router | None = None,
    ) -> None:
        if not tiers:
            raise ConfigError("a cascade needs at least one tier", where="tiers")
        if isinstance(tiers, str):
            raise ConfigError("pass a list of tiers, not a single string", where="tiers")
        if not isinstance(judge, Judge):
            raise ConfigError(
                f"expected a judge (an object with .name and async .judge()), got {judge!r}",
                where="judge",
            )
        if budget_usd is not None and (not math.isfinite(budget_usd) or budget_usd < 0):
            raise ConfigError(f"must be a finite number >= 0, got {budget_usd}", where="budget_usd")
        self.tiers: tuple[Tier, ...] = tuple(t if isinstance(t, Tier) else Tier(t) for t in tiers)
        self.judge = judge
        self.solver: Solver = solver or ChatSolver()
        self.system_prompt = system_prompt
        self.budget_usd = budget_usd
        self.budget_output_tokens = budget_output_tokens
        self.store = store
        self.demos = demos or DemoSettings()
        self.cache = cache
        self.router = router
        self._clients = tuple(TierClient(tier) for tier in self.tiers)

    def __repr__(self) -> str:
        ladder = " → ".join(t.label for t in self.tiers)
        return f"Cascade({ladder}, judge={self.judge.name})"

    @functools.cached_property
    def fingerprint(self) -> str:
        """A hash of everything that can change the answer: ladder, params, solver, judge,
        demonstration settings, system prompt. Cache entries only serve an equal fingerprint."""
        described = {
            "tiers": [
                {"model": t.model, "api_base": t.api_base, "params": dict(sorted(t.params.items()))}
                for t in self.tiers
            ],
            "solver": _describe(self.solver),
            "judge": {"name": self.judge.name, "config": _describe(self.judge)},
            "system_prompt": self.system_prompt,
            "demos": None
            if self.store is None
            else [self.demos.namespace, self.demos.k, self.demos.threshold, self.demos.retrieve],
        }
        if self.router is not None:
            described["router"] = _describe(self.router)
        return hashlib.sha256(
            json.dumps(described, sort_keys=True, default=str).encode()
        ).hexdigest()[:16]

    async def run(
        self,
        query: str,
        *,
        record: bool | None = None,
        use_cache: bool = True,
        time_sensitive: bool | None = None,
    ) -> CascadeResult:
        """Resolve one query, cheapest tier first. Never raises for provider, judge, store or
        cache failures. ``record=False`` keeps this run's answer out of the solution store;
        ``use_cache=False`` skips the cache both ways; ``time_sensitive`` overrides the
        heuristic that keeps time-dependent queries out of semantic reuse."""
        if not isinstance(query, str) or not query.strip():
            raise ConfigError("the query must be a non-empty string", where="query")
        check_unicode(query, where="query")
        run_id = uuid.uuid4().hex[:12]
        bound = log.bind(run_id=run_id)
        cache = self.cache if use_cache else None
        if cache is not None:
            hit = await self._cache_lookup(cache, query, time_sensitive, bound)
            if hit is not None:
                return CascadeResult(
                    query=query, run_id=run_id, attempts=(), stop_reason="cached", cache=hit
                )
        # LiteLLM's import (~2.5 s, once per process) is paid here, not inside the first timed
        # attempt, and not at all when the cache answers.
        import_litellm()
        demonstrations = await self._retrieve(query, bound)
        task = Task(query=query, system_prompt=self.system_prompt, demonstrations=demonstrations)
        attempts: list[Attempt] = []
        stop: StopReason = "exhausted"
        start = await self._start_tier(query, bound)

        for index, client in enumerate(self._clients):
            if index < start:
                continue
            if self.budget_usd is not None:
                over = self._over_budget(attempts, client, task)
                if over is not None:
                    bound.info("cascade.budget_stop", tier=index, model=client.label, reason=over)
                    stop = "budget"
                    break
            attempt = await self._attempt(index, client, task, bound)
            attempts.append(attempt)
            if attempt.accepted:
                stop = "accepted"
                break
            if index + 1 < len(self._clients):
                bound.info(
                    "cascade.escalated",
                    from_tier=index,
                    to_tier=index + 1,
                    from_model=client.label,
                    to_model=self._clients[index + 1].label,
                    verdict=attempt.verdict,
                    reason=attempt.error or attempt.reason,
                )

        recorded_id = await self._remember(
            query, run_id, attempts if stop == "accepted" else None, demonstrations, record, bound
        )
        if cache is not None and stop == "accepted":
            await self._cache_store(cache, query, attempts[-1], time_sensitive, bound)
        result = CascadeResult(
            query=query,
            run_id=run_id,
            attempts=tuple(attempts),
            stop_reason=stop,
            budget_usd=self.budget_usd,
            demonstrations=demonstrations,
            recorded_id=recorded_id,
        )
        event = "cascade.resolved" if result.success else "cascade.unresolved"
        bound.info(
            event,
            tier=result.tier,
            model=result.model,
            attempts=len(attempts),
            stop_reason=stop,
            cost_usd=result.cost_usd,
            known_cost_usd=result.known_cost_usd,
        )
        return result

    def run_sync(
        self,
        query: str,
        *,
        record: bool | None = None,
        use_cache: bool = True,
        time_sensitive: bool | None = None,
    ) -> CascadeResult:
        """Blocking :meth:`run` for scripts and notebooks without a running event loop."""
        options = {"record": record, "use_cache": use_cache, "time_sensitive": time_sensitive}
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._run_and_close(query, options))
        raise RuntimeError("run_sync() called from a running event loop; use `await cascade.run()`")

    async def _run_and_close(self, query: str, options: dict[str, Any]) -> CascadeResult:
        try:
            return await self.run(query, **options)
        finally:
            if self.cache is not None:
                with contextlib.suppress(Exception):  # a cache that is down has nothing to close
                    await self.cache.close()  # its connections belong to this event loop
            # The event loop ends with this call: close LiteLLM's HTTP clients bound to it
            # (if it was loaded at all: a cache hit never needs it).
            if "litellm" in sys.modules:
                await sys.modules["litellm"].close_litellm_async_clients()

    async def _start_tier(self, query: str, bound: Any) -> int:
        """The router's start tier (0 without a router, or when the router fails)."""
        if self.router is None:
            return 0
        try:
            start = int(await self.router.start_tier(query, self.tiers))
        except ConfigError:
            raise
        except Exception as error:  # a router is an optimisation: start at the bottom instead
            bound.warning("router.failed", error=short_error(error))
            return 0
        start = min(max(start, 0), len(self.tiers) - 1)
        if start:
            bound.info("router.skipped", start_tier=start, model=self.tiers[start].label)
        return start

    async def _cache_lookup(
        self, cache: ResponseCache, query: str, time_sensitive: bool | None, bound: Any
    ) -> CacheHit | None:
        try:
            hit, refused = await cache.lookup(
                query,
                namespace=self.demos.namespace,
                fingerprint=self.fingerprint,
                time_sensitive=time_sensitive,
            )
        except ConfigError:
            raise
        except Exception as error:  # a cache is an optimisation: bypass it, answer anyway
            bound.warning("cache.unavailable", during="lookup", error=short_error(error))
            return None
        if hit is None:
            bound.info("cache.miss", namespace=self.demos.namespace, refused=refused)
            return None
        bound.info(
            "cache.hit",
            kind=hit.kind,
            key=hit.key,
            similarity=hit.similarity,
            namespace=self.demos.namespace,
            model=hit.model,
            age_s=hit.age_s,
        )
        return hit

    async def _cache_store(
        self,
        cache: ResponseCache,
        query: str,
        accepted: Attempt,
        time_sensitive: bool | None,
        bound: Any,
    ) -> None:
        try:
            entry = await cache.store(
                query,
                namespace=self.demos.namespace,
                fingerprint=self.fingerprint,
                answer=accepted.answer or "",
                model=accepted.model,
                tier=accepted.tier,
                time_sensitive=time_sensitive,
            )
        except ConfigError:
            raise
        except Exception as error:
            bound.warning("cache.unavailable", during="store", error=short_error(error))
            return
        bound.info("cache.stored", key=entry.key, ttl_s=round(entry.expires_at - entry.created_at))

    async def _retrieve(self, query: str, bound: Any) -> tuple[Demonstration, ...]:
        settings = self.demos
        if self.store is None or not settings.retrieve or settings.k == 0:
            return ()
        try:
            found = await self.store.search(
                query, namespace=settings.namespace, k=settings.k, threshold=settings.threshold
            )
        except ConfigError:
            raise
        except Exception as error:  # the store is an optimisation: never fail the query for it
            bound.warning("solutions.unavailable", during="search", error=str(error))
            return ()
        bound.info(
            "demos.retrieved",
            namespace=settings.namespace,
            count=len(found),
            ids=[d.id for d in found],
            similarities=[d.similarity for d in found],
        )
        return tuple(found)

    async def _remember(
        self,
        query: str,
        run_id: str,
        accepted_attempts: list[Attempt] | None,
        demonstrations: tuple[Demonstration, ...],
        record: bool | None,
        bound: Any,
    ) -> str | None:
        """Update the used demonstrations' counters; record an accepted answer. Never raises."""
        if self.store is None:
            return None
        try:
            await self.store.mark_used(
                [d.id for d in demonstrations],
                namespace=self.demos.namespace,
                succeeded=accepted_attempts is not None,
            )
            if accepted_attempts is None or not (self.demos.record if record is None else record):
                return None
            accepted = accepted_attempts[-1]
            answer = accepted.answer or ""
            stored = await self.store.record(
                SolutionRecord(
                    id=record_id(query, self.demos.namespace),
                    namespace=self.demos.namespace,
                    query=query,
                    solution=answer,
                    code=extract_python_code(answer),
                    model=accepted.model,
                    tier=accepted.tier,
                    judge=accepted.judge,
                    judge_reason=accepted.reason,
                    run_id=run_id,
                )
            )
        except ConfigError:
            raise
        except Exception as error:
            bound.warning("solutions.unavailable", during="record", error=str(error))
            return None
        if stored is None:
            return None
        bound.info(
            "solutions.recorded",
            id=stored.id,
            namespace=stored.namespace,
            model=stored.model,
            tier=stored.tier,
        )
        return stored.id

    def _over_budget(self, attempts: list[Attempt], client: TierClient, task: Task) -> str | None:
        """Why the next attempt would break the budget, or ``None`` if it fits."""
        assert self.budget_usd is not None
        spent = 0.0
        for a in attempts:
            for part in (a.cost_usd, a.judge_cost_usd):
                if part is None:
                    return f"spent cost unknown ({a.model} has no price)"
                spent += part
        estimate = client.estimate_cost(
            self._prompt_for_estimate(task),
            client.max_output_tokens or self.budget_output_tokens,
        )
        if estimate is None:
            return f"{client.label} has no known price, so it cannot be shown to fit the budget"
        if spent + estimate > self.budget_usd:
            return (
                f"spent ${spent:.6f} + estimated ${estimate:.6f} for {client.label}"
                f" > budget ${self.budget_usd:.6f}"
            )
        return None

    def _prompt_for_estimate(self, task: Task) -> list[Message]:
        build = getattr(self.solver, "messages", None)
        if callable(build):
            return list(build(task))
        return [{"role": "user", "content": task.query}]

    async def _attempt(self, index: int, client: TierClient, task: Task, bound: Any) -> Attempt:
        started = time.perf_counter()
        try:
            solution = await self.solver.solve(task, client)
        except ProviderError as error:
            attempt = Attempt(
                tier=index,
                model=client.label,
                local=client.tier.is_local,
                verdict="error",
                error=error.kind,
                error_message=str(error),
                usage=error.spent_usage,  # what the attempt spent before the call that failed
                cost_usd=error.spent_usd,
                latency_s=time.perf_counter() - started,
                retries=error.retries,
            )
            log_attempt(bound, attempt)
            return attempt
        except ConfigError:
            raise
        except Exception as error:  # a crashing solver must not lose the query
            bound.warning("cascade.solver_crashed", tier=index, model=client.label, exc_info=error)
            spent = error if isinstance(error, SolverError) else None
            attempt = Attempt(
                tier=index,
                model=client.label,
                local=client.tier.is_local,
                verdict="error",
                error=spent.kind if spent else type(error).__name__,
                error_message=str(error),
                usage=spent.spent_usage if spent else Usage(),
                cost_usd=spent.spent_usd if spent else 0.0,
                latency_s=time.perf_counter() - started,
                retries=spent.retries if spent else 0,
            )
            log_attempt(bound, attempt)
            return attempt
        latency = time.perf_counter() - started

        judged_at = time.perf_counter()
        verdict: Verdict | None = None
        judge_error: str | None = None
        judge_cost: float | None = 0.0
        token = set_attempt(JudgeContext(index, client.label, len(self._clients)))
        try:
            verdict = await self.judge.judge(task.query, solution.answer)
        except JudgeError as error:
            judge_error = str(error)
            judge_cost = error.cost_usd
        except ConfigError:
            raise
        except Exception as error:  # a crashing judge means "not verified", never "accepted"
            bound.warning("judge.crashed", judge=self.judge.name, exc_info=error)
            judge_error = f"{type(error).__name__}: {error}"
        finally:
            reset_attempt(token)
        judge_latency = time.perf_counter() - judged_at

        if verdict is None:
            attempt = Attempt(
                tier=index,
                model=client.label,
                local=client.tier.is_local,
                verdict="error",
                answer=solution.answer,
                reason="the judge could not reach a verdict",
                judge=self.judge.name,
                error="judge_error",
                error_message=judge_error,
                usage=solution.usage,
                cost_usd=solution.cost_usd,
                judge_cost_usd=judge_cost,
                latency_s=latency,
                judge_latency_s=judge_latency,
                retries=solution.retries,
            )
        else:
            bound.info(
                "judge.verdict",
                tier=index,
                model=client.label,
                local=client.tier.is_local,
                judge=verdict.judge or self.judge.name,
                verdict="accept" if verdict.accepted else "reject",
                reason=verdict.reason,
                cost_usd=verdict.cost_usd,
            )
            attempt = Attempt(
                tier=index,
                model=client.label,
                local=client.tier.is_local,
                verdict="accept" if verdict.accepted else "reject",
                answer=solution.answer,
                reason=verdict.reason,
                judge=verdict.judge or self.judge.name,
                usage=solution.usage,
                cost_usd=solution.cost_usd,
                judge_cost_usd=verdict.cost_usd,
                latency_s=latency,
                judge_latency_s=judge_latency,
                retries=solution.retries,
            )
        log_attempt(bound, attempt)
        return attempt


def log_attempt(bound: Any, attempt: Attempt, **extra: Any) -> None:
    """The ``cascade.attempt`` event, shared by every ladder walk (here and the AutoGen client)."""
    bound.info(
        "cascade.attempt",
        tier=attempt.tier,
        model=attempt.model,
        verdict=attempt.verdict,
        error=attempt.error,
        **extra,
        tokens_in=attempt.usage.input_tokens,
        tokens_out=attempt.usage.output_tokens,
        cost_usd=attempt.cost_usd,
        judge_cost_usd=attempt.judge_cost_usd,
        latency_s=round(attempt.latency_s, 4),
        retries=attempt.retries,
    )


def short_error(error: BaseException) -> str:
    """``Type: message`` on one line, at most 200 characters of message, for log events."""
    return f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"


def _describe(obj: Any, depth: int = 0) -> Any:
    """A JSON-able description of a component's configuration, for the cache fingerprint.

    Public attributes, dataclass fields and nested components are included (an LLM judge's
    prompt and tier, a contains-judge's case sensitivity, a solver's demonstration template);
    private state (clients, caches) is not.
    """
    if depth > 6:
        return type(obj).__qualname__
    if obj is None or isinstance(obj, str | int | float | bool):
        return obj
    if isinstance(obj, Mapping):
        return {str(k): _describe(v, depth + 1) for k, v in sorted(obj.items(), key=str)}
    if isinstance(obj, list | tuple | set | frozenset):
        return [_describe(v, depth + 1) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return {"type": type(obj).__qualname__, **_describe(fields, depth + 1)}
    if callable(obj) and not hasattr(obj, "__dict__"):
        return getattr(obj, "__qualname__", type(obj).__qualname__)
    public = (
        {k: v for k, v in vars(obj).items() if not k.startswith("_")}
        if hasattr(obj, "__dict__")
        else {}
    )
    if callable(obj) and not public:
        return getattr(obj, "__qualname__", type(obj).__qualname__)
    return {"type": type(obj).__qualname__, **_describe(public, depth + 1)}
