"""LiteLLMChatCompletionClient: real AutoGen classes, real LiteLLM, the scripted loopback server."""

from __future__ import annotations

import asyncio
import json
import time

import PIL.Image
import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.messages import TextMessage, ToolCallExecutionEvent
from autogen_core import CancellationToken, FunctionCall, Image
from autogen_core.models import (
    AssistantMessage,
    ChatCompletionClient,
    CreateResult,
    FunctionExecutionResult,
    FunctionExecutionResultMessage,
    ModelFamily,
    ModelInfo,
    RequestUsage,
    SystemMessage,
    UserMessage,
)
from autogen_core.tools import FunctionTool
from pydantic import BaseModel

from ecocascade import ConfigError, Price, RetryPolicy, Tier, TierClient
from ecocascade.agents import LiteLLMChatCompletionClient
from ecocascade.exceptions import ProviderRejectedError
from ecocascade.testing import FakeLLMServer, Fault, Reply, ToolCall

FAST = RetryPolicy(max_retries=2, base_delay_s=0.01, max_delay_s=1.0)
PRICE = Price(input_per_mtok=1.0, output_per_mtok=2.0)


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


ADD = FunctionTool(add, description="Add two integers.")


def client_for(
    server: FakeLLMServer, model: str = "m", **params: object
) -> LiteLLMChatCompletionClient:
    params.setdefault("price", PRICE)
    return LiteLLMChatCompletionClient(
        f"openai/{model}", api_base=server.api_base, retry=FAST, timeout_s=5.0, **params
    )


def cost(tokens_in: int, tokens_out: int) -> float:
    return (tokens_in * PRICE.input_per_mtok + tokens_out * PRICE.output_per_mtok) / 1e6


async def test_create_sends_every_message_kind_in_openai_shape_and_returns_the_text(
    server: FakeLLMServer,
) -> None:
    server.script("m", Reply("It is 5.", prompt_tokens=30, completion_tokens=4))
    client = client_for(server)
    messages = [
        SystemMessage(content="Be brief."),
        UserMessage(content="What is 2+3?", source="user"),
        AssistantMessage(
            content=[FunctionCall(id="call_1", name="add", arguments='{"a": 2, "b": 3}')],
            source="assistant",
        ),
        FunctionExecutionResultMessage(
            content=[FunctionExecutionResult(content="5", name="add", call_id="call_1")]
        ),
    ]

    result = await client.create(messages)

    assert result.content == "It is 5." and result.finish_reason == "stop"
    assert result.usage == RequestUsage(prompt_tokens=30, completion_tokens=4)
    assert result.cached is False
    (request,) = server.requests
    assert [m["role"] for m in request.messages] == ["system", "user", "assistant", "tool"]
    assert request.messages[2]["tool_calls"][0]["function"] == {
        "name": "add",
        "arguments": '{"a": 2, "b": 3}',
    }
    assert request.messages[3] == {"role": "tool", "tool_call_id": "call_1", "content": "5"}


async def test_a_user_message_with_an_image_goes_out_as_openai_content_parts(
    server: FakeLLMServer,
) -> None:
    server.script("m", "A red square.")
    client = client_for(server)
    picture = Image.from_pil(PIL.Image.new("RGB", (4, 4), "red"))

    await client.create([UserMessage(content=["What is this?", picture], source="user")])

    text, image = server.requests[0].messages[0]["content"]
    assert text == {"type": "text", "text": "What is this?"}
    assert image["type"] == "image_url"
    assert image["image_url"]["url"].startswith("data:image/png;base64,")


async def test_a_tool_call_comes_back_as_function_calls_and_tools_go_out_as_openai_schema(
    server: FakeLLMServer,
) -> None:
    server.script("m", Reply(tool_calls=[ToolCall("add", {"a": 2, "b": 3}, id="call_7")]))
    client = client_for(server)

    result = await client.create([UserMessage(content="2+3?", source="user")], tools=[ADD])

    assert result.finish_reason == "function_calls"
    assert result.content == [FunctionCall(id="call_7", arguments='{"a": 2, "b": 3}', name="add")]
    body = server.requests[0].body
    (tool,) = body["tools"]
    assert tool["type"] == "function" and tool["function"]["name"] == "add"
    assert tool["function"]["parameters"]["required"] == ["a", "b"]
    assert body["tool_choice"] == "auto"


async def test_tool_choice_can_force_one_named_tool_or_be_required(server: FakeLLMServer) -> None:
    server.always("m", Reply(tool_calls=[ToolCall("add", {"a": 1, "b": 1})]))
    client = client_for(server)
    question = [UserMessage(content="1+1?", source="user")]

    await client.create(question, tools=[ADD], tool_choice=ADD)
    await client.create(question, tools=[ADD], tool_choice="required")

    first, second = server.requests
    assert first.body["tool_choice"] == {"type": "function", "function": {"name": "add"}}
    assert second.body["tool_choice"] == "required"
    with pytest.raises(ConfigError, match="tool_choice"):
        other = FunctionTool(lambda: 0, name="zero", description="zero")
        await client.create(question, tools=[ADD], tool_choice=other)


async def test_json_output_asks_for_json_mode_or_a_schema(server: FakeLLMServer) -> None:
    class Answer(BaseModel):
        value: int

    server.always("m", Reply('{"value": 5}'))
    client = client_for(server)
    question = [UserMessage(content="2+3 as JSON", source="user")]

    await client.create(question, json_output=True)
    result = await client.create(question, json_output=Answer)

    first, second = server.requests
    assert first.body["response_format"] == {"type": "json_object"}
    assert second.body["response_format"]["type"] == "json_schema"
    assert "value" in json.dumps(second.body["response_format"])
    assert isinstance(result.content, str)
    assert Answer.model_validate_json(result.content).value == 5


async def test_extra_create_args_reach_the_request_but_reserved_ones_are_refused(
    server: FakeLLMServer,
) -> None:
    server.script("m", "ok")
    client = client_for(server, temperature=0.3)
    question = [UserMessage(content="hi", source="user")]

    await client.create(question, extra_create_args={"max_tokens": 7})

    assert server.requests[0].body["temperature"] == 0.3
    assert server.requests[0].body["max_tokens"] == 7
    with pytest.raises(ConfigError, match="extra_create_args"):
        await client.create(question, extra_create_args={"model": "other"})


@pytest.mark.parametrize("name", ["api_base", "base_url", "api_key", "client"])
async def test_extra_create_args_cannot_send_the_tiers_key_elsewhere(
    server: FakeLLMServer, name: str
) -> None:
    """Where a call goes and with which key is the tier's, not a per-call argument's."""
    client = client_for(server)
    with pytest.raises(ConfigError, match=name):
        await client.create(
            [UserMessage(content="hi", source="user")],
            extra_create_args={name: "http://attacker.example/v1"},
        )
    assert server.requests == []


async def test_streaming_yields_text_chunks_then_the_whole_result(server: FakeLLMServer) -> None:
    server.script("m", Reply("one two three four five six", completion_tokens=6))
    client = client_for(server)

    items = [
        item async for item in client.create_stream([UserMessage(content="count", source="user")])
    ]

    *chunks, final = items
    assert len(chunks) > 1 and all(isinstance(c, str) for c in chunks)
    assert "".join(str(c) for c in chunks) == "one two three four five six"
    assert isinstance(final, CreateResult)
    assert final.content == "one two three four five six"
    assert final.usage.completion_tokens == 6
    assert server.requests[0].body["stream"] is True
    assert client.total_usage() == final.usage


async def test_a_streamed_tool_call_is_assembled_into_function_calls(server: FakeLLMServer) -> None:
    server.script("m", Reply(tool_calls=[ToolCall("add", {"a": 20, "b": 22}, id="call_s")]))
    client = client_for(server)

    items = [
        item
        async for item in client.create_stream(
            [UserMessage(content="20+22?", source="user")], tools=[ADD]
        )
    ]

    final = items[-1]
    assert isinstance(final, CreateResult) and final.finish_reason == "function_calls"
    assert final.content == [FunctionCall(id="call_s", arguments='{"a": 20, "b": 22}', name="add")]


async def test_a_transient_error_before_the_first_chunk_is_retried_and_counted(
    server: FakeLLMServer,
) -> None:
    server.script("m", Fault.server_error(503), Reply("fine"))
    client = client_for(server)

    items = [i async for i in client.create_stream([UserMessage(content="hi", source="user")])]

    assert items[-1].content == "fine"  # type: ignore[union-attr]
    assert client.retries == 1 and client.calls == 1
    assert client.last_call is not None and client.last_call.retries == 1


async def test_usage_and_cost_accumulate_and_an_unknown_price_makes_the_total_unknown(
    server: FakeLLMServer,
) -> None:
    server.script("m", Reply("a", prompt_tokens=10, completion_tokens=1))
    server.script("m", Reply("b", prompt_tokens=20, completion_tokens=3))
    server.always("unpriced", Reply("c", prompt_tokens=5, completion_tokens=1))
    priced = client_for(server)
    unpriced = client_for(server, "unpriced", price=None)
    question = [UserMessage(content="hi", source="user")]

    await priced.create(question)
    await priced.create(question)
    await unpriced.create(question)

    assert priced.total_usage() == RequestUsage(prompt_tokens=30, completion_tokens=4)
    assert priced.actual_usage() == priced.total_usage()
    assert priced.total_cost_usd == pytest.approx(cost(30, 4))
    assert priced.last_call is not None and priced.last_call.cost_usd == pytest.approx(cost(20, 3))
    assert priced.calls == 2
    assert unpriced.total_cost_usd is None  # unknown, never silently 0


async def test_a_provider_error_is_raised_as_the_typed_ecocascade_error(
    server: FakeLLMServer,
) -> None:
    server.script("m", Fault.status(400, "bad request"))
    client = client_for(server)

    with pytest.raises(ProviderRejectedError) as raised:
        await client.create([UserMessage(content="hi", source="user")])

    assert raised.value.status_code == 400 and raised.value.model == "openai/m"


async def test_the_cancellation_token_cancels_a_call_in_flight(server: FakeLLMServer) -> None:
    server.script("m", Fault.timeout(30, then="late"))
    client = client_for(server)
    token = CancellationToken()

    started = time.perf_counter()
    call = asyncio.ensure_future(
        client.create([UserMessage(content="hi", source="user")], cancellation_token=token)
    )
    await asyncio.sleep(0.3)
    token.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert time.perf_counter() - started < 5


async def test_the_cancellation_token_cancels_a_stream_waiting_for_its_first_chunk(
    server: FakeLLMServer,
) -> None:
    """Cancelling the token ends a stream at once, not when the model's next chunk arrives."""
    server.script("m", Fault.timeout(30, then="late"))
    client = client_for(server)
    token = CancellationToken()

    async def consume() -> list[object]:
        stream = client.create_stream(
            [UserMessage(content="hi", source="user")], cancellation_token=token
        )
        return [item async for item in stream]

    started = time.perf_counter()
    call = asyncio.ensure_future(consume())
    await asyncio.sleep(0.3)
    token.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert time.perf_counter() - started < 3


def test_model_info_comes_from_litellms_table_with_defaults_for_unknown_and_local_models() -> None:
    known = LiteLLMChatCompletionClient("openai/gpt-4o-mini").model_info
    unknown = LiteLLMChatCompletionClient("openai/my-server-model", api_base="http://x/v1")
    local_chat = LiteLLMChatCompletionClient("local/smollm2-135m").model_info
    local_base = LiteLLMChatCompletionClient("local/gemma3-270m").model_info

    assert known["function_calling"] and known["vision"] and known["structured_output"]
    assert known["family"] == ModelFamily.GPT_4O
    assert unknown.model_info["function_calling"] and not unknown.model_info["vision"]
    assert unknown.model_info["family"] == ModelFamily.UNKNOWN
    assert local_chat["function_calling"] and not local_base["function_calling"]
    assert LiteLLMChatCompletionClient("local/smollm2-135m").context_window == 2048


def test_model_info_can_be_overridden_and_must_be_complete() -> None:
    info = ModelInfo(
        vision=True,
        function_calling=False,
        json_output=False,
        family="mine",
        structured_output=False,
    )
    assert LiteLLMChatCompletionClient("openai/x", model_info=info).model_info == info
    with pytest.raises(ConfigError, match="model_info"):
        LiteLLMChatCompletionClient("openai/x", model_info={"vision": True})  # type: ignore[typeddict-item]


async def test_tools_on_a_model_without_function_calling_are_refused_before_any_request(
    server: FakeLLMServer,
) -> None:
    info = ModelInfo(
        vision=False, function_calling=False, json_output=False, family="x", structured_output=False
    )
    client = client_for(server, model_info=info)

    with pytest.raises(ConfigError, match="function calling"):
        await client.create([UserMessage(content="hi", source="user")], tools=[ADD])
    assert server.requests == []


def test_token_counting_is_offline_and_counts_tools_too() -> None:
    client = LiteLLMChatCompletionClient("openai/gpt-4o-mini")
    messages = [
        SystemMessage(content="Be brief."),
        UserMessage(content="What is the capital of France?", source="user"),
    ]

    plain = client.count_tokens(messages)
    with_tools = client.count_tokens(messages, tools=[ADD])

    assert 10 < plain < 40
    assert with_tools > plain
    assert client.remaining_tokens(messages) == 128_000 - plain


def test_a_tier_or_tier_client_can_back_the_client_and_bad_arguments_are_config_errors() -> None:
    tier = Tier("openai/x", api_base="http://h/v1", name="cheap")
    assert LiteLLMChatCompletionClient(tier, temperature=0).tier.params["temperature"] == 0
    assert LiteLLMChatCompletionClient(TierClient(tier)).label == "cheap"
    with pytest.raises(ConfigError):
        LiteLLMChatCompletionClient(TierClient(tier), temperature=0)
    with pytest.raises(ConfigError):
        LiteLLMChatCompletionClient(42)  # type: ignore[arg-type]


def test_the_client_dumps_to_an_autogen_component_without_the_key_and_loads_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MY_KEY", "secret-value")
    tier = Tier("openai/x", api_base="http://h/v1", api_key_env="MY_KEY", price=PRICE, name="cheap")
    client = LiteLLMChatCompletionClient(tier, temperature=0, context_window=1000)

    dumped = AssistantAgent("a", model_client=client).dump_component().config["model_client"]
    loaded = ChatCompletionClient.load_component(dumped)

    assert "secret-value" not in json.dumps(dumped)
    assert isinstance(loaded, LiteLLMChatCompletionClient)
    assert loaded.tier == client.tier and loaded.context_window == 1000
    assert loaded.model_info == client.model_info


async def test_an_assistant_agent_calls_a_python_tool_and_answers(server: FakeLLMServer) -> None:
    server.script(
        "m",
        Reply(tool_calls=[ToolCall("add", {"a": 2, "b": 3})]),
        Reply("The sum is 5."),
    )
    client = client_for(server)
    agent = AssistantAgent("assistant", model_client=client, tools=[add], reflect_on_tool_use=True)

    result = await agent.run(task="What is 2+3?")

    executed = [m for m in result.messages if isinstance(m, ToolCallExecutionEvent)]
    assert executed[0].content[0].content == "5"
    final = result.messages[-1]
    assert isinstance(final, TextMessage) and final.content == "The sum is 5."
    assert server.requests[1].messages[-1]["role"] == "tool"
    assert client.calls == 2


async def test_an_assistant_agent_streams_through_the_client(server: FakeLLMServer) -> None:
    server.script("m", Reply("Paris is the capital of France."))
    agent = AssistantAgent("assistant", model_client=client_for(server), model_client_stream=True)

    events = [event async for event in agent.run_stream(task="Capital of France?")]

    chunks = [e.content for e in events if type(e).__name__ == "ModelClientStreamingChunkEvent"]
    assert len(chunks) > 1 and "".join(chunks) == "Paris is the capital of France."


@pytest.mark.slow
async def test_a_local_tier_drives_an_assistant_agent_streamed_then_not() -> None:
    """llama.cpp closes the connection after a stream: the next plain call must still work."""
    client = LiteLLMChatCompletionClient("local/smollm2-135m", max_tokens=16)
    agent = AssistantAgent("assistant", model_client=client, model_client_stream=True)

    streamed = await agent.run(task="Say hello.")
    plain = await client.create([UserMessage(content="Say hi.", source="user")])

    assert isinstance(streamed.messages[-1], TextMessage) and streamed.messages[-1].content
    assert isinstance(plain.content, str) and plain.content
    assert client.calls == 2 and client.retries == 0
    assert client.total_cost_usd == 0.0
