"""Cascade.resolve / Cascade.stream: one walk for chat requests, over real LiteLLM and a
loopback OpenAI-compatible server; judges see an explicit context."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from ecocascade import Cascade, ContainsJudge, Price, ResponseCache, RetryPolicy, Tier
from ecocascade.controller.events import AttemptFinished, Finished, TextDelta
from ecocascade.judges import AllOf, JsonReply, ValidToolCalls, WellFormedReply
from ecocascade.judging import current_attempt
from ecocascade.testing import FakeLLMServer, Fault, Reply, ToolCall
from ecocascade.types import ChatRequest, JudgeContext, ToolCallDelta, Verdict

FAST = RetryPolicy(max_retries=0, base_delay_s=0.0)
CHEAP = Price(input_per_mtok=1.0, output_per_mtok=2.0)
STRONG = Price(input_per_mtok=10.0, output_per_mtok=30.0)
ADD_TOOL = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}
HISTORY = (
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 2+3?"},
    {"role": "assistant", "content": "5"},
    {"role": "user", "content": "And times 4?"},
)


def ladder(server: FakeLLMServer) -> list[Tier]:
    return [
        Tier("openai/small", api_base=server.api_base, price=CHEAP, retry=FAST, timeout_s=5),
        Tier("openai/large", api_base=server.api_base, price=STRONG, retry=FAST, timeout_s=5),
    ]


@pytest.fixture
async def cache(tmp_path: Path) -> AsyncIterator[ResponseCache]:
    made = ResponseCache(tmp_path / "cache.sqlite3")
    yield made
    await made.close()


class SpyJudge:
    """Accepts answers containing ``needle``; keeps every context it was given."""

    name = "spy"

    def __init__(self, needle: str) -> None:
        self.needle = needle
        self.contexts: list[JudgeContext | None] = []

    async def judge(self, query: str, answer: str, context: JudgeContext | None = None) -> Verdict:
        self.contexts.append(context)
        return Verdict(self.needle in answer, "spied", judge=self.name)


async def test_the_whole_history_reaches_the_model_and_the_judge_sees_the_request(
    server: FakeLLMServer,
) -> None:
    server.script("small", "It is 21.")
    server.script("large", "20")
    spy = SpyJudge("20")
    request = ChatRequest(messages=HISTORY, params={"temperature": 0})

    result = await Cascade(ladder(server), spy).resolve(request)

    assert result.answer == "20" and result.tier == 1 and result.query == "And times 4?"
    assert server.requests_for("small")[0].messages == [dict(m) for m in HISTORY]
    assert server.requests_for("small")[0].body["temperature"] == 0
    first, second = spy.contexts
    assert first is not None and second is not None
    assert (first.tier, first.model, first.tiers, first.is_last) == (0, "openai/small", 2, False)
    assert first.request is request and first.attempts == ()
    assert first.solution is not None and first.solution.answer == "It is 21."
    assert second.is_last and [a.answer for a in second.attempts] == ["It is 21."]
    assert result.message == {"role": "assistant", "content": "20"}
    assert result.upstream_model == "large" and result.answer_usage.output_tokens == 1


async def test_a_tool_call_is_the_accepted_message_when_it_is_valid_against_the_schema(
    server: FakeLLMServer,
) -> None:
    server.script("small", Reply(tool_calls=[ToolCall("add", {"a": "two", "b": 3})]))
    server.script("large", Reply(tool_calls=[ToolCall("add", {"a": 2, "b": 3}, id="call_1")]))
    request = ChatRequest(
        messages=({"role": "user", "content": "What is 2+3?"},),
        tools=(ADD_TOOL,),
        tool_choice="auto",
    )

    result = await Cascade(ladder(server), WellFormedReply()).resolve(request)

    assert result.tier == 1
    assert "do not match its schema: a: 'two' is not of type 'integer'" in result.attempts[0].reason
    call = {"name": "add", "arguments": '{"a": 2, "b": 3}'}
    assert result.message is not None
    assert result.message["tool_calls"] == [{"id": "call_1", "type": "function", "function": call}]
    body = server.requests_for("small")[0].body
    assert body["tools"] == [ADD_TOOL] and body["tool_choice"] == "auto"


async def test_a_response_format_schema_is_sent_and_checked(server: FakeLLMServer) -> None:
    schema = {
        "type": "json_schema",
        "json_schema": {
            "name": "Sum",
            "schema": {
                "type": "object",
                "properties": {"total": {"type": "integer"}},
                "required": ["total"],
            },
        },
    }
    server.script("small", '{"total": "five"}')
    server.script("large", '{"total": 5}')
    request = ChatRequest(
        messages=({"role": "user", "content": "2+3 as JSON"},), response_format=schema
    )

    result = await Cascade(ladder(server), AllOf(JsonReply(), ValidToolCalls())).resolve(request)

    assert json.loads(result.answer or "") == {"total": 5}
    assert "the reply does not match Sum: total: 'five' is not of type" in result.attempts[0].reason
    assert server.requests_for("small")[0].body["response_format"] == schema


async def test_a_two_argument_judge_still_works_and_reads_current_attempt(
    server: FakeLLMServer,
) -> None:
    seen: list[tuple[int, str] | None] = []

    class OldJudge:
        name = "old"

        async def judge(self, query: str, answer: str) -> Verdict:
            attempt = current_attempt()
            seen.append(None if attempt is None else (attempt.tier, attempt.model))
            return Verdict(attempt is not None and attempt.is_last, "last tier only")

    server.script("small", "a")
    server.script("large", "b")

    result = await Cascade(ladder(server), OldJudge()).run("Say something")

    assert result.answer == "b" and seen == [(0, "openai/small"), (1, "openai/large")]
    assert current_attempt() is None


async def test_min_tier_starts_the_walk_no_lower(server: FakeLLMServer) -> None:
    server.script("large", "Paris")
    cascade = Cascade(ladder(server), ContainsJudge("Paris"))

    result = await cascade.resolve(ChatRequest.from_query("Capital of France?"), min_tier=1)

    assert result.tier == 1 and server.requests_for("small") == []


async def test_the_exact_cache_key_covers_the_whole_request(
    server: FakeLLMServer, cache: ResponseCache
) -> None:
    server.always("small", "5")
    cascade = Cascade(ladder(server), ContainsJudge("5"), cache=cache)
    plain = ChatRequest.from_query("What is 2+3?")
    variants = [
        plain,
        ChatRequest.from_query("What is 2+3?", system_prompt="Answer in French."),
        ChatRequest(messages=plain.messages, tools=(ADD_TOOL,)),
        ChatRequest(messages=plain.messages, response_format={"type": "json_object"}),
        ChatRequest(messages=plain.messages, params={"temperature": 1.0}),
        ChatRequest(messages=(*HISTORY[:3], {"role": "user", "content": "What is 2+3?"})),
    ]

    first = [await cascade.resolve(r) for r in variants]
    again = [await cascade.resolve(r) for r in variants]

    assert not any(r.cache_hit for r in first) and all(r.cache_hit for r in again)
    assert len({r.cache_key for r in first}) == len(variants)
    assert [r.cache_key for r in again] == [r.cache_key for r in first]
    assert len(server.requests) == len(variants)
    # a plain question keeps the key run() always used (case and punctuation are part of it)
    assert first[0].cache_key == cache.key("What is 2+3?", "default", cascade.fingerprint)
    assert (await cascade.run("What is 2+3?")).cache_hit


async def test_nothing_is_cached_or_looked_up_after_a_tool_result(
    server: FakeLLMServer, cache: ResponseCache
) -> None:
    server.always("small", "5")
    cascade = Cascade(ladder(server), ContainsJudge("5"), cache=cache)
    after_tool = ChatRequest(
        messages=(
            {"role": "user", "content": "What is 2+3?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "add", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "5"},
        ),
        tools=(ADD_TOOL,),
    )  # fmt: skip

    with capture_logs() as logs:
        results = [await cascade.resolve(after_tool) for _ in range(2)]

    assert [r.cache_hit for r in results] == [False, False] and results[0].cache_key is None
    assert not [e for e in logs if e["event"].startswith("cache.")]
    assert (await cache.stats()).entries == 0


async def test_stream_emits_attempts_then_live_pieces_of_the_last_tier_only(
    server: FakeLLMServer, cache: ResponseCache
) -> None:
    server.script("small", "one two three")
    server.script("large", "four five six seven")
    cascade = Cascade(ladder(server), ContainsJudge("seven"), cache=cache)

    events = [e async for e in cascade.stream(ChatRequest.from_query("Count"))]

    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "AttemptFinished" and kinds[-1] == "Finished"
    assert "stream" not in server.requests_for("small")[0].body  # judged: not streamed
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 1 and "".join(deltas) == "four five six seven"
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.streamed
    assert finished.result.answer == "four five six seven"
    assert kinds.index("TextDelta") > kinds.index("AttemptFinished")
    assert isinstance(events[-2], AttemptFinished) and events[-2].attempt.tier == 1
    assert (await cache.stats()).entries == 1


async def test_stream_emits_tool_call_pieces_of_the_last_tier(server: FakeLLMServer) -> None:
    server.script("large", Reply(tool_calls=[ToolCall("add", {"a": 2, "b": 3}, id="c9")]))
    cascade = Cascade(ladder(server)[1:], WellFormedReply())
    request = ChatRequest(messages=({"role": "user", "content": "2+3?"},), tools=(ADD_TOOL,))

    events = [e async for e in cascade.stream(request)]

    pieces = [e for e in events if isinstance(e, ToolCallDelta)]
    assert pieces[0].name == "add" and pieces[0].id == "c9"
    assert json.loads("".join(p.arguments for p in pieces)) == {"a": 2, "b": 3}
    assert isinstance(events[-1], Finished) and events[-1].result.success


async def test_a_consumer_that_stops_reading_leaves_nothing_recorded_or_cached(
    server: FakeLLMServer, cache: ResponseCache
) -> None:
    server.script("small", "no")
    server.script("large", "a long answer that is accepted")
    cascade = Cascade(ladder(server), ContainsJudge("accepted"), cache=cache)

    with capture_logs() as logs:
        async with contextlib.aclosing(cascade.stream(ChatRequest.from_query("Q?"))) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    break

    assert (await cache.stats()).entries == 0
    assert not [e for e in logs if e["event"] in ("cache.stored", "cascade.resolved")]


async def test_cancelling_the_consumer_cancels_the_model_call_and_stores_nothing(
    server: FakeLLMServer, cache: ResponseCache
) -> None:
    server.script("small", "no")
    server.script("large", Fault.timeout(delay_s=30, then="accepted"))
    cascade = Cascade(ladder(server), ContainsJudge("accepted"), cache=cache)
    seen: list[object] = []
    first_attempt = asyncio.Event()

    async def consume() -> None:
        async for event in cascade.stream(ChatRequest.from_query("Q?")):
            seen.append(event)
            first_attempt.set()

    task = asyncio.create_task(consume())
    await first_attempt.wait()  # the first tier's attempt is in: the last tier is being called
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)  # returns at once: the HTTP call was cancelled

    assert [type(e).__name__ for e in seen] == ["AttemptFinished"]
    assert (await cache.stats()).entries == 0


async def test_estimate_cost_prices_the_last_tier_for_the_request(server: FakeLLMServer) -> None:
    cascade = Cascade(ladder(server), ContainsJudge("x"))
    request = ChatRequest.from_query("What is 2+3?")

    estimate = cascade.estimate_cost(request, output_tokens=10)

    assert estimate is not None and estimate > 10 * STRONG.output_per_mtok / 1e6
    assert cascade.estimate_cost(request, tier=0, output_tokens=10) < estimate  # type: ignore[operator]
