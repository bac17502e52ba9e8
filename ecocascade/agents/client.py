"""An AutoGen ``ChatCompletionClient`` backed by LiteLLM, through ecocascade's ``TierClient``.

Any LiteLLM model — hosted, an OpenAI-compatible server, or a ``local/<name>`` tier — can drive
any AutoGen agent or team, with the same retries, typed errors and cost accounting as the
cascade::

    client = LiteLLMChatCompletionClient("openai/gpt-4o-mini", temperature=0)
    agent = AssistantAgent("assistant", model_client=client, tools=[get_weather])

Besides AutoGen's ``actual_usage()``/``total_usage()``, the client keeps ``total_cost_usd``
(``None`` once any call had no known price), ``calls``, ``retries`` and ``last_call``;
``create_with_stats``/``create_stream_with_stats`` also return one call's own :class:`CallStats`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

from autogen_core import CancellationToken, Component
from autogen_core.models import (
    ChatCompletionClient,
    CreateResult,
    LLMMessage,
    ModelInfo,
    RequestUsage,
)
from autogen_core.tools import Tool, ToolSchema
from pydantic import BaseModel, Field

from ecocascade._env import import_litellm
from ecocascade.agents.messages import (
    NO_ARGS,
    RESERVED_ARGS,
    ToolChoice,
    add_usage,
    openai_tool_choice,
    to_create_result,
    to_openai_messages,
    to_openai_tools,
)
from ecocascade.agents.model_info import context_window, derive_model_info
from ecocascade.exceptions import ConfigError
from ecocascade.models.client import Completion, TierClient
from ecocascade.models.tier import Price, RetryPolicy, Tier
from ecocascade.types import ChatModel, Message, add_costs

__all__ = [
    "CallStats",
    "LiteLLMChatCompletionClient",
    "LiteLLMClientConfig",
    "derive_model_info",
    "to_openai_messages",
    "to_openai_tools",
]

_TIER_FIELDS = frozenset({"api_base", "api_key_env", "price", "timeout_s", "retry", "name"})


@dataclass(frozen=True, slots=True)
class CallStats:
    """What one ``create``/``create_stream`` call spent (after any retries)."""

    model: str
    usage: RequestUsage
    cost_usd: float | None
    retries: int
    latency_s: float


class LiteLLMClientConfig(BaseModel):
    """What ``dump_component()`` writes: the tier and any model_info override — never a key,
    only the name of the environment variable that holds it."""

    model: str
    api_base: str | None = None
    api_key_env: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    price: dict[str, float | None] | None = None
    retry: dict[str, int | float] | None = None
    timeout_s: float = 60.0
    name: str | None = None
    model_info: ModelInfo | None = None
    context_window: int | None = None


class LiteLLMChatCompletionClient(ChatCompletionClient, Component[LiteLLMClientConfig]):
    """An AutoGen model client for one LiteLLM model (a tier of the ladder).

    ``model`` is a LiteLLM model string, a :class:`~ecocascade.Tier` or a
    :class:`~ecocascade.TierClient`. With a string or a Tier, ``params`` may set the tier's
    fields (``api_base``, ``api_key_env``, ``price``, ``timeout_s``, ``retry``, ``name``); the
    rest are completion parameters sent with every call (``temperature``, ``max_tokens``, …).
    ``model_info`` overrides what is derived from LiteLLM's model table (see
    :func:`derive_model_info`); ``context_window`` sets the prompt limit ``remaining_tokens``
    uses when the table does not know the model.
    """

    component_type = "model"
    component_config_schema = LiteLLMClientConfig
    component_provider_override = "ecocascade.agents.LiteLLMChatCompletionClient"

    def __init__(
        self,
        model: str | Tier | ChatModel,
        *,
        model_info: ModelInfo | None = None,
        context_window: int | None = None,
        **params: Any,
    ) -> None:
        self._client = _tier_client(model, params)
        self._model_info_override = model_info
        self._model_info: ModelInfo = (
            model_info if model_info is not None else derive_model_info(self._client.tier)
        )
        for key in ("vision", "function_calling", "json_output", "family"):
            if key not in self._model_info:
                raise ConfigError(f"model_info needs {key!r}", where="model_info")
        self._context_window = context_window
        self._actual_usage = RequestUsage(prompt_tokens=0, completion_tokens=0)
        self._total_usage = RequestUsage(prompt_tokens=0, completion_tokens=0)
        self.total_cost_usd: float | None = 0.0
        self.calls = 0
        self.retries = 0
        self.last_call: CallStats | None = None

    def __repr__(self) -> str:
        return f"LiteLLMChatCompletionClient({self.label!r})"

    @property
    def tier(self) -> Tier:
        return self._client.tier

    @property
    def tier_client(self) -> ChatModel:
        return self._client

    @property
    def label(self) -> str:
        return self._client.label

    def _to_config(self) -> LiteLLMClientConfig:
        tier = self.tier
        return LiteLLMClientConfig(
            model=tier.model,
            api_base=tier.api_base,
            api_key_env=tier.api_key_env,
            params=dict(tier.params),
            price=None if tier.price is None else dataclasses.asdict(tier.price),
            retry=dataclasses.asdict(tier.retry),
            timeout_s=tier.timeout_s,
            name=tier.name,
            model_info=self._model_info_override,
            context_window=self._context_window,
        )

    @classmethod
    def _from_config(cls, config: LiteLLMClientConfig) -> Self:
        tier = Tier(
            config.model,
            api_base=config.api_base,
            api_key_env=config.api_key_env,
            params=config.params,
            price=None if config.price is None else _price(config.price),
            retry=RetryPolicy() if config.retry is None else _retry_policy(config.retry),
            timeout_s=config.timeout_s,
            name=config.name,
        )
        return cls(tier, model_info=config.model_info, context_window=config.context_window)

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
        """One chat completion. Provider failures raise typed :class:`ProviderError`\\ s."""
        result, _ = await self.create_with_stats(
            messages,
            tools=tools,
            tool_choice=tool_choice,
            json_output=json_output,
            extra_create_args=extra_create_args,
            cancellation_token=cancellation_token,
        )
        return result

    async def create_with_stats(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = (),
        tool_choice: ToolChoice = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = NO_ARGS,
        cancellation_token: CancellationToken | None = None,
    ) -> tuple[CreateResult, CallStats]:
        """:meth:`create`, plus what this very call cost (``last_call`` may be another
        call's by the time you read it, when calls run concurrently)."""
        request, params = self._request(
            messages, tools, tool_choice, json_output, extra_create_args
        )
        task = asyncio.ensure_future(self._client.complete(request, **params))
        if cancellation_token is not None:
            cancellation_token.link_future(task)
        completion = await task
        return self._account(completion)

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
        """Text chunks as the model writes them, then the whole :class:`CreateResult`."""
        async for item in self.create_stream_with_stats(
            messages,
            tools=tools,
            tool_choice=tool_choice,
            json_output=json_output,
            extra_create_args=extra_create_args,
            cancellation_token=cancellation_token,
        ):
            yield item if isinstance(item, str) else item[0]

    async def create_stream_with_stats(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = (),
        tool_choice: ToolChoice = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = NO_ARGS,
        cancellation_token: CancellationToken | None = None,
    ) -> AsyncGenerator[str | tuple[CreateResult, CallStats], None]:
        """:meth:`create_stream` ending with the result and what this call cost."""
        request, params = self._request(
            messages, tools, tool_choice, json_output, extra_create_args
        )
        final: Completion | None = None
        # Closed however we leave (an error, a cancelled token, a consumer that stops reading),
        # so the model's stream and its connection are released now, not at garbage collection.
        async with contextlib.aclosing(self._client.stream(request, **params)) as stream:
            while True:
                # Each wait is a future the token can cancel, so cancelling does not have to
                # wait for the model's next chunk.
                step = asyncio.ensure_future(anext(stream, None))
                if cancellation_token is not None:
                    cancellation_token.link_future(step)
                item = await step
                if item is None:
                    break
                if isinstance(item, str):
                    yield item
                elif isinstance(item, Completion):
                    final = item
        assert final is not None  # TierClient.stream always ends with a Completion
        yield self._account(final)

    def _request(
        self,
        messages: Sequence[LLMMessage],
        tools: Sequence[Tool | ToolSchema],
        tool_choice: ToolChoice,
        json_output: bool | type[BaseModel] | None,
        extra_create_args: Mapping[str, Any],
    ) -> tuple[list[Message], dict[str, Any]]:
        reserved = RESERVED_ARGS & set(extra_create_args)
        if reserved:
            raise ConfigError(
                f"{sorted(reserved)} are set by the client, not through extra_create_args",
                where="extra_create_args",
            )
        params: dict[str, Any] = dict(extra_create_args)
        if tools:
            if not self._model_info["function_calling"]:
                raise ConfigError(
                    f"{self.label} does not support function calling (model_info), "
                    "but tools were passed",
                    where="tools",
                )
            params["tools"] = to_openai_tools(tools)
            params["tool_choice"] = openai_tool_choice(tool_choice, tools)
        if isinstance(json_output, type) and issubclass(json_output, BaseModel):
            params["response_format"] = json_output
        elif json_output is True:
            params["response_format"] = {"type": "json_object"}
        return to_openai_messages(messages), params

    def _account(self, completion: Completion) -> tuple[CreateResult, CallStats]:
        usage = RequestUsage(
            prompt_tokens=completion.usage.input_tokens,
            completion_tokens=completion.usage.output_tokens,
        )
        self._actual_usage = add_usage(self._actual_usage, usage)
        self._total_usage = add_usage(self._total_usage, usage)
        self.total_cost_usd = add_costs(self.total_cost_usd, completion.cost_usd)
        self.calls += 1
        self.retries += completion.retries
        stats = CallStats(
            model=self.label,
            usage=usage,
            cost_usd=completion.cost_usd,
            retries=completion.retries,
            latency_s=completion.latency_s,
        )
        self.last_call = stats
        return to_create_result(completion, usage), stats

    # -- accounting and limits ---------------------------------------------------------------

    def actual_usage(self) -> RequestUsage:
        return self._actual_usage

    def total_usage(self) -> RequestUsage:
        return self._total_usage

    def count_tokens(
        self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = ()
    ) -> int:
        """Prompt tokens by LiteLLM's tokenizer for the model (offline; cl100k when unknown)."""
        litellm = import_litellm()
        return int(
            litellm.token_counter(
                model=self.tier.model,
                messages=to_openai_messages(messages),
                tools=to_openai_tools(tools) or None,
                use_default_image_token_count=True,  # never fetch an image URL to count it
            )
        )

    def remaining_tokens(
        self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = ()
    ) -> int:
        return self.context_window - self.count_tokens(messages, tools=tools)

    @property
    def context_window(self) -> int:
        """Prompt tokens the model accepts: the override, LiteLLM's table, or a default."""
        if self._context_window is not None:
            return self._context_window
        return context_window(self.tier)

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
        """Nothing of its own to release: HTTP clients are LiteLLM's, local servers the
        process's (stopped at exit)."""


# -- construction and model info -------------------------------------------------------------


def _tier_client(model: str | Tier | ChatModel, params: dict[str, Any]) -> ChatModel:
    if isinstance(model, ChatModel):
        if params:
            raise ConfigError(
                f"{sorted(params)}: set parameters on the Tier when passing a TierClient",
                where="params",
            )
        return model
    tier_fields = {k: params.pop(k) for k in list(params) if k in _TIER_FIELDS}
    if isinstance(model, str):
        return TierClient(Tier(model, params=params, **tier_fields))
    if isinstance(model, Tier):
        if params or tier_fields:
            model = dataclasses.replace(model, params={**model.params, **params}, **tier_fields)
        return TierClient(model)
    raise ConfigError(
        f"expected a LiteLLM model string, a Tier or a TierClient, got {model!r}", where="model"
    )


def _retry_policy(values: Mapping[str, int | float]) -> RetryPolicy:
    default = RetryPolicy()
    return RetryPolicy(
        max_retries=int(values.get("max_retries", default.max_retries)),
        base_delay_s=values.get("base_delay_s", default.base_delay_s),
        max_delay_s=values.get("max_delay_s", default.max_delay_s),
    )


def _price(fields: dict[str, float | None]) -> Price:
    """A component config's price back as a :class:`Price` (a missing rate is a clear error)."""
    rates = {name: fields.get(name) for name in ("input_per_mtok", "output_per_mtok")}
    if any(rate is None for rate in rates.values()):
        raise ConfigError("price needs input_per_mtok and output_per_mtok", where="price")
    return Price(
        input_per_mtok=float(fields["input_per_mtok"] or 0.0),
        output_per_mtok=float(fields["output_per_mtok"] or 0.0),
        cached_input_per_mtok=fields.get("cached_input_per_mtok"),
    )
