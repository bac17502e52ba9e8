"""The cascade as an AutoGen model client: every model call goes cheapest tier first.

``CascadeChatCompletionClient`` is a drop-in ``ChatCompletionClient`` for an existing AutoGen app
(``AssistantAgent``, tools, ``RoundRobinGroupChat``…). Each ``create`` call walks the ladder:

1. (cache) an accepted reply to exactly this request — same messages, tools, options, ladder
   and judge — is returned at cost 0 with ``cached=True``;
2. a tier that cannot serve the request (tools offered but no function calling; images but no
   vision) is skipped;
3. the tier answers; a provider error that survives its retries escalates;
4. a :class:`CallJudge` decides: by default :class:`WellFormedReply` — non-empty text, or tool
   calls that name an offered tool with JSON arguments that satisfy the tool's schema;
5. accepted → cached and returned; otherwise the next tier gets the same request.

If no tier is accepted the call raises :class:`~ecocascade.CascadeFailedError` carrying every
attempt. Usage and cost add up across tiers; ``last_tier``/``last_result`` say who answered.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import structlog
from autogen_core import CancellationToken, FunctionCall, Image
from autogen_core.models import (
    ChatCompletionClient,
    CreateResult,
    LLMMessage,
    ModelFamily,
    ModelInfo,
    RequestUsage,
    UserMessage,
)
from autogen_core.tools import Tool, ToolSchema
from pydantic import BaseModel, ValidationError

from ecocascade.agents.client import (
    _NO_ARGS,
    CallStats,
    LiteLLMChatCompletionClient,
    ToolChoice,
    _add,
    to_openai_messages,
    to_openai_tools,
    tool_schema,
)
from ecocascade.cache.base import CacheEntry, CacheHit
from ecocascade.controller.cascade import log_attempt, short_error
from ecocascade.controller.result import Attempt, CascadeResult, StopReason
from ecocascade.exceptions import CascadeFailedError, ConfigError, JudgeError, ProviderError
from ecocascade.models.tier import Tier
from ecocascade.types import Judge, Usage, Verdict, add_costs

if TYPE_CHECKING:
    from ecocascade.cache.cache import ResponseCache

__all__ = ["CallJudge", "CascadeChatCompletionClient", "WellFormedReply"]

log = structlog.get_logger(__name__)

_ZERO = RequestUsage(prompt_tokens=0, completion_tokens=0)


@runtime_checkable
class CallJudge(Protocol):
    """Decides whether one tier's reply to one model call is good enough to accept.

    Raise :class:`~ecocascade.exceptions.JudgeError` when no verdict can be reached: the reply is
    then not accepted and the call escalates.
    """

    @property
    def name(self) -> str: ...

    async def judge_reply(
        self,
        messages: Sequence[LLMMessage],
        tools: Sequence[Tool | ToolSchema],
        result: CreateResult,
        *,
        json_output: bool | type[BaseModel] | None = None,
    ) -> Verdict: ...


class WellFormedReply:
    """The default call judge: accept a usable reply, reject a malformed one.

    A text reply must be non-empty and not cut off at the token limit; with ``text_judge`` (any
    ecocascade :class:`Judge`) it must also satisfy that judge, asked about the last user
    message. When the call asked for JSON (``json_output=True``) a text reply must parse as JSON;
    when it gave a pydantic model, it must validate against that model. Tool calls must name a
    tool that was offered, with arguments that parse as a JSON object, contain the schema's
    required fields, and no others when the schema forbids additional properties.
    """

    def __init__(self, text_judge: Judge | None = None) -> None:
        if text_judge is not None and not isinstance(text_judge, Judge):
            raise ConfigError(
                f"expected a judge (an object with .name and async .judge()), got {text_judge!r}",
                where="judge",
            )
        self.text_judge = text_judge

    @property
    def name(self) -> str:
        inner = f"+{self.text_judge.name}" if self.text_judge is not None else ""
        return f"well_formed{inner}"

    async def judge_reply(
        self,
        messages: Sequence[LLMMessage],
        tools: Sequence[Tool | ToolSchema],
        result: CreateResult,
        *,
        json_output: bool | type[BaseModel] | None = None,
    ) -> Verdict:
        if isinstance(result.content, str):
            if not result.content.strip():
                return Verdict(False, "the reply is empty", judge=self.name)
            if result.finish_reason == "length":
                return Verdict(False, "the reply was cut off at the token limit", judge=self.name)
            problem = json_problem(result.content, json_output)
            if problem is not None:
                return Verdict(False, problem, judge=self.name)
            if self.text_judge is None:
                return Verdict(True, "a non-empty reply", judge=self.name)
            return await self.text_judge.judge(last_user_text(messages), result.content)
        if not result.content:
            return Verdict(False, "the reply has neither text nor tool calls", judge=self.name)
        problem = tool_call_problem(result.content, tools)
        if problem is not None:
            return Verdict(False, problem, judge=self.name)
        return Verdict(True, "well-formed tool calls", judge=self.name)


def json_problem(text: str, json_output: bool | type[BaseModel] | None) -> str | None:
    """What is wrong with ``text`` as the JSON a call asked for, or ``None`` (also when the call
    asked for no JSON)."""
    if isinstance(json_output, type) and issubclass(json_output, BaseModel):
        try:
            json_output.model_validate_json(text)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "the reply"
            return f"the reply does not match {json_output.__name__}: {where}: {first['msg']}"
        return None
    if json_output:
        try:
            json.loads(text)
        except json.JSONDecodeError as error:
            return f"the reply is not valid JSON ({error.msg})"
    return None


def tool_call_problem(
    calls: Sequence[FunctionCall], tools: Sequence[Tool | ToolSchema]
) -> str | None:
    """What is wrong with these tool calls given the tools offered, or ``None``."""
    schemas = {s["name"]: s for s in (tool_schema(t) for t in tools)}
    for call in calls:
        schema = schemas.get(call.name)
        if schema is None:
            offered = ", ".join(sorted(schemas)) or "none"
            return f"calls unknown tool {call.name!r} (offered: {offered})"
        try:
            arguments = json.loads(call.arguments or "{}")
        except json.JSONDecodeError as error:
            return f"the arguments of {call.name} are not valid JSON ({error.msg})"
        if not isinstance(arguments, dict):
            return f"the arguments of {call.name} are not a JSON object"
        parameters: Mapping[str, Any] = schema.get("parameters") or {}
        missing = [k for k in parameters.get("required", ()) if k not in arguments]
        if missing:
            return f"{call.name} misses required argument(s) {', '.join(missing)}"
        if parameters.get("additionalProperties") is False:
            known = set(parameters.get("properties") or {})
            extra = sorted(set(arguments) - known)
            if extra:
                return f"{call.name} got unknown argument(s) {', '.join(extra)}"
    return None


def last_user_text(messages: Sequence[LLMMessage]) -> str:
    """The text of the last user message: what a text judge is asked about."""
    for message in reversed(messages):
        if isinstance(message, UserMessage):
            if isinstance(message.content, str):
                return message.content
            return " ".join(p for p in message.content if isinstance(p, str))
    return ""


class CascadeChatCompletionClient(ChatCompletionClient):
    """An AutoGen model client that tries each call on the cheapest tier first.

    ``tiers`` go cheapest first: model strings, Tiers, or LiteLLM clients (to give a tier its own
    ``model_info``). ``judge`` is a :class:`CallJudge`, or an ecocascade
    :class:`Judge` applied to text replies (tool calls are then checked for well-formedness);
    the default is :class:`WellFormedReply`. ``cache`` reuses accepted replies to identical
    requests (exact only, under ``namespace``). ``model_info`` defaults to what every tier
    supports (function calling only if all of them do, and so on); override it to route tool
    calls past tiers that cannot make them: those are then skipped for such calls.

    ``create_stream`` streams only the last tier, which has no one to escalate to; an earlier tier
    must be judged before its reply can be shown, so its accepted reply comes as one chunk.
    """

    component_type = "model"

    def __init__(
        self,
        tiers: Sequence[Tier | str | LiteLLMChatCompletionClient],
        *,
        judge: CallJudge | Judge | None = None,
        cache: ResponseCache | None = None,
        namespace: str = "autogen",
        model_info: ModelInfo | None = None,
    ) -> None:
        if isinstance(tiers, str) or not tiers:
            raise ConfigError("pass a non-empty list of tiers, cheapest first", where="tiers")
        self.clients = tuple(
            t if isinstance(t, LiteLLMChatCompletionClient) else LiteLLMChatCompletionClient(t)
            for t in tiers
        )
        self.tiers: tuple[Tier, ...] = tuple(c.tier for c in self.clients)
        self.judge: CallJudge = _call_judge(judge)
        self.cache = cache
        self.namespace = namespace
        self._model_info = model_info if model_info is not None else _intersection(self.clients)
        self._actual_usage = _ZERO
        self._total_usage = _ZERO
        self.total_cost_usd: float | None = 0.0
        self.calls = 0
        self.retries = 0
        self.cache_hits = 0
        self.last_result: CascadeResult | None = None
        self.last_cost_usd: float | None = None

    def __repr__(self) -> str:
        ladder = " → ".join(t.label for t in self.tiers)
        return f"CascadeChatCompletionClient({ladder}, judge={self.judge.name})"

    @property
    def last_tier(self) -> int | None:
        """The tier whose reply the last call returned (for a cache hit: the one that made it)."""
        return None if self.last_result is None else self.last_result.tier

    @property
    def last_model(self) -> str | None:
        return None if self.last_result is None else self.last_result.model

    @property
    def fingerprint(self) -> str:
        """Ladder and judge: a cached reply only serves a client with an equal fingerprint."""
        judge: dict[str, Any] = {"name": self.judge.name, "type": type(self.judge).__qualname__}
        text_judge = getattr(self.judge, "text_judge", None)
        if text_judge is not None:
            judge["text_judge"] = [text_judge.name, type(text_judge).__qualname__]
        described = {
            "tiers": [
                {"model": t.model, "api_base": t.api_base, "params": dict(sorted(t.params.items()))}
                for t in self.tiers
            ],
            "judge": judge,
        }
        raw = json.dumps(described, sort_keys=True, default=str)
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    # -- calls -------------------------------------------------------------------------------

    async def create(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = (),
        tool_choice: ToolChoice = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = _NO_ARGS,
        cancellation_token: CancellationToken | None = None,
    ) -> CreateResult:
        """The first accepted reply, cheapest tier first; raises CascadeFailedError if none."""
        async for item in self._walk(
            messages, tools, tool_choice, json_output, extra_create_args, cancellation_token, False
        ):
            if isinstance(item, CreateResult):
                return item
        raise AssertionError("the ladder walk ends with a result or an error")  # pragma: no cover

    async def create_stream(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = (),
        tool_choice: ToolChoice = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = _NO_ARGS,
        cancellation_token: CancellationToken | None = None,
    ) -> AsyncGenerator[str | CreateResult, None]:
        """Chunks then the result: live from the last tier, one chunk from an earlier one."""
        async for item in self._walk(
            messages, tools, tool_choice, json_output, extra_create_args, cancellation_token, True
        ):
            yield item

    async def _walk(
        self,
        messages: Sequence[LLMMessage],
        tools: Sequence[Tool | ToolSchema],
        tool_choice: ToolChoice,
        json_output: bool | type[BaseModel] | None,
        extra_create_args: Mapping[str, Any],
        cancellation_token: CancellationToken | None,
        stream: bool,
    ) -> AsyncGenerator[str | CreateResult, None]:
        run_id = uuid.uuid4().hex[:12]
        bound = log.bind(run_id=run_id)
        query = last_user_text(messages)
        key = self._cache_key(messages, tools, tool_choice, json_output, extra_create_args)
        cached = await self._cache_lookup(key, bound)
        if cached is not None:
            reused, hit = cached
            self._finish(query, run_id, (), "cached", cost=0.0, hit=hit)
            if stream and isinstance(reused.content, str) and reused.content:
                yield reused.content
            yield reused
            return

        attempts: list[Attempt] = []
        spent: float | None = 0.0
        last = len(self.clients) - 1
        for index, client in enumerate(self.clients):
            unsupported = _unsupported(client, messages, tools)
            if unsupported is not None:
                attempt = Attempt(
                    tier=index,
                    model=client.label,
                    local=client.tier.is_local,
                    verdict="error",
                    error="unsupported",
                    error_message=f"{client.label} {unsupported}",
                )
                attempts.append(attempt)
                log_attempt(bound, attempt, reason=attempt.reason or attempt.error_message)
                self._log_escalation(bound, index, attempt)
                continue
            args: dict[str, Any] = {
                "tools": tools,
                "tool_choice": tool_choice,
                "json_output": json_output,
                "extra_create_args": extra_create_args,
                "cancellation_token": cancellation_token,
            }
            started = time.perf_counter()
            outcome: tuple[CreateResult, CallStats] | None = None
            try:
                if stream and index == last:
                    async for item in client.create_stream_with_stats(messages, **args):
                        if isinstance(item, str):
                            yield item
                        else:
                            outcome = item
                else:
                    outcome = await client.create_with_stats(messages, **args)
            except ProviderError as error:
                attempt = Attempt(
                    tier=index,
                    model=client.label,
                    local=client.tier.is_local,
                    verdict="error",
                    error=error.kind,
                    error_message=str(error),
                    latency_s=time.perf_counter() - started,
                    retries=error.retries,
                )
                self.retries += error.retries
                attempts.append(attempt)
                log_attempt(bound, attempt, reason=attempt.reason or attempt.error_message)
                self._log_escalation(bound, index, attempt)
                continue
            assert outcome is not None
            result, stats = outcome
            self._account(stats)
            spent = add_costs(spent, stats.cost_usd)

            verdict, judge_error, judge_cost, judged_in = await self._judge(
                messages, tools, result, json_output, bound.bind(tier=index, model=client.label)
            )
            self.total_cost_usd = add_costs(self.total_cost_usd, judge_cost)
            spent = add_costs(spent, judge_cost)
            attempt = Attempt(
                tier=index,
                model=client.label,
                local=client.tier.is_local,
                verdict="error" if verdict is None else "accept" if verdict.accepted else "reject",
                answer=_describe_reply(result),
                reason="the judge could not reach a verdict" if verdict is None else verdict.reason,
                judge=self.judge.name if verdict is None else (verdict.judge or self.judge.name),
                error="judge_error" if verdict is None else None,
                error_message=judge_error,
                usage=Usage(result.usage.prompt_tokens, result.usage.completion_tokens),
                cost_usd=stats.cost_usd,
                judge_cost_usd=judge_cost,
                latency_s=stats.latency_s,
                judge_latency_s=judged_in,
                retries=stats.retries,
            )
            attempts.append(attempt)
            log_attempt(bound, attempt, reason=attempt.reason or attempt.error_message)
            if attempt.accepted:
                await self._cache_store(key, result, index, client.label, bound)
                self._finish(query, run_id, attempts, "accepted", cost=spent)
                bound.info(
                    "cascade.resolved",
                    tier=index,
                    model=client.label,
                    attempts=len(attempts),
                    cost_usd=spent,
                )
                if stream and index != last and isinstance(result.content, str) and result.content:
                    yield result.content
                yield result
                return
            self._log_escalation(bound, index, attempt)

        failed = self._finish(query, run_id, attempts, "exhausted", cost=spent)
        bound.info("cascade.unresolved", attempts=len(attempts), cost_usd=spent)
        raise CascadeFailedError(failed)

    async def _judge(
        self,
        messages: Sequence[LLMMessage],
        tools: Sequence[Tool | ToolSchema],
        result: CreateResult,
        json_output: bool | type[BaseModel] | None,
        bound: Any,
    ) -> tuple[Verdict | None, str | None, float | None, float]:
        """The verdict (``None``: no verdict, and why), what judging cost, and how long it took."""
        started = time.perf_counter()
        try:
            verdict = await self.judge.judge_reply(messages, tools, result, json_output=json_output)
        except JudgeError as error:
            return None, str(error), error.cost_usd, time.perf_counter() - started
        except ConfigError:
            raise
        except Exception as error:  # a crashing judge means "not verified", never "accepted"
            bound.warning("judge.crashed", judge=self.judge.name, exc_info=error)
            failure = f"{type(error).__name__}: {error}"
            return None, failure, 0.0, time.perf_counter() - started
        bound.info(
            "judge.verdict",
            judge=verdict.judge or self.judge.name,
            verdict="accept" if verdict.accepted else "reject",
            reason=verdict.reason,
            cost_usd=verdict.cost_usd,
        )
        return verdict, None, verdict.cost_usd, time.perf_counter() - started

    def _account(self, stats: CallStats) -> None:
        self._actual_usage = _add(self._actual_usage, stats.usage)
        self._total_usage = _add(self._total_usage, stats.usage)
        self.total_cost_usd = add_costs(self.total_cost_usd, stats.cost_usd)
        self.calls += 1
        self.retries += stats.retries

    def _finish(
        self,
        query: str,
        run_id: str,
        attempts: Sequence[Attempt],
        stop: StopReason,
        *,
        cost: float | None,
        hit: CacheHit | None = None,
    ) -> CascadeResult:
        result = CascadeResult(
            query=query, run_id=run_id, attempts=tuple(attempts), stop_reason=stop, cache=hit
        )
        self.last_result = result
        self.last_cost_usd = cost
        return result

    def _log_escalation(self, bound: Any, index: int, attempt: Attempt) -> None:
        if index + 1 < len(self.clients):
            bound.info(
                "cascade.escalated",
                from_tier=index,
                to_tier=index + 1,
                from_model=attempt.model,
                to_model=self.clients[index + 1].label,
                verdict=attempt.verdict,
                reason=attempt.error or attempt.reason,
            )

    # -- the cache ---------------------------------------------------------------------------

    def _cache_key(
        self,
        messages: Sequence[LLMMessage],
        tools: Sequence[Tool | ToolSchema],
        tool_choice: ToolChoice,
        json_output: bool | type[BaseModel] | None,
        extra_create_args: Mapping[str, Any],
    ) -> str | None:
        if self.cache is None:
            return None
        if isinstance(json_output, type):
            output: Any = json_output.model_json_schema()
        else:
            output = json_output
        request = {
            "messages": to_openai_messages(messages),
            "tools": to_openai_tools(tools),
            "tool_choice": tool_choice if isinstance(tool_choice, str) else tool_choice.name,
            "json_output": output,
            "extra_create_args": dict(extra_create_args),
        }
        raw = json.dumps(request, sort_keys=True, default=str)
        digest = hashlib.sha256(raw.encode()).hexdigest()
        return self.cache.key(f"autogen-call:{digest}", self.namespace, self.fingerprint)

    async def _cache_lookup(
        self, key: str | None, bound: Any
    ) -> tuple[CreateResult, CacheHit] | None:
        if self.cache is None or key is None:
            return None
        try:
            entry = await self.cache.backend.get(key)
            if entry is not None:
                await self.cache.backend.record_hit(key)
        except Exception as error:  # a cache is an optimisation: bypass it, answer anyway
            bound.warning("cache.unavailable", during="lookup", error=short_error(error))
            return None
        if entry is None:
            bound.info("cache.miss", namespace=self.namespace, key=key)
            return None
        result = CreateResult.model_validate_json(entry.answer).model_copy(update={"cached": True})
        hit = CacheHit(
            kind="exact",
            key=key,
            answer=_describe_reply(result),
            model=entry.model,
            tier=entry.tier,
            cached_query=entry.query,
            similarity=1.0,
            age_s=round(max(0.0, time.time() - entry.created_at), 3),
        )
        self._total_usage = _add(self._total_usage, result.usage)
        self.cache_hits += 1
        bound.info(
            "cache.hit",
            kind="exact",
            key=key,
            namespace=self.namespace,
            model=hit.model,
            tier=hit.tier,
            age_s=hit.age_s,
        )
        return result, hit

    async def _cache_store(
        self, key: str | None, result: CreateResult, tier: int, model: str, bound: Any
    ) -> None:
        if self.cache is None or key is None:
            return
        now = time.time()
        ttl = self.cache.namespace_ttl_s.get(self.namespace, self.cache.ttl_s)
        entry = CacheEntry(
            key=key,
            namespace=self.namespace,
            fingerprint=self.fingerprint,
            query=f"autogen-call:{key}",
            answer=result.model_dump_json(),
            model=model,
            tier=tier,
            created_at=now,
            expires_at=now + ttl,
        )
        try:
            await self.cache.backend.put(entry)
        except Exception as error:
            bound.warning("cache.unavailable", during="store", error=short_error(error))
            return
        bound.info("cache.stored", key=key, ttl_s=round(ttl))

    # -- accounting and limits ---------------------------------------------------------------

    def actual_usage(self) -> RequestUsage:
        """Tokens sent to providers, rejected tiers' calls included."""
        return self._actual_usage

    def total_usage(self) -> RequestUsage:
        """``actual_usage`` plus the tokens of the replies served from the cache."""
        return self._total_usage

    def count_tokens(
        self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = ()
    ) -> int:
        """The largest count any tier's tokenizer gives (the safe one for context limits)."""
        return max(c.count_tokens(messages, tools=tools) for c in self.clients)

    def remaining_tokens(
        self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = ()
    ) -> int:
        """Room left on the tightest tier, since any tier may have to answer."""
        return min(c.remaining_tokens(messages, tools=tools) for c in self.clients)

    @property
    def model_info(self) -> ModelInfo:
        return self._model_info

    @property
    def capabilities(self) -> Any:  # deprecated by AutoGen in favour of model_info
        info = self._model_info
        return {
            "vision": info["vision"],
            "function_calling": info["function_calling"],
            "json_output": info["json_output"],
        }

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


def _call_judge(judge: CallJudge | Judge | None) -> CallJudge:
    if judge is None:
        return WellFormedReply()
    if isinstance(judge, CallJudge):
        return judge
    if isinstance(judge, Judge):
        return WellFormedReply(text_judge=judge)
    raise ConfigError(
        f"expected a CallJudge (async .judge_reply()) or a Judge (async .judge()), got {judge!r}",
        where="judge",
    )


def _intersection(clients: Sequence[LiteLLMChatCompletionClient]) -> ModelInfo:
    infos = [c.model_info for c in clients]
    families = {i["family"] for i in infos}
    return ModelInfo(
        vision=all(i["vision"] for i in infos),
        function_calling=all(i["function_calling"] for i in infos),
        json_output=all(i["json_output"] for i in infos),
        family=families.pop() if len(families) == 1 else ModelFamily.UNKNOWN,
        structured_output=all(i.get("structured_output", False) for i in infos),
        multiple_system_messages=all(i.get("multiple_system_messages") for i in infos),
    )


def _unsupported(
    client: LiteLLMChatCompletionClient,
    messages: Sequence[LLMMessage],
    tools: Sequence[Tool | ToolSchema],
) -> str | None:
    info = client.model_info
    if tools and not info["function_calling"]:
        return "cannot call functions and tools were offered"
    if not info["vision"] and any(
        isinstance(m, UserMessage)
        and not isinstance(m.content, str)
        and any(isinstance(p, Image) for p in m.content)
        for m in messages
    ):
        return "cannot see images and the messages hold some"
    return None


def _describe_reply(result: CreateResult) -> str:
    if isinstance(result.content, str):
        return result.content
    return "; ".join(f"{call.name}({call.arguments})" for call in result.content)
