"""CascadeChatCompletionClient inside real AutoGen agents and teams, over real LiteLLM."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import PIL.Image
import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination
from autogen_agentchat.messages import TextMessage, ToolCallExecutionEvent
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_core import Image
from autogen_core.models import CreateResult, LLMMessage, ModelInfo, UserMessage
from autogen_core.tools import FunctionTool, Tool, ToolSchema
from pydantic import BaseModel
from structlog.testing import capture_logs

from ecocascade import (
    Cascade,
    CascadeFailedError,
    ConfigError,
    ContainsJudge,
    Price,
    RetryPolicy,
    SolutionStore,
    Tier,
)
from ecocascade.agents import (
    CascadeChatCompletionClient,
    LiteLLMChatCompletionClient,
    WellFormedReply,
)
from ecocascade.cache import ResponseCache
from ecocascade.models.local.tools import tool_calls_from_text
from ecocascade.testing import FakeLLMServer, Fault, Reply, ToolCall
from ecocascade.types import ChatRequest, JudgeContext, Verdict

FAST = RetryPolicy(max_retries=2, base_delay_s=0.01, max_delay_s=1.0)
CHEAP = Price(input_per_mtok=1.0, output_per_mtok=2.0)
STRONG = Price(input_per_mtok=10.0, output_per_mtok=30.0)
QUESTION = [UserMessage(content="What is 2+3?", source="user")]
ROOT = Path(__file__).resolve().parents[2]


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


ADD = FunctionTool(add, description="Add two integers.")


def ladder(server: FakeLLMServer) -> list[Tier]:
    return [
        Tier("openai/small", api_base=server.api_base, price=CHEAP, retry=FAST, timeout_s=5),
        Tier("openai/large", api_base=server.api_base, price=STRONG, retry=FAST, timeout_s=5),
    ]


def cost(price: Price, tokens_in: int, tokens_out: int) -> float:
    return (tokens_in * price.input_per_mtok + tokens_out * price.output_per_mtok) / 1e6


@pytest.fixture
async def cache(tmp_path: Path) -> AsyncIterator[ResponseCache]:
    made = ResponseCache(tmp_path / "cache.sqlite3")
    yield made
    await made.close()


@pytest.mark.parametrize(
    "bad_call",
    [
        ToolCall("sum", {"a": 2, "b": 3}),  # a tool that was not offered
        ToolCall("add", '{"a": 2, "b": '),  # arguments that are not JSON
        ToolCall("add", {"a": 2}),  # a required argument missing
    ],
    ids=["unknown-tool", "bad-json", "missing-argument"],
)
async def test_a_malformed_tool_call_escalates_and_the_valid_one_runs_the_python_tool(
    server: FakeLLMServer, bad_call: ToolCall
) -> None:
    server.script("small", Reply(tool_calls=[bad_call]), Reply("2 + 3 = 5."))
    server.script("large", Reply(tool_calls=[ToolCall("add", {"a": 2, "b": 3}, id="call_ok")]))
    client = CascadeChatCompletionClient(ladder(server))
    agent = AssistantAgent("assistant", model_client=client, tools=[add], reflect_on_tool_use=True)

    with capture_logs() as logs:
        result = await agent.run(task="What is 2+3?")

    executed = [m for m in result.messages if isinstance(m, ToolCallExecutionEvent)]
    assert [r.content for r in executed[0].content] == ["5"]
    assert executed[0].content[0].call_id == "call_ok"
    final = result.messages[-1]
    assert isinstance(final, TextMessage) and final.content == "2 + 3 = 5."
    escalated = [e for e in logs if e["event"] == "cascade.escalated"]
    assert len(escalated) == 1 and escalated[0]["from_model"] == "openai/small"
    assert client.last_tier == 0  # the reflection call was answered by the cheap tier
    assert [len(server.requests_for(m)) for m in ("small", "large")] == [2, 1]


async def test_usage_and_cost_add_up_across_the_tiers_a_call_went_through(
    server: FakeLLMServer,
) -> None:
    server.script("small", Reply("", prompt_tokens=10, completion_tokens=1))
    server.script("large", Reply("5", prompt_tokens=10, completion_tokens=1))
    client = CascadeChatCompletionClient(ladder(server))

    result = await client.create(QUESTION)

    assert result.content == "5" and client.last_tier == 1 and client.last_model == "openai/large"
    assert client.actual_usage().prompt_tokens == 20 and client.calls == 2
    expected = cost(CHEAP, 10, 1) + cost(STRONG, 10, 1)
    assert client.total_cost_usd == pytest.approx(expected)
    assert client.last_cost_usd == pytest.approx(expected)
    assert client.last_result is not None
    assert [a.verdict for a in client.last_result.attempts] == ["reject", "accept"]
    assert client.last_result.attempts[0].reason == "the reply is empty"


async def test_a_reply_cut_off_at_the_token_limit_is_not_well_formed(
    server: FakeLLMServer,
) -> None:
    server.script("small", Reply("The answer is", finish_reason="length"))
    server.script("large", Reply("The answer is 5."))
    client = CascadeChatCompletionClient(ladder(server))

    result = await client.create(QUESTION)

    assert result.content == "The answer is 5."
    assert client.last_result is not None
    assert client.last_result.attempts[0].reason == "the reply was cut off at the token limit"


async def test_a_reply_that_is_not_the_json_asked_for_is_not_well_formed(
    server: FakeLLMServer,
) -> None:
    """With ``json_output=True`` a non-JSON reply escalates; with a pydantic model, a reply
    that does not validate against it does too."""

    class Sum(BaseModel):
        total: int

    server.script("small", "The total is 5.", '{"total": "five"}')
    server.script("large", '{"total": 5}', '{"total": 5}')
    client = CascadeChatCompletionClient(ladder(server))

    loose = await client.create(QUESTION, json_output=True)
    assert loose.content == '{"total": 5}'
    assert client.last_result is not None
    assert client.last_result.attempts[0].reason.startswith("the reply is not valid JSON")

    typed = await client.create(QUESTION, json_output=Sum)
    assert typed.content == '{"total": 5}'
    assert client.last_result is not None
    assert client.last_result.attempts[0].reason.startswith("the reply does not match Sum: total")


async def test_a_json_reply_is_accepted_on_the_first_tier(server: FakeLLMServer) -> None:
    """A valid JSON reply to a JSON request stays on tier 0."""
    server.script("small", '{"total": 5}')
    client = CascadeChatCompletionClient(ladder(server))
    result = await client.create(QUESTION, json_output=True)
    assert result.content == '{"total": 5}' and client.last_tier == 0


async def test_a_provider_error_escalates_after_the_tiers_retries(server: FakeLLMServer) -> None:
    server.always("small", Fault.server_error(503))
    server.script("large", "5")
    client = CascadeChatCompletionClient(ladder(server))

    result = await client.create(QUESTION)

    assert result.content == "5" and client.last_tier == 1
    assert len(server.requests_for("small")) == 3  # the first try and FAST's two retries
    assert client.retries == 2
    assert client.last_result is not None
    assert client.last_result.attempts[0].error == "unavailable"


async def test_when_every_tier_fails_the_call_raises_with_every_attempt(
    server: FakeLLMServer,
) -> None:
    server.script("small", Fault.status(400, "bad request"))
    server.script("large", Reply(tool_calls=[ToolCall("nope", {})]))
    client = CascadeChatCompletionClient(ladder(server))

    with capture_logs() as logs, pytest.raises(CascadeFailedError) as raised:
        await client.create(QUESTION, tools=[ADD])

    attempts = raised.value.result.attempts
    assert [(a.model, a.verdict, a.error) for a in attempts] == [
        ("openai/small", "error", "rejected"),
        ("openai/large", "reject", None),
    ]
    assert "unknown tool 'nope'" in attempts[1].reason
    assert raised.value.result.stop_reason == "exhausted"
    assert any(e["event"] == "cascade.unresolved" for e in logs)


async def test_an_ecocascade_judge_decides_on_text_replies(server: FakeLLMServer) -> None:
    server.script("small", "Lyon")
    server.script("large", "Paris")
    client = CascadeChatCompletionClient(ladder(server), judge=ContainsJudge("paris"))

    result = await client.create([UserMessage(content="Capital of France?", source="user")])

    assert result.content == "Paris" and client.last_tier == 1
    assert client.judge.name == "well_formed+contains:paris"


async def test_a_custom_call_judge_plugs_in_and_a_crashing_one_never_accepts(
    server: FakeLLMServer,
) -> None:
    class NoShortReplies:
        name = "no_short_replies"

        async def judge_reply(
            self,
            messages: Sequence[LLMMessage],
            tools: Sequence[Tool | ToolSchema],
            result: CreateResult,
            *,
            json_output: bool | type[BaseModel] | None = None,
        ) -> Verdict:
            text = result.content if isinstance(result.content, str) else ""
            if text == "crash":
                raise RuntimeError("judge bug")
            return Verdict(len(text) > 3, "long enough" if len(text) > 3 else "too short")

    server.script("small", "5", "crash")
    server.script("large", "It is 5.", "It is 5 again.")
    client = CascadeChatCompletionClient(ladder(server), judge=NoShortReplies())

    short = await client.create(QUESTION)
    crashed = await client.create(QUESTION)

    assert short.content == "It is 5." and crashed.content == "It is 5 again."
    assert client.last_result is not None
    assert client.last_result.attempts[0].error == "judge_error"


async def test_a_repeated_call_is_served_from_the_cache_at_no_cost(
    server: FakeLLMServer, cache: ResponseCache
) -> None:
    server.script("small", Reply(tool_calls=[ToolCall("sum", {})]))  # rejected: never cached
    server.script("large", Reply(tool_calls=[ToolCall("add", {"a": 2, "b": 3})]))
    client = CascadeChatCompletionClient(ladder(server), cache=cache)

    first = await client.create(QUESTION, tools=[ADD])
    spent = client.total_cost_usd
    with capture_logs() as logs:
        second = await client.create(QUESTION, tools=[ADD])

    assert len(server.requests) == 2  # no request reached the server the second time
    assert second.cached and not first.cached
    assert second.content == first.content
    assert client.total_cost_usd == spent and client.last_cost_usd == 0.0
    assert client.last_tier == 1 and client.cache_hits == 1
    assert client.actual_usage() != client.total_usage()  # the cached reply's tokens not resent
    assert [e["event"] for e in logs if e["event"].startswith("cache.")] == ["cache.hit"]


async def test_a_different_request_or_ladder_misses_the_cache(
    server: FakeLLMServer, cache: ResponseCache
) -> None:
    server.always("small", "5")
    client = CascadeChatCompletionClient(ladder(server), cache=cache)
    other_ladder = CascadeChatCompletionClient(ladder(server)[:1], cache=cache)

    await client.create(QUESTION)
    await client.create(QUESTION, tools=[ADD])
    await client.create([UserMessage(content="What is 2+4?", source="user")])
    await other_ladder.create(QUESTION)

    assert len(server.requests) == 4 and client.cache_hits == 0 and other_ladder.cache_hits == 0


async def test_a_round_robin_team_of_two_agents_runs_on_the_cascade_client(
    server: FakeLLMServer,
) -> None:
    server.script("small", "Draft: 2+3 is 5.", "")  # the reviewer's cheap reply is empty
    server.script("large", "Reviewed: correct, 5.")
    client = CascadeChatCompletionClient(ladder(server))
    writer = AssistantAgent("writer", model_client=client)
    reviewer = AssistantAgent("reviewer", model_client=client)
    team = RoundRobinGroupChat([writer, reviewer], termination_condition=MaxMessageTermination(3))

    result = await team.run(task="What is 2+3? Writer drafts, reviewer checks.")

    replies = [(m.source, m.content) for m in result.messages if isinstance(m, TextMessage)]
    assert replies[1:] == [("writer", "Draft: 2+3 is 5."), ("reviewer", "Reviewed: correct, 5.")]
    reviewer_request = server.requests_for("large")[0].messages
    assert "Draft: 2+3 is 5." in str(reviewer_request)
    assert client.calls == 3 and client.last_tier == 1


async def test_streaming_sends_an_earlier_tiers_accepted_reply_as_one_chunk(
    server: FakeLLMServer,
) -> None:
    server.script("small", "one two three four five six")
    client = CascadeChatCompletionClient(ladder(server))

    items = [item async for item in client.create_stream(QUESTION)]

    assert items[:-1] == ["one two three four five six"]
    assert isinstance(items[-1], CreateResult)
    assert "stream" not in server.requests[0].body  # judged before shown: not streamed


async def test_streaming_streams_the_last_tier_live(server: FakeLLMServer) -> None:
    server.script("small", "")
    server.script("large", "one two three four five six")
    client = CascadeChatCompletionClient(ladder(server))

    items = [item async for item in client.create_stream(QUESTION)]

    *chunks, final = items
    assert len(chunks) > 1 and "".join(str(c) for c in chunks) == "one two three four five six"
    assert isinstance(final, CreateResult) and final.content == "one two three four five six"
    assert server.requests_for("large")[0].body["stream"] is True
    assert client.last_tier == 1


async def test_an_assistant_agent_streams_through_the_cascade(server: FakeLLMServer) -> None:
    server.script("small", "")
    server.script("large", "Paris is the capital of France.")
    client = CascadeChatCompletionClient(ladder(server))
    agent = AssistantAgent("assistant", model_client=client, model_client_stream=True)

    events = [e async for e in agent.run_stream(task="Capital of France?")]

    chunks = [e.content for e in events if type(e).__name__ == "ModelClientStreamingChunkEvent"]
    assert "".join(chunks) == "Paris is the capital of France."


def test_model_info_is_what_every_tier_supports() -> None:
    vision_and_tools = Tier("openai/gpt-4o-mini")
    tools_only = Tier("openai/my-model", api_base="http://127.0.0.1:9/v1")
    base_model = Tier("local/gemma3-270m")

    both = CascadeChatCompletionClient([vision_and_tools, tools_only]).model_info
    with_base = CascadeChatCompletionClient([tools_only, base_model]).model_info

    assert both["function_calling"] and not both["vision"]
    assert not with_base["function_calling"]


async def test_with_tools_a_tier_that_cannot_call_functions_is_skipped(
    server: FakeLLMServer,
) -> None:
    no_tools = ModelInfo(
        vision=False, function_calling=False, json_output=False, family="x", structured_output=False
    )
    tools = ModelInfo(
        vision=False, function_calling=True, json_output=False, family="x", structured_output=False
    )
    server.script("large", Reply(tool_calls=[ToolCall("add", {"a": 1, "b": 2})]))
    small, large = ladder(server)
    base_model = LiteLLMChatCompletionClient(small, model_info=no_tools)
    client = CascadeChatCompletionClient([base_model, large], model_info=tools)

    result = await client.create(QUESTION, tools=[ADD])

    assert isinstance(result.content, list) and client.last_tier == 1
    assert server.requests_for("small") == []
    assert client.last_result is not None
    assert client.last_result.attempts[0].error == "unsupported"


async def test_with_images_a_tier_that_cannot_see_is_skipped(server: FakeLLMServer) -> None:
    sees = ModelInfo(
        vision=True, function_calling=True, json_output=False, family="x", structured_output=False
    )
    server.script("large", "A red square.")
    small, large = ladder(server)  # an unknown model: no vision unless told
    client = CascadeChatCompletionClient(
        [small, LiteLLMChatCompletionClient(large, model_info=sees)], model_info=sees
    )
    picture = Image.from_pil(PIL.Image.new("RGB", (4, 4), "red"))

    result = await client.create([UserMessage(content=["What is this?", picture], source="user")])

    assert result.content == "A red square." and server.requests_for("small") == []
    assert client.last_result is not None
    assert "cannot see images" in (client.last_result.attempts[0].error_message or "")


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="tiers"):
        CascadeChatCompletionClient([])
    with pytest.raises(ConfigError, match="tiers"):
        CascadeChatCompletionClient("openai/x")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="judge"):
        CascadeChatCompletionClient(["openai/x"], judge=object())  # type: ignore[arg-type]
    assert isinstance(CascadeChatCompletionClient(["openai/x"]).judge, WellFormedReply)


def test_the_example_shows_a_bad_tool_call_escalated_on_the_test_server() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "tool_assistant.py"), "--test-server"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert "cascade.escalated" in run.stdout
    assert "calls unknown tool 'weather'" in run.stdout
    assert "Answer: It is sunny and 21 C in Paris." in run.stdout
    assert "3 model calls; the last answered by openai/small" in run.stdout


@pytest.mark.slow
def test_the_example_calls_the_tool_and_answers_from_it_on_the_local_tiers_by_default() -> None:
    """No flags: SmolLM2 (tool_choice="required") calls get_weather, the agent runs it, and
    SmolLM2's answer from the result passes the judge."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "tool_assistant.py")],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert "reason='well-formed tool calls'" in run.stdout
    answer = next(line for line in run.stdout.splitlines() if line.startswith("Answer: "))
    assert "21 c" in answer.lower()
    assert "2 model calls; the last answered by local/smollm2-135m; cost $0.000000" in run.stdout


async def test_a_tiers_tool_choice_replaces_auto_and_is_dropped_when_no_tools_are_offered(
    server: FakeLLMServer,
) -> None:
    server.script("small", Reply(tool_calls=[ToolCall("add", {"a": 2, "b": 3})]), Reply("5"))
    tier = Tier("openai/small", api_base=server.api_base, params={"tool_choice": "required"})
    client = CascadeChatCompletionClient([tier])

    await client.create(QUESTION, tools=[ADD])  # AutoGen's default: tool_choice="auto"
    await client.create(QUESTION)

    with_tools, without = (r.body for r in server.requests_for("small"))
    assert with_tools["tool_choice"] == "required"
    assert "tool_choice" not in without and "tools" not in without


@pytest.mark.slow
async def test_a_local_chat_model_writes_a_required_tool_call_valid_against_the_schema() -> None:
    """SmolLM2's chat template has no tools: the call is constrained JSON made a tool call."""
    tier = Tier("local/smollm2-135m", params={"max_tokens": 64, "tool_choice": "required"})
    client = CascadeChatCompletionClient([tier], judge=WellFormedReply())

    result = await client.create(QUESTION, tools=[ADD])

    assert isinstance(result.content, list) and len(result.content) == 1
    call = result.content[0]
    assert call.name == "add" and set(json.loads(call.arguments)) == {"a", "b"}
    assert result.finish_reason == "function_calls"
    assert client.last_result is not None and client.last_result.tier == 0


def test_a_forced_reply_cut_off_before_its_json_closes_stays_text() -> None:
    assert tool_calls_from_text('{"name": "add", "arguments": {"a": 2') is None
    assert tool_calls_from_text("[1, 2]") is None
    (call,) = tool_calls_from_text('{"name": "add", "arguments": {"a": 2, "b": 3}}') or []
    assert call["function"] == {"name": "add", "arguments": '{"a": 2, "b": 3}'}


def readme_snippet() -> str:
    section = (ROOT / "README.md").read_text().split("## Use the cascade inside an AutoGen app")[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_snippet_runs_as_written_against_the_test_server(
    server: FakeLLMServer, tmp_path: Path
) -> None:
    server.script(
        "gpt-4o-mini",
        Reply(tool_calls=[ToolCall("weather", {"city": "Paris"})]),  # no such tool: escalate
        Reply("Sunny, 21 C in Paris."),
    )
    server.script("gpt-4o", Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
    (tmp_path / "snippet.py").write_text(readme_snippet())
    env = {**os.environ, "OPENAI_API_BASE": server.api_base, "OPENAI_API_KEY": "not-a-key"}
    env.pop("OPENAI_BASE_URL", None)  # LiteLLM would prefer it to OPENAI_API_BASE

    run = subprocess.run(
        [sys.executable, "snippet.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert "Sunny, 21 C in Paris." in run.stdout
    assert "openai/gpt-4o-mini 3" in run.stdout  # last answered by the cheap tier, 3 calls
    assert [r.model for r in server.requests] == ["gpt-4o-mini", "gpt-4o", "gpt-4o-mini"]
    assert (tmp_path / "cache.sqlite3").is_file()


# -- the same walk as Cascade: judge context, budget, router, demonstrations ------------------


class SpyJudge:
    """Accepts answers containing ``needle``; keeps what it was asked."""

    name = "spy"

    def __init__(self, needle: str) -> None:
        self.needle = needle
        self.seen: list[tuple[str, JudgeContext | None]] = []

    async def judge(self, query: str, answer: str, context: JudgeContext | None = None) -> Verdict:
        self.seen.append((query, context))
        return Verdict(self.needle in answer, "spied", judge=self.name)


def described(query: str, context: JudgeContext | None) -> tuple[object, ...]:
    assert context is not None and context.request is not None and context.solution is not None
    return (
        query,
        context.tier,
        context.model,
        context.tiers,
        context.is_last,
        [dict(m) for m in context.request.messages],
        [(a.tier, a.verdict, a.answer) for a in context.attempts],
        context.solution.answer,
    )


async def test_a_judge_sees_the_same_context_under_cascade_and_the_autogen_client(
    server: FakeLLMServer,
) -> None:
    for _ in range(2):
        server.script("small", "It is 6.")
        server.script("large", "It is 5.")
    under_cascade, under_autogen = SpyJudge("5"), SpyJudge("5")
    request = ChatRequest(messages=({"role": "user", "content": "What is 2+3?"},))

    by_cascade = await Cascade(ladder(server), under_cascade).resolve(request)
    reply = await CascadeChatCompletionClient(ladder(server), judge=under_autogen).create(QUESTION)

    assert by_cascade.answer == reply.content == "It is 5."
    assert [described(*s) for s in under_cascade.seen] == [
        described(*s) for s in under_autogen.seen
    ]
    assert [c.tier for _, c in under_autogen.seen if c] == [0, 1]


async def test_the_autogen_client_stops_at_its_budget(server: FakeLLMServer) -> None:
    server.script("small", "")
    client = CascadeChatCompletionClient(ladder(server), budget_usd=cost(CHEAP, 100, 600))

    with pytest.raises(CascadeFailedError) as failed:
        await client.create(QUESTION)

    assert failed.value.result.stop_reason == "budget"
    assert server.requests_for("large") == [] and client.calls == 1


async def test_the_autogen_client_starts_where_its_router_says(server: FakeLLMServer) -> None:
    class StartAtTheTop:
        async def start_tier(self, query: str, tiers: Sequence[Tier]) -> int:
            return len(tiers) - 1

    server.script("large", "5")
    client = CascadeChatCompletionClient(ladder(server), router=StartAtTheTop())

    result = await client.create(QUESTION)

    assert result.content == "5" and client.last_tier == 1 and server.requests_for("small") == []


class HashingEmbedder:
    """A real (tiny) embedder: words hashed into 64 dimensions."""

    name = "test/hashed-bag-of-words-64"

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = []
        for text in texts:
            vector = [0.0] * 64
            for word in re.findall(r"\w+", text.lower()):
                vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % 64] += 1.0
            norm = math.sqrt(sum(x * x for x in vector)) or 1.0
            vectors.append([x / norm for x in vector])
        return vectors


async def test_the_autogen_client_records_and_retrieves_demonstrations(
    server: FakeLLMServer, tmp_path: Path
) -> None:
    server.script("small", "", "Rome.")
    server.script("large", "Paris.")
    store = SolutionStore(tmp_path / "store", embedder=HashingEmbedder())
    client = CascadeChatCompletionClient(ladder(server), store=store)

    await client.create([UserMessage(content="What is the capital of France?", source="user")])
    await client.create([UserMessage(content="What is the capital of Italy?", source="user")])

    assert client.last_result is not None and client.last_tier == 0
    assert [d.query for d in client.last_result.demonstrations] == [
        "What is the capital of France?"
    ]
    assert server.requests_for("small")[1].messages == [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "What is the capital of Italy?"},
    ]
