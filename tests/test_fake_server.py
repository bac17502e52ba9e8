"""FakeLLMServer driven through real clients: raw httpx for the protocol, LiteLLM for the rest."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ecocascade._env import import_litellm
from ecocascade.testing import FakeLLMServer, Fault, Reply, ToolCall

litellm = import_litellm()

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as fake:
        yield fake


async def ask(server: FakeLLMServer, model: str, **kwargs: Any) -> Any:
    """One real LiteLLM call with the OpenAI SDK's own retries off."""
    kwargs.setdefault("messages", HI)
    kwargs.setdefault("timeout", 5)
    return await litellm.acompletion(
        model=f"openai/{model}",
        api_base=server.api_base,
        api_key="x",
        num_retries=0,
        max_retries=0,
        **kwargs,
    )


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


# -- scripting ---------------------------------------------------------------------------------


async def test_scripted_replies_are_served_fifo_per_model_then_the_always_reply(
    server: FakeLLMServer,
) -> None:
    server.script("small", "one", Reply("two"))
    server.script("large", "big")
    server.always("small", "again")

    texts = [(await ask(server, "small")).choices[0].message.content for _ in range(4)]

    assert texts == ["one", "two", "again", "again"]
    assert (await ask(server, "large")).choices[0].message.content == "big"


async def test_an_unscripted_model_answers_404_which_litellm_raises_as_not_found(
    server: FakeLLMServer,
) -> None:
    with pytest.raises(litellm.NotFoundError):
        await ask(server, "nobody")


def test_an_unscripted_model_gets_an_openai_style_model_not_found_body(
    server: FakeLLMServer,
) -> None:
    response = httpx.post(
        f"{server.api_base}/chat/completions", json={"model": "nobody", "messages": HI}
    )

    assert response.status_code == 404
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.json()["error"]["code"] == "model_not_found"


async def test_a_callable_reply_is_called_with_the_parsed_request_body(
    server: FakeLLMServer,
) -> None:
    server.always("echo", lambda request: request["messages"][-1]["content"].upper())

    response = await ask(server, "echo", messages=[{"role": "user", "content": "shout"}])

    assert response.choices[0].message.content == "SHOUT"


async def test_a_failing_reply_callable_answers_500_and_is_kept_in_errors(
    server: FakeLLMServer,
) -> None:
    def broken(request: dict[str, Any]) -> str:
        raise ValueError("bug in the test double")

    server.script("m", broken)

    with pytest.raises(litellm.InternalServerError):
        await ask(server, "m")
    assert [type(e) for e in server.errors] == [ValueError]


# -- usage -------------------------------------------------------------------------------------


async def test_default_usage_counts_prompt_words_plus_3_per_message_and_reply_words(
    server: FakeLLMServer,
) -> None:
    server.script("m", "it is four")
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "what is two plus two"}]},
    ]

    response = await ask(server, "m", messages=messages)

    assert response.usage.prompt_tokens == (2 + 3) + (5 + 3)
    assert response.usage.completion_tokens == 3
    assert response.usage.total_tokens == 16


async def test_explicit_token_counts_override_the_defaults(server: FakeLLMServer) -> None:
    server.script("m", Reply("", prompt_tokens=1000, completion_tokens=250))

    response = await ask(server, "m")

    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (1000, 250)


# -- faults through the real LiteLLM client ----------------------------------------------------


async def test_rate_limit_raises_rate_limit_error_with_retry_after_in_response_headers(
    server: FakeLLMServer,
) -> None:
    server.script("m", Fault.rate_limit(retry_after_s=7))

    with pytest.raises(litellm.RateLimitError) as caught:
        await ask(server, "m")

    # LiteLLM 1.106.2 rebuilds ``.response`` without headers; the real ones ride along here.
    assert caught.value.litellm_response_headers["retry-after"] == "7"


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (Fault.server_error(), litellm.InternalServerError),
        (Fault.server_error(503), litellm.ServiceUnavailableError),
        (Fault.context_window(), litellm.ContextWindowExceededError),
        (
            Fault.status(401, "Incorrect API key provided.", "invalid_api_key"),
            litellm.AuthenticationError,
        ),
        # LiteLLM maps every failure without an HTTP status on this path to a 500:
        (Fault.malformed_json(), litellm.InternalServerError),
        (Fault.disconnect(), litellm.InternalServerError),
    ],
    ids=["500", "503", "context-window", "401", "malformed-json", "disconnect"],
)
async def test_each_fault_surfaces_as_its_litellm_exception_type(
    server: FakeLLMServer, fault: Fault, expected: type[Exception]
) -> None:
    server.script("m", fault)

    with pytest.raises(expected):
        await ask(server, "m")


async def test_a_disconnect_keeps_the_sdk_connection_error_as_the_cause(
    server: FakeLLMServer,
) -> None:
    server.script("m", Fault.disconnect())

    with pytest.raises(litellm.InternalServerError) as caught:
        await ask(server, "m")

    assert any(isinstance(e, litellm.openai.APIConnectionError) for e in _chain(caught.value))


async def test_a_stall_longer_than_the_client_timeout_raises_litellm_timeout_promptly(
    server: FakeLLMServer,
) -> None:
    server.script("m", Fault.timeout(delay_s=5))
    started = time.monotonic()

    with pytest.raises(litellm.Timeout):
        await ask(server, "m", timeout=0.5)

    assert time.monotonic() - started < 2


async def test_a_stall_shorter_than_the_client_timeout_then_answers(
    server: FakeLLMServer,
) -> None:
    server.script("m", Fault.timeout(delay_s=0.1, then="late but fine"))

    response = await ask(server, "m")

    assert response.choices[0].message.content == "late but fine"


async def test_empty_choices_come_back_from_litellm_as_a_response_without_choices(
    server: FakeLLMServer,
) -> None:
    server.script("m", Fault.empty_choices())

    response = await ask(server, "m")

    assert response.choices == []


def test_the_sync_litellm_client_sees_the_same_faults(server: FakeLLMServer) -> None:
    server.script("m", Fault.rate_limit(), "fine")
    kwargs: dict[str, Any] = {"api_base": server.api_base, "api_key": "x", "timeout": 5}

    with pytest.raises(litellm.RateLimitError):
        litellm.completion(model="openai/m", messages=HI, num_retries=0, max_retries=0, **kwargs)
    response = litellm.completion(
        model="openai/m", messages=HI, num_retries=0, max_retries=0, **kwargs
    )

    assert response.choices[0].message.content == "fine"


# -- streaming and tool calls ------------------------------------------------------------------


async def test_streamed_text_reassembles_and_reports_usage(server: FakeLLMServer) -> None:
    server.script("m", "the answer is four, as always")

    stream = await ask(server, "m", stream=True, stream_options={"include_usage": True})
    chunks = [chunk async for chunk in stream]

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "the answer is four, as always"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1
    usage = next(c.usage for c in reversed(chunks) if getattr(c, "usage", None))
    assert (usage.prompt_tokens, usage.completion_tokens) == (4, 6)


def test_a_stream_is_server_sent_events_ending_with_usage_and_done(
    server: FakeLLMServer,
) -> None:
    server.script("m", "a b c")
    body = {"model": "m", "messages": HI, "stream": True, "stream_options": {"include_usage": True}}

    response = httpx.post(f"{server.api_base}/chat/completions", json=body)

    assert response.headers["content-type"] == "text/event-stream"
    events = [line.removeprefix("data: ") for line in response.text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 3


async def test_a_fault_applies_before_a_stream_starts(server: FakeLLMServer) -> None:
    server.script("m", Fault.rate_limit())

    with pytest.raises(litellm.RateLimitError):
        await ask(server, "m", stream=True)


async def test_tool_calls_come_back_with_name_and_json_arguments(server: FakeLLMServer) -> None:
    server.script("m", Reply(tool_calls=[ToolCall("add", {"a": 2, "b": 2}, id="call_1")]))

    response = await ask(server, "m")

    choice = response.choices[0]
    (call,) = choice.message.tool_calls
    assert (call.id, call.function.name) == ("call_1", "add")
    assert json.loads(call.function.arguments) == {"a": 2, "b": 2}
    assert choice.finish_reason == "tool_calls"


async def test_streamed_tool_calls_rebuild_into_one_call(server: FakeLLMServer) -> None:
    server.script("m", Reply(tool_calls=[ToolCall("add", {"a": 2, "b": 2})]))

    stream = await ask(server, "m", stream=True)
    chunks = [chunk async for chunk in stream]
    rebuilt = litellm.stream_chunk_builder(chunks, messages=HI)

    (call,) = rebuilt.choices[0].message.tool_calls
    assert call.function.name == "add"
    assert json.loads(call.function.arguments) == {"a": 2, "b": 2}


# -- recording, protocol, lifecycle ------------------------------------------------------------


async def test_requests_are_recorded_in_order_with_their_messages(server: FakeLLMServer) -> None:
    server.always("a", "x")
    server.always("b", "y")

    await ask(server, "a", messages=[{"role": "user", "content": "first"}])
    await ask(server, "b", messages=[{"role": "user", "content": "second"}], temperature=0)

    assert [r.model for r in server.requests] == ["a", "b"]
    (b,) = server.requests_for("b")
    assert b.messages == [{"role": "user", "content": "second"}]
    assert b.body["temperature"] == 0


def test_models_endpoint_lists_scripted_models(server: FakeLLMServer) -> None:
    server.script("small", "x")
    server.always("large", "y")

    response = httpx.get(f"{server.api_base}/models")

    assert [m["id"] for m in response.json()["data"]] == ["large", "small"]


def test_unknown_paths_and_invalid_json_get_json_errors(server: FakeLLMServer) -> None:
    unknown = httpx.post(f"{server.api_base}/audio/speech", json={"model": "m"})
    invalid = httpx.post(f"{server.api_base}/chat/completions", content=b"{not json")

    assert unknown.status_code == 404
    assert "error" in unknown.json()
    assert invalid.status_code == 400
    assert invalid.json()["error"]["type"] == "invalid_request_error"


def test_embeddings_are_deterministic_unit_vectors_and_recorded(server: FakeLLMServer) -> None:
    one = httpx.post(f"{server.api_base}/embeddings", json={"model": "e", "input": ["a", "b"]})
    again = httpx.post(f"{server.api_base}/embeddings", json={"model": "e", "input": "a"})

    vectors = [d["embedding"] for d in one.json()["data"]]
    assert len(vectors) == 2 and vectors[0] != vectors[1]
    assert again.json()["data"][0]["embedding"] == vectors[0]
    assert abs(sum(v * v for v in vectors[0]) - 1) < 1e-4
    assert [r["input"] for r in server.embedding_requests] == [["a", "b"], "a"]
    assert server.requests == []  # chat requests only


def test_chat_completions_is_also_served_without_the_v1_prefix(server: FakeLLMServer) -> None:
    server.script("m", "ok")
    root = server.api_base.removesuffix("/v1")

    response = httpx.post(f"{root}/chat/completions", json={"model": "m", "messages": HI})

    assert response.json()["choices"][0]["message"]["content"] == "ok"


def test_stop_returns_promptly_while_a_stall_is_sleeping_and_frees_the_port() -> None:
    server = FakeLLMServer().start()
    port = httpx.URL(server.api_base).port
    server.script("m", Fault.timeout(delay_s=30))
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(
                httpx.post(
                    f"{server.api_base}/chat/completions",
                    json={"model": "m", "messages": HI},
                    timeout=10,
                )
            )
        except httpx.HTTPError as exc:
            outcome.append(exc)

    client = threading.Thread(target=call)
    client.start()
    while not server.requests:
        time.sleep(0.01)

    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 1

    client.join(timeout=2)
    assert len(outcome) == 1
    assert isinstance(outcome[0], httpx.RemoteProtocolError)
    with FakeLLMServer(port=port) as again:
        again.script("m", "back")
        response = httpx.post(
            f"{again.api_base}/chat/completions", json={"model": "m", "messages": HI}
        )
        assert response.json()["choices"][0]["message"]["content"] == "back"


async def test_concurrent_requests_are_served_in_parallel(server: FakeLLMServer) -> None:
    server.always("m", Fault.timeout(delay_s=0.3, then="ok"))
    started = time.monotonic()

    responses = await asyncio.gather(*(ask(server, "m") for _ in range(8)))

    assert [r.choices[0].message.content for r in responses] == ["ok"] * 8
    assert time.monotonic() - started < 1.5
