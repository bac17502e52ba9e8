"""The cascade as an AutoGen model client: every model call goes cheapest tier first.

``CascadeChatCompletionClient`` is a drop-in ``ChatCompletionClient`` for an existing AutoGen app
(``AssistantAgent``, tools, ``RoundRobinGroupChat``…). It is a thin adapter over the one ladder
walk, :meth:`Cascade.resolve <ecocascade.controller.cascade.Cascade.resolve>`: each ``create``
call becomes a :class:`~ecocascade.types.ChatRequest` (messages, tools, tool choice, JSON output,
``extra_create_args``), and the walk does the rest —

1. (cache) an accepted reply to exactly this request — same messages, tools, options, ladder
   and judge — is returned at cost 0 with ``cached=True``;
2. (solution store, router, budget) as in any cascade, when given;
3. a tier that cannot serve the request (tools offered but no function calling; images but no
   vision) is skipped;
4. the tier answers; a provider error that survives its retries escalates;
5. the judge decides, with the same :class:`~ecocascade.types.JudgeContext` a cascade gives: by
   default :class:`~ecocascade.judges.reply.WellFormedReply` — non-empty text, the JSON asked
   for, or tool calls that name an offered tool with arguments valid against its schema;
6. accepted → cached and returned; otherwise the next tier gets the same request.

If no tier is accepted the call raises :class:`~ecocascade.CascadeFailedError` carrying every
attempt. Usage and cost add up across tiers; ``last_tier``/``last_result`` say who answered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import structlog
from autogen_core import CancellationToken
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
from pydantic import BaseModel

from ecocascade.agents.client import LiteLLMChatCompletionClient
from ecocascade.agents.messages import (
    NO_ARGS,
    RESERVED_ARGS,
    ToolChoice,
    add_usage,
    create_result,
    openai_tool_choice,
    to_openai_messages,
    to_openai_tools,
)
from ecocascade.controller.cascade import Cascade
from ecocascade.controller.demos import DemoSettings
from ecocascade.controller.events import Finished, TextDelta
from ecocascade.controller.result import CascadeResult
from ecocascade.exceptions import CascadeFailedError, ConfigError
from ecocascade.judges.reply import WellFormedReply, json_problem, tool_call_problem
from ecocascade.judging import ask_judge
from ecocascade.models.tier import Tier
from ecocascade.types import ChatRequest, Judge, JudgeContext, Verdict, add_costs

if TYPE_CHECKING:
    from ecocascade.cache.cache import ResponseCache
    from ecocascade.routing import Router
    from ecocascade.store.chroma import SolutionStore

__all__ = [
    "CallJudge",
    "CascadeChatCompletionClient",
    "WellFormedReply",
    "json_problem",
    "last_user_text",
    "tool_call_problem",
]

log = structlog.get_logger(__name__)

_ZERO = RequestUsage(prompt_tokens=0, completion_tokens=0)


@runtime_checkable
class CallJudge(Protocol):
    """A judge of one AutoGen model call's reply, in AutoGen's own terms (the older plug point;
    an ecocascade :class:`~ecocascade.types.Judge` sees the same reply through its context).

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


@dataclass(frozen=True, slots=True)
class _Call:
    """One ``create`` call's AutoGen inputs, for judges that need them in AutoGen's terms."""

    messages: Sequence[LLMMessage]
    tools: Sequence[Tool | ToolSchema]
    json_output: bool | type[BaseModel] | None


class _ReplyJudge:
    """The client's judge as the walk asks it: an ecocascade judge gets the walk's context as
    it is (and a per-call pydantic ``json_output`` to validate against); a :class:`CallJudge`
    gets the call's AutoGen messages, tools and the reply as a ``CreateResult``."""

    def __init__(self, inner: CallJudge | Judge, calls: Mapping[int, _Call]) -> None:
        self.inner = inner
        self._calls = calls

    @property
    def name(self) -> str:
        return self.inner.name

    async def judge(self, query: str, answer: str, context: JudgeContext | None = None) -> Verdict:
        request = context.request if context is not None else None
        call = self._calls.get(id(request)) if request is not None else None
        inner = self.inner
        if not isinstance(inner, Judge):
            if call is None or context is None or context.solution is None:
                raise ConfigError("a CallJudge only judges the client's own calls", where="judge")
            solution = context.solution
            reply = create_result(
                solution.message or {"role": "assistant", "content": answer},
                solution.finish_reason,
                RequestUsage(solution.usage.input_tokens, solution.usage.output_tokens),
            )
            return await inner.judge_reply(
                call.messages, call.tools, reply, json_output=call.json_output
            )
        typed = call.json_output if call is not None else None
        if isinstance(inner, WellFormedReply) and isinstance(typed, type) and not inner.output_type:
            inner = WellFormedReply(inner.text_judge, output_type=typed)
        return await ask_judge(inner, query, answer, context)


class CascadeChatCompletionClient(ChatCompletionClient):
    """An AutoGen model client that tries each call on the cheapest tier first.

    ``tiers`` go cheapest first: model strings, Tiers, or LiteLLM clients (to give a tier its own
    ``model_info``). ``judge`` is an ecocascade :class:`Judge` applied to text replies (tool
    calls are then checked for well-formedness), a :class:`CallJudge`, or by default
    :class:`WellFormedReply`. ``cache`` reuses accepted replies to identical requests (exact
    only, under ``namespace``). ``budget_usd``, ``router``, ``store`` and ``demos`` work as in
    :class:`~ecocascade.Cascade` (demonstrations are retrieved on the last user message and
    recorded for accepted text replies; ``demos.namespace`` defaults to ``namespace``).
    ``model_info`` defaults to what every tier supports (function calling only if all of them
    do, and so on); override it to route tool calls past tiers that cannot make them: those are
    then skipped for such calls.

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
        budget_usd: float | None = None,
        router: Router | None = None,
        store: SolutionStore | None = None,
        demos: DemoSettings | None = None,
    ) -> None:
        if isinstance(tiers, str) or not tiers:
            raise ConfigError("pass a non-empty list of tiers, cheapest first", where="tiers")
        self.clients = tuple(
            t if isinstance(t, LiteLLMChatCompletionClient) else LiteLLMChatCompletionClient(t)
            for t in tiers
        )
        self.tiers: tuple[Tier, ...] = tuple(c.tier for c in self.clients)
        self.judge: CallJudge | Judge = _call_judge(judge)
        self.cache = cache
        self.namespace = namespace
        self._calls: dict[int, _Call] = {}
        self._by_tier = {id(c.tier): c for c in self.clients}
        self.cascade = Cascade(
            self.tiers,
            judge=_ReplyJudge(self.judge, self._calls),
            budget_usd=budget_usd,
            store=store,
            demos=demos or DemoSettings(namespace=namespace),
            cache=cache,
            router=router,
            skip_tier=self._unsupported,
        )
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
        """The walk's fingerprint: a cached reply only serves a client with an equal one."""
        return self.cascade.fingerprint

    # -- calls -------------------------------------------------------------------------------

    async def create(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = (),
        tool_choice: ToolChoice = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = NO_ARGS,
        cancellation_token: CancellationToken | None = None,
    ) -> CreateResult:
        """The first accepted reply, cheapest tier first; raises CascadeFailedError if none."""
        request = self.request(messages, tools, tool_choice, json_output, extra_create_args)
        self._calls[id(request)] = _Call(messages, tools, json_output)
        try:
            task = asyncio.ensure_future(self.cascade.resolve(request))
            if cancellation_token is not None:
                cancellation_token.link_future(task)
            result = await task
        finally:
            del self._calls[id(request)]
        return self._finish(result)

    async def create_stream(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = (),
        tool_choice: ToolChoice = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = NO_ARGS,
        cancellation_token: CancellationToken | None = None,
    ) -> AsyncGenerator[str | CreateResult, None]:
        """Chunks then the result: live from the last tier, one chunk from an earlier one."""
        request = self.request(messages, tools, tool_choice, json_output, extra_create_args)
        self._calls[id(request)] = _Call(messages, tools, json_output)
        finished: Finished | None = None
        try:
            async with contextlib.aclosing(self.cascade.stream(request)) as events:
                while True:
                    # Each wait is a future the token can cancel, so cancelling does not have
                    # to wait for the model's next chunk.
                    step = asyncio.ensure_future(anext(events, None))
                    if cancellation_token is not None:
                        cancellation_token.link_future(step)
                    event = await step
                    if event is None:
                        break
                    if isinstance(event, TextDelta):
                        yield event.text
                    elif isinstance(event, Finished):
                        finished = event
        finally:
            del self._calls[id(request)]
        assert finished is not None  # the walk always ends with Finished
        reply = self._finish(finished.result)
        if not finished.streamed and isinstance(reply.content, str) and reply.content:
            yield reply.content
        yield reply

    def request(
        self,
        messages: Sequence[LLMMessage],
        tools: Sequence[Tool | ToolSchema] = (),
        tool_choice: ToolChoice = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = NO_ARGS,
    ) -> ChatRequest:
        """The :class:`ChatRequest` one AutoGen call becomes."""
        reserved = RESERVED_ARGS & set(extra_create_args)
        if reserved:
            raise ConfigError(
                f"{sorted(reserved)} are set by the client, not through extra_create_args",
                where="extra_create_args",
            )
        response_format: Mapping[str, Any] | None = None
        if isinstance(json_output, type) and issubclass(json_output, BaseModel):
            response_format = _json_schema_format(json_output)
        elif json_output is True:
            response_format = {"type": "json_object"}
        return ChatRequest(
            messages=tuple(to_openai_messages(messages)),
            tools=tuple(to_openai_tools(tools)),
            tool_choice=openai_tool_choice(tool_choice, tools) if tools else None,
            response_format=response_format,
            params=dict(extra_create_args),
        )

    def _finish(self, result: CascadeResult) -> CreateResult:
        """Account for a walk's attempts; its accepted reply as a CreateResult, or raise."""
        self.last_result = result
        self.last_cost_usd = result.cost_usd
        for attempt in result.attempts:
            self.retries += attempt.retries
            self.total_cost_usd = add_costs(self.total_cost_usd, attempt.total_cost_usd)
            if attempt.answer is not None:  # the model answered (judged, whatever the verdict)
                self.calls += 1
                usage = RequestUsage(attempt.usage.input_tokens, attempt.usage.output_tokens)
                self._actual_usage = add_usage(self._actual_usage, usage)
                self._total_usage = add_usage(self._total_usage, usage)
        if not result.success:
            raise CascadeFailedError(result)
        message = result.message or {}
        tokens = result.answer_usage
        usage = RequestUsage(tokens.input_tokens, tokens.output_tokens)
        if result.cache is not None:
            self.cache_hits += 1
            self._total_usage = add_usage(self._total_usage, usage)
        return create_result(message, "stop", usage, cached=result.cache is not None)

    def _unsupported(self, tier: Tier, request: ChatRequest) -> str | None:
        client = self._by_tier.get(id(tier))
        if client is None:
            return None
        info = client.model_info
        if request.tools and not info["function_calling"]:
            return "cannot call functions and tools were offered"
        if not info["vision"] and any(_has_image(m) for m in request.messages):
            return "cannot see images and the messages hold some"
        return None

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


def last_user_text(messages: Sequence[LLMMessage]) -> str:
    """The text of the last user message: what a text judge is asked about."""
    for message in reversed(messages):
        if isinstance(message, UserMessage):
            if isinstance(message.content, str):
                return message.content
            return " ".join(p for p in message.content if isinstance(p, str))
    return ""


def _json_schema_format(model: type[BaseModel]) -> dict[str, Any]:
    """The ``response_format`` LiteLLM sends for a pydantic model (its own conversion)."""
    from litellm.llms.base_llm.base_utils import type_to_response_format_param

    converted = type_to_response_format_param(model)
    assert converted is not None
    return dict(converted)


def _has_image(message: Mapping[str, Any]) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(
        isinstance(p, Mapping) and p.get("type") == "image_url" for p in content
    )


def _call_judge(judge: CallJudge | Judge | None) -> CallJudge | Judge:
    if judge is None:
        return WellFormedReply()
    if isinstance(judge, WellFormedReply | CallJudge):
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
