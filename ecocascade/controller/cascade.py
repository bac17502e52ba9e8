"""The hierarchy controller: cheapest tier first, judge, escalate on rejection or failure.

This is where escalation happens — the one ladder walk, used by :meth:`Cascade.run` (a question),
:meth:`Cascade.resolve` / :meth:`Cascade.stream` (a chat request: messages, tools, response
format, params), the AutoGen model client and the HTTP gateway. For each request:

0. (response cache) a cached accepted answer for this exact request (or, for a first turn, a
   semantically equal one) ends the run at cost 0;
   (solution store) retrieve up to k verified solutions of queries similar to the last user
   message: they go into every tier's prompt as demonstrations;
   (router) start at the tier the router picks, never below ``min_tier``;
1. (budget) estimate the next attempt; stop if spent + estimate would exceed the budget;
2. the solver answers on this tier — a provider error that survives the tier's retries, a context
   window overflow or a crashing solver is recorded as an ``error`` attempt, never raised;
3. the judge decides, told which attempt it judges (:class:`~ecocascade.types.JudgeContext`);
   a judge that cannot decide counts as not accepted;
4. accepted → done; otherwise escalate to the next tier;
5. (solution store) record the accepted answer, so the next similar query can start cheap;
   (response cache) cache it, so the same request costs nothing next time.

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
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from ecocascade._aio import reraise_if_cancelling
from ecocascade._env import import_litellm
from ecocascade.controller.demos import DemoSettings
from ecocascade.controller.events import AttemptFinished, CascadeEvent, Finished, TextDelta
from ecocascade.controller.result import Attempt, CascadeResult, StopReason
from ecocascade.controller.solvers import ChatSolver
from ecocascade.exceptions import ConfigError, JudgeError, ProviderError, SolverError
from ecocascade.judging import ask_judge
from ecocascade.models.client import TierClient, check_unicode
from ecocascade.models.tier import Tier
from ecocascade.routing import Router
from ecocascade.store.records import SolutionRecord, record_id
from ecocascade.text import MAX_QUERY_CHARS, extract_python_code
from ecocascade.types import (
    ChatModel,
    ChatRequest,
    Demonstration,
    Judge,
    JudgeContext,
    Message,
    Solution,
    SolutionStoreProtocol,
    Solver,
    Task,
    ToolCallDelta,
    Usage,
    Verdict,
)

if TYPE_CHECKING:
    from ecocascade.cache.base import CacheHit
    from ecocascade.cache.cache import ResponseCache

__all__ = ["Cascade", "log_attempt", "short_error"]

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
        tiers: Sequence[Tier | str | ChatModel],
        judge: Judge,
        *,
        solver: Solver | None = None,
        system_prompt: str | None = None,
        budget_usd: float | None = None,
        budget_output_tokens: int = _DEFAULT_OUTPUT_TOKENS_FOR_BUDGET,
        store: SolutionStoreProtocol | None = None,
        demos: DemoSettings | None = None,
        cache: ResponseCache | None = None,
        router: Router | None = None,
        skip_tier: Callable[[Tier, ChatRequest], str | None] | None = None,
        max_query_chars: int = MAX_QUERY_CHARS,
    ) -> None:
        if not isinstance(max_query_chars, int) or max_query_chars < 1:
            raise ConfigError(
                f"must be an integer >= 1, got {max_query_chars!r}", where="max_query_chars"
            )
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
        given = [t if isinstance(t, Tier | ChatModel) else Tier(t) for t in tiers]
        self.tiers: tuple[Tier, ...] = tuple(
            t.tier if isinstance(t, ChatModel) else t for t in given
        )
        self.judge = judge
        self.solver: Solver = solver or ChatSolver()
        self.system_prompt = system_prompt
        self.budget_usd = budget_usd
        self.budget_output_tokens = budget_output_tokens
        self.store = store
        self.demos = demos or DemoSettings()
        self.cache = cache
        self.router = router
        self.skip_tier = skip_tier
        self.max_query_chars = max_query_chars
        self._clients: tuple[ChatModel, ...] = tuple(
            t if isinstance(t, ChatModel) else TierClient(t) for t in given
        )
        self._uses_litellm = any(isinstance(c, TierClient) for c in self._clients)

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
        """Resolve one question, cheapest tier first: :meth:`resolve` of
        ``ChatRequest.from_query(query, system_prompt=self.system_prompt)``."""
        if not isinstance(query, str) or not query.strip():
            raise ConfigError("the query must be a non-empty string", where="query")
        check_unicode(query, where="query")
        request = ChatRequest.from_query(query, system_prompt=self.system_prompt)
        return await self.resolve(
            request, record=record, use_cache=use_cache, time_sensitive=time_sensitive
        )

    async def resolve(
        self,
        request: ChatRequest,
        *,
        record: bool | None = None,
        use_cache: bool = True,
        time_sensitive: bool | None = None,
        min_tier: int = 0,
    ) -> CascadeResult:
        """Resolve one chat request: cache → demonstrations → start tier → (budget → solver →
        judge → escalate)* → record → cache. Never raises for provider, judge, store or cache
        failures.

        The request's messages are sent as they are (their system prompt, not
        ``self.system_prompt``), with its tools, tool choice, response format and params.
        ``record=False`` keeps this answer out of the solution store; ``use_cache=False`` skips
        the cache both ways; ``time_sensitive`` overrides the heuristic that keeps time-dependent
        queries out of semantic reuse; ``min_tier`` starts the walk no lower than that tier (a
        conversation that already needed a stronger tier), whatever the router says.

        The exact cache key covers the whole request (system prompt, history, tools, tool
        choice, response format, params: :meth:`cache_scope`); semantic reuse is for first-turn
        requests only; a request whose last message is a tool result is neither looked up,
        cached nor recorded. Demonstrations and the router key on the last user message
        (``request.query``). An answer made of tool calls is cached but not recorded as a
        demonstration.
        """
        async with contextlib.aclosing(
            self._walk(request, record, use_cache, time_sensitive, min_tier, live=False)
        ) as events:
            async for event in events:
                if isinstance(event, Finished):
                    return event.result
        raise AssertionError("the walk ends with a Finished event")  # pragma: no cover

    async def stream(
        self,
        request: ChatRequest,
        *,
        record: bool | None = None,
        use_cache: bool = True,
        time_sensitive: bool | None = None,
        min_tier: int = 0,
    ) -> AsyncGenerator[CascadeEvent, None]:
        """:meth:`resolve`, as events (:mod:`ecocascade.controller.events`): an
        :class:`AttemptFinished` per attempt; :class:`TextDelta` / ``ToolCallDelta`` pieces live
        only while the last tier answers (judged tiers are buffered: nothing is emitted for
        them; a solver without ``stream()`` emits none); finally :class:`Finished` with the
        result (``streamed`` says whether its answer went out as pieces).

        Stop iterating (close the generator, e.g. with ``contextlib.aclosing``) or cancel the
        consuming task and the model call in flight is cancelled, and nothing is recorded or
        cached: recording and caching happen just before :class:`Finished` is yielded.
        """
        async with contextlib.aclosing(
            self._walk(request, record, use_cache, time_sensitive, min_tier, live=True)
        ) as events:
            async for event in events:
                yield event

    def estimate_cost(
        self, request: ChatRequest, *, tier: int = -1, output_tokens: int | None = None
    ) -> float | None:
        """What one call of ``tier`` (default: the last, strongest one) would cost for this
        request: its counted prompt tokens plus ``output_tokens`` (default: the tier's
        ``max_tokens``, else ``budget_output_tokens``) at the tier's price; ``None`` when the
        tier has no known price. The baseline for "saved" figures: pass the answer's output
        tokens."""
        client = self._clients[tier]
        task = Task(query=request.query, system_prompt=request.system_prompt, request=request)
        tokens = output_tokens or client.max_output_tokens or self.budget_output_tokens
        return client.estimate_cost(self._prompt_for_estimate(task), tokens)

    def cache_scope(self, request: ChatRequest) -> str:
        """The fingerprint a request's cache entries live under: :attr:`fingerprint`, plus a
        digest of everything in the request besides its last user message's text (system
        prompt, history, tools, tool choice, response format, params). A plain question with
        the cascade's own system prompt has no digest: its key is what ``run()`` always used."""
        messages = list(request.messages)
        last = messages[-1] if messages else {}
        plain_last = (
            last.get("role") == "user"
            and isinstance(last.get("content"), str)
            and set(last) <= {"role", "content"}
        )
        own_system: list[Message] = (
            [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        )
        extras = {
            "tools": [dict(t) for t in request.tools],
            "tool_choice": request.tool_choice,
            "response_format": request.response_format,
            "params": dict(request.params),
        }
        if plain_last and messages[:-1] == own_system and not any(extras.values()):
            return self.fingerprint
        described = {"messages": messages[:-1] if plain_last else messages, **extras}
        raw = json.dumps(described, sort_keys=True, default=str, ensure_ascii=False)
        return f"{self.fingerprint}:{hashlib.sha256(raw.encode()).hexdigest()[:16]}"

    async def _walk(
        self,
        request: ChatRequest,
        record: bool | None,
        use_cache: bool,
        time_sensitive: bool | None,
        min_tier: int,
        *,
        live: bool,
    ) -> AsyncGenerator[CascadeEvent, None]:
        """The one ladder walk, behind :meth:`resolve`, :meth:`stream` and the AutoGen client."""
        self._check_request(request, min_tier)
        query = request.query
        run_id = uuid.uuid4().hex[:12]
        bound = log.bind(run_id=run_id)
        after_tool = request.messages[-1].get("role") == "tool"
        cache = self.cache if use_cache and not after_tool else None
        scope = self.cache_scope(request) if cache is not None else ""
        cache_key = cache.key(query, self.demos.namespace, scope) if cache is not None else None
        first_turn = request.is_first_turn
        if cache is not None:
            hit = await self._cache_lookup(cache, query, scope, time_sensitive, first_turn, bound)
            if hit is not None:
                cached = CascadeResult(
                    query=query,
                    run_id=run_id,
                    attempts=(),
                    stop_reason="cached",
                    cache=hit,
                    request=request,
                    cache_key=cache_key,
                )
                yield Finished(cached)
                return
        # LiteLLM's import (~2.5 s, once per process) is paid here, not inside the first timed
        # attempt, and not at all when the cache answers.
        if self._uses_litellm:
            import_litellm()
        demonstrations = await self._retrieve(query, bound) if query else ()
        task = Task(
            query=query,
            system_prompt=request.system_prompt,
            demonstrations=demonstrations,
            request=request,
        )
        attempts: list[Attempt] = []
        stop: StopReason = "exhausted"
        start = max(await self._start_tier(query, bound) if query else 0, min_tier)
        start = min(start, len(self._clients) - 1)
        last = len(self._clients) - 1
        streamed = False

        for index, client in enumerate(self._clients):
            if index < start:
                continue
            attempt: Attempt | None = self._unsupported(index, client, request)
            if attempt is not None:
                log_attempt(bound, attempt, reason=attempt.error_message)
            if attempt is None and self.budget_usd is not None:
                over = self._over_budget(attempts, client, task)
                if over is not None:
                    bound.info("cascade.budget_stop", tier=index, model=client.label, reason=over)
                    stop = "budget"
                    break
            if (
                attempt is None
                and live
                and index == last
                and callable(getattr(self.solver, "stream", None))
            ):
                async for item in self._attempt_live(index, client, task, attempts, bound):
                    if isinstance(item, Attempt):
                        attempt = item
                    else:
                        streamed = True
                        yield item
            elif attempt is None:
                attempt = await self._attempt(index, client, task, attempts, bound)
            assert attempt is not None
            reraise_if_cancelling()  # a cancel lost below must not become a result or a record
            attempts.append(attempt)
            yield AttemptFinished(attempt)
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

        accepted = attempts[-1] if stop == "accepted" else None
        recordable = (
            accepted is not None
            and not after_tool
            and bool(query)
            and not (accepted.message or {}).get("tool_calls")
        )
        recorded_id = await self._remember(
            query,
            run_id,
            accepted is not None,
            accepted if recordable else None,
            demonstrations,
            record,
            bound,
        )
        if cache is not None and accepted is not None:
            await self._cache_store(
                cache, query, scope, accepted, time_sensitive, first_turn, bound
            )
        result = CascadeResult(
            query=query,
            run_id=run_id,
            attempts=tuple(attempts),
            stop_reason=stop,
            budget_usd=self.budget_usd,
            demonstrations=demonstrations,
            recorded_id=recorded_id,
            request=request,
            cache_key=cache_key,
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
        yield Finished(result, streamed=streamed and accepted is not None)

    def _check_request(self, request: ChatRequest, min_tier: int) -> None:
        if not isinstance(request, ChatRequest):
            raise ConfigError(
                f"expected a ChatRequest, got {type(request).__name__}", where="request"
            )
        if not request.messages:
            raise ConfigError("the request has no messages", where="request.messages")
        check_unicode(list(request.messages), where="request.messages")
        if len(request.query) > self.max_query_chars:
            raise ConfigError(
                f"the query has {len(request.query):,} characters, over the limit of"
                f" {self.max_query_chars:,} (max_query_chars)",
                where="query",
            )
        last = request.messages[-1].get("role")
        if not request.query.strip() and last != "tool":
            raise ConfigError("the request has no user message to answer", where="request.messages")
        if not isinstance(min_tier, int) or min_tier < 0:
            raise ConfigError(f"must be an integer >= 0, got {min_tier!r}", where="min_tier")

    def _unsupported(self, index: int, client: ChatModel, request: ChatRequest) -> Attempt | None:
        """An ``unsupported`` attempt for a tier that ``skip_tier`` says cannot serve this."""
        if self.skip_tier is None:
            return None
        why = self.skip_tier(client.tier, request)
        if why is None:
            return None
        return Attempt(
            tier=index,
            model=client.label,
            local=client.tier.is_local,
            verdict="error",
            error="unsupported",
            error_message=f"{client.label} {why}",
        )

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
        self,
        cache: ResponseCache,
        query: str,
        scope: str,
        time_sensitive: bool | None,
        semantic: bool,
        bound: Any,
    ) -> CacheHit | None:
        try:
            hit, refused = await cache.lookup(
                query,
                namespace=self.demos.namespace,
                fingerprint=scope,
                time_sensitive=time_sensitive,
                semantic=semantic,
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
        scope: str,
        accepted: Attempt,
        time_sensitive: bool | None,
        semantic: bool,
        bound: Any,
    ) -> None:
        reply = {
            "message": dict(accepted.message) if accepted.message is not None else None,
            "usage": [accepted.usage.input_tokens, accepted.usage.output_tokens],
            "upstream_model": accepted.upstream_model,
        }
        try:
            entry = await cache.store(
                query,
                namespace=self.demos.namespace,
                fingerprint=scope,
                answer=accepted.answer or "",
                model=accepted.model,
                tier=accepted.tier,
                time_sensitive=time_sensitive,
                semantic=semantic,
                reply=reply,
            )
        except ConfigError:
            raise
        except Exception as error:
            bound.warning("cache.unavailable", during="store", error=short_error(error))
            return
        if entry is not None:
            ttl_s = round(entry.expires_at - entry.created_at)
            bound.info("cache.stored", key=entry.key, ttl_s=ttl_s)

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
        succeeded: bool,
        accepted: Attempt | None,
        demonstrations: tuple[Demonstration, ...],
        record: bool | None,
        bound: Any,
    ) -> str | None:
        """Update the used demonstrations' counters; record ``accepted`` (the answer, when it
        may become a demonstration). Never raises."""
        if self.store is None:
            return None
        try:
            await self.store.mark_used(
                [d.id for d in demonstrations],
                namespace=self.demos.namespace,
                succeeded=succeeded,
            )
            if accepted is None or not (self.demos.record if record is None else record):
                return None
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

    def _over_budget(self, attempts: list[Attempt], client: ChatModel, task: Task) -> str | None:
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

    async def _attempt(
        self,
        index: int,
        client: ChatModel,
        task: Task,
        earlier: Sequence[Attempt],
        bound: Any,
    ) -> Attempt:
        started = time.perf_counter()
        try:
            solution = await self.solver.solve(task, client)
        except ConfigError:
            raise
        except Exception as error:
            return self._failed(index, client, error, time.perf_counter() - started, bound)
        latency = time.perf_counter() - started
        return await self._judged(index, client, task, solution, latency, earlier, bound)

    async def _attempt_live(
        self,
        index: int,
        client: ChatModel,
        task: Task,
        earlier: Sequence[Attempt],
        bound: Any,
    ) -> AsyncGenerator[TextDelta | ToolCallDelta | Attempt, None]:
        """:meth:`_attempt` with the solver's ``stream()``: its pieces as they come, then the
        judged Attempt."""
        started = time.perf_counter()
        solution: Solution | None = None
        try:
            pieces = self.solver.stream(task, client)  # type: ignore[attr-defined]
            async with contextlib.aclosing(pieces):
                async for item in pieces:
                    if isinstance(item, Solution):
                        solution = item
                    elif isinstance(item, str):
                        yield TextDelta(item)
                    else:
                        yield item
            if solution is None:
                raise SolverError(
                    "the solver's stream ended without a solution", kind="no_solution"
                )
        except ConfigError:
            raise
        except Exception as error:
            yield self._failed(index, client, error, time.perf_counter() - started, bound)
            return
        latency = time.perf_counter() - started
        yield await self._judged(index, client, task, solution, latency, earlier, bound)

    def _failed(
        self, index: int, client: ChatModel, error: Exception, latency: float, bound: Any
    ) -> Attempt:
        """The ``error`` attempt of a tier whose call failed for good or whose solver crashed."""
        if isinstance(error, ProviderError):
            attempt = Attempt(
                tier=index,
                model=client.label,
                local=client.tier.is_local,
                verdict="error",
                error=error.kind,
                error_message=str(error),
                usage=error.spent_usage,  # what the attempt spent before the call that failed
                cost_usd=error.spent_usd,
                latency_s=latency,
                retries=error.retries,
            )
            log_attempt(bound, attempt)
            return attempt
        # a crashing solver must not lose the query
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
            latency_s=latency,
            retries=spent.retries if spent else 0,
        )
        log_attempt(bound, attempt)
        return attempt

    async def _judged(
        self,
        index: int,
        client: ChatModel,
        task: Task,
        solution: Solution,
        latency: float,
        earlier: Sequence[Attempt],
        bound: Any,
    ) -> Attempt:
        """Ask the judge about one solution (with an explicit context) and build the Attempt."""
        context = JudgeContext(
            tier=index,
            model=client.label,
            tiers=len(self._clients),
            request=task.request,
            attempts=tuple(earlier),
            solution=solution,
        )
        judged_at = time.perf_counter()
        verdict: Verdict | None = None
        judge_error: str | None = None
        judge_cost: float | None = 0.0
        try:
            verdict = await ask_judge(self.judge, task.query, solution.answer, context)
        except JudgeError as error:
            judge_error = str(error)
            judge_cost = error.cost_usd
        except ConfigError:
            raise
        except Exception as error:  # a crashing judge means "not verified", never "accepted"
            bound.warning("judge.crashed", judge=self.judge.name, exc_info=error)
            judge_error = f"{type(error).__name__}: {error}"
        judge_latency = time.perf_counter() - judged_at

        common: dict[str, Any] = {
            "tier": index,
            "model": client.label,
            "local": client.tier.is_local,
            "answer": solution.answer,
            "usage": solution.usage,
            "cost_usd": solution.cost_usd,
            "latency_s": latency,
            "judge_latency_s": judge_latency,
            "retries": solution.retries,
            "message": solution.message,
            "upstream_model": solution.model,
        }
        if verdict is None:
            attempt = Attempt(
                verdict="error",
                reason="the judge could not reach a verdict",
                judge=self.judge.name,
                error="judge_error",
                error_message=judge_error,
                judge_cost_usd=judge_cost,
                **common,
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
                verdict="accept" if verdict.accepted else "reject",
                reason=verdict.reason,
                judge=verdict.judge or self.judge.name,
                judge_cost_usd=verdict.cost_usd,
                **common,
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
