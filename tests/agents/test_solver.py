"""AutoGenSolver: real AutoGen agents and teams on each tier, real LiteLLM, the scripted server."""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from autogen_agentchat.agents import AssistantAgent, BaseChatAgent
from autogen_agentchat.base import Response, TerminationCondition
from autogen_agentchat.conditions import TextMentionTermination
from autogen_agentchat.messages import BaseChatMessage, TextMessage
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_core import CancellationToken
from structlog.testing import capture_logs

from ecocascade import (
    Cascade,
    ConfigError,
    ContainsJudge,
    Price,
    RetryPolicy,
    SolutionRecord,
    SolutionStore,
    Task,
    Tier,
    TierClient,
)
from ecocascade.agents import LiteLLMChatCompletionClient
from ecocascade.agents.solver import AutoGenSolver
from ecocascade.exceptions import SolverError
from ecocascade.store import record_id
from ecocascade.testing import FakeLLMServer, Fault, Reply

PRICE = Price(input_per_mtok=1.0, output_per_mtok=2.0)
FAST = RetryPolicy(max_retries=0)


def tiers(server: FakeLLMServer, *names: str) -> list[Tier]:
    return [
        Tier(f"openai/{name}", api_base=server.api_base, price=PRICE, retry=FAST, timeout_s=10)
        for name in names
    ]


def cost(tokens_in: int, tokens_out: int) -> float:
    return (tokens_in * PRICE.input_per_mtok + tokens_out * PRICE.output_per_mtok) / 1e6


class HashingEmbedder:
    """A real (tiny) embedder: words hashed into 64 dimensions, so similar queries are close."""

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


class Built:
    """A factory that builds one AssistantAgent and remembers every client it was given."""

    def __init__(self) -> None:
        self.clients: list[LiteLLMChatCompletionClient] = []

    def __call__(self, client: LiteLLMChatCompletionClient) -> AssistantAgent:
        self.clients.append(client)
        return AssistantAgent("assistant", model_client=client, system_message="Be brief.")


def writer_and_critic(client: LiteLLMChatCompletionClient) -> RoundRobinGroupChat:
    writer = AssistantAgent("writer", model_client=client, system_message="Write.")
    critic = AssistantAgent("critic", model_client=client, system_message="Criticise.")
    return RoundRobinGroupChat([writer, critic], max_turns=2)


async def test_a_wrong_tier_0_escalates_to_a_fresh_agent_on_tier_1(server: FakeLLMServer) -> None:
    """Each tier gets a new agent around a new client for that tier; the second one is accepted."""
    server.script("small", "It is Lyon.")
    server.script("large", "It is Paris.")
    factory = Built()
    cascade = Cascade(
        tiers(server, "small", "large"),
        ContainsJudge("Paris"),
        solver=AutoGenSolver(factory),
    )
    result = await cascade.run("What is the capital of France?")
    assert result.success and result.tier == 1
    assert result.answer == "It is Paris."
    assert [a.verdict for a in result.attempts] == ["reject", "accept"]
    assert [c.label for c in factory.clients] == ["openai/small", "openai/large"]
    assert factory.clients[0] is not factory.clients[1]
    # Tier 1 starts fresh: its prompt holds the system message and the query, nothing of tier 0.
    large = server.requests_for("large")[0].messages
    assert [m["role"] for m in large] == ["system", "user"]
    assert "Lyon" not in str(large)


async def test_a_teams_usage_cost_calls_and_transcript_are_summed(server: FakeLLMServer) -> None:
    """A two-agent team's calls are all accounted for, and its messages form the transcript."""
    server.script(
        "m",
        Reply("Draft: Paris.", prompt_tokens=20, completion_tokens=3),
        Reply("Looks right.", prompt_tokens=30, completion_tokens=2),
    )
    solver = AutoGenSolver(writer_and_critic)
    client = TierClient(tiers(server, "m")[0])
    solution = await solver.solve(Task("Capital of France?"), client)
    assert (solution.usage.input_tokens, solution.usage.output_tokens) == (50, 5)
    assert solution.cost_usd == pytest.approx(cost(50, 5))
    assert (solution.model_calls, solution.retries) == (2, 0)
    assert solution.answer == "Looks right."
    assert [(m["role"], m["name"], m["content"]) for m in solution.transcript] == [
        ("user", "user", "Capital of France?"),
        ("assistant", "writer", "Draft: Paris."),
        ("assistant", "critic", "Looks right."),
    ]


async def test_demonstrations_go_into_the_initial_message_of_every_tier(
    server: FakeLLMServer, tmp_path: Path
) -> None:
    """A similar verified solution from the store is rendered before the query for each tier."""
    store = SolutionStore(tmp_path / "db", embedder=HashingEmbedder())
    await store.record(
        SolutionRecord(
            id=record_id("What is the capital of Italy?", "default"),
            namespace="default",
            query="What is the capital of Italy?",
            solution="Rome is the capital of Italy.",
        )
    )
    server.script("small", "Lyon")
    server.script("large", "Paris")
    cascade = Cascade(
        tiers(server, "small", "large"),
        ContainsJudge("Paris"),
        solver=AutoGenSolver(Built()),
        store=store,
    )
    result = await cascade.run("What is the capital of France?")
    assert result.success and result.tier == 1
    assert [d.query for d in result.demonstrations] == ["What is the capital of Italy?"]
    for model in ("small", "large"):
        initial = server.requests_for(model)[0].messages[-1]["content"]
        assert "Query: What is the capital of Italy?" in initial
        assert "Solution: Rome is the capital of Italy." in initial
        assert initial.endswith("What is the capital of France?")
    recorded = store.get(result.recorded_id or "")
    assert recorded is not None and recorded.solution == "Paris"


async def test_the_cascade_system_prompt_precedes_the_task(server: FakeLLMServer) -> None:
    """The cascade's ``system_prompt`` opens the agent's initial message."""
    server.script("m", "ok")
    cascade = Cascade(
        tiers(server, "m"), ContainsJudge("ok"), solver=AutoGenSolver(Built()), system_prompt="Hi."
    )
    await cascade.run("Say ok.")
    assert server.requests_for("m")[0].messages[-1]["content"] == "Hi.\n\nSay ok."


async def test_a_provider_error_inside_a_team_is_recorded_with_its_type(
    server: FakeLLMServer,
) -> None:
    """A rejected request in a team (which AutoGen flattens) still reaches the cascade typed."""
    server.script("small", Fault.status(400, "bad request"))
    server.script("large", "Draft: Paris.", "Fine.")
    cascade = Cascade(
        tiers(server, "small", "large"),
        ContainsJudge("Fine"),
        solver=AutoGenSolver(writer_and_critic),
    )
    with capture_logs() as logs:
        result = await cascade.run("Capital of France?")
    first = result.attempts[0]
    assert (first.verdict, first.error) == ("error", "rejected")
    assert first.error_message is not None and "bad request" in first.error_message
    assert result.success and result.tier == 1
    assert any(e["event"] == "agents.run_failed" for e in logs)


async def test_a_provider_error_on_a_later_call_keeps_what_the_earlier_calls_cost(
    server: FakeLLMServer,
) -> None:
    """A team whose second model call fails: the failed attempt still carries the first call's
    usage and cost, and the result's total counts it."""
    server.script(
        "small",
        Reply("Draft: Lyon.", prompt_tokens=40, completion_tokens=4),
        Fault.status(400, "bad request"),
    )
    server.script("large", "Draft: Paris.", "Fine.")
    cascade = Cascade(
        tiers(server, "small", "large"),
        ContainsJudge("Fine"),
        solver=AutoGenSolver(writer_and_critic),
    )
    result = await cascade.run("Capital of France?")
    first = result.attempts[0]
    assert (first.verdict, first.error) == ("error", "rejected")
    assert (first.usage.input_tokens, first.usage.output_tokens) == (40, 4)
    assert first.cost_usd == pytest.approx(cost(40, 4))
    second = result.attempts[1].cost_usd
    assert second is not None
    assert result.cost_usd == pytest.approx(cost(40, 4) + second)


async def test_an_agent_crash_after_a_paid_call_keeps_what_was_spent(
    server: FakeLLMServer,
) -> None:
    """An agent that raises after the team's first (paid) call: the attempt fails with the
    crash's type, and with what the first call cost."""
    server.script("m", Reply("Draft.", prompt_tokens=30, completion_tokens=3))

    class Crasher(BaseChatAgent):
        @property
        def produced_message_types(self) -> Sequence[type[BaseChatMessage]]:
            return (TextMessage,)

        async def on_messages(
            self, messages: Sequence[BaseChatMessage], cancellation_token: CancellationToken
        ) -> Response:
            raise ValueError("critic fell over")

        async def on_reset(self, cancellation_token: CancellationToken) -> None:
            pass

    def team(client: LiteLLMChatCompletionClient) -> RoundRobinGroupChat:
        return RoundRobinGroupChat(
            [AssistantAgent("writer", model_client=client), Crasher("critic", "crashes")],
            max_turns=2,
        )

    cascade = Cascade(tiers(server, "m"), ContainsJudge("x"), solver=AutoGenSolver(team))
    result = await cascade.run("Hi")
    attempt = result.attempts[0]
    assert attempt.error == "RuntimeError"  # AutoGen re-raises an agent's error as RuntimeError
    assert attempt.error_message is not None and "critic fell over" in attempt.error_message
    assert (attempt.usage.input_tokens, attempt.usage.output_tokens) == (30, 3)
    assert attempt.cost_usd == pytest.approx(cost(30, 3))


async def test_max_turns_cancels_a_team_that_would_talk_longer(server: FakeLLMServer) -> None:
    """The solver's ``max_turns`` stops a team whose own limit is far away."""
    server.always("m", "more")

    def chatty(client: LiteLLMChatCompletionClient) -> RoundRobinGroupChat:
        a = AssistantAgent("a", model_client=client)
        b = AssistantAgent("b", model_client=client)
        return RoundRobinGroupChat([a, b], max_turns=50)

    solver = AutoGenSolver(chatty, max_turns=3)
    solution = await solver.solve(Task("Talk."), TierClient(tiers(server, "m")[0]))
    assert [m["name"] for m in solution.transcript] == ["user", "a", "b", "a"]
    assert len(server.requests_for("m")) == 3
    assert solution.model_calls == 3


async def test_a_termination_condition_stops_the_run(server: FakeLLMServer) -> None:
    """An AutoGen termination condition given to the solver ends the run when it fires."""
    server.script("m", "thinking", "DONE: 42", "never asked")

    def pair(client: LiteLLMChatCompletionClient) -> RoundRobinGroupChat:
        a = AssistantAgent("a", model_client=client)
        b = AssistantAgent("b", model_client=client)
        return RoundRobinGroupChat([a, b], max_turns=10)

    solver = AutoGenSolver(pair, termination=TextMentionTermination("DONE"))
    solution = await solver.solve(Task("Go."), TierClient(tiers(server, "m")[0]))
    assert solution.answer == "DONE: 42"
    assert len(server.requests_for("m")) == 2


async def test_one_termination_condition_serves_every_tier_and_query(
    server: FakeLLMServer,
) -> None:
    """The condition given to the solver fires on tier 0, then again on tier 1, and again for a
    second query: each run gets a fresh copy, so a fired condition never breaks the next one."""
    server.script("small", "Lyon DONE", "Lyon DONE")
    server.script("large", "Paris DONE", "Paris DONE")

    def pair(client: LiteLLMChatCompletionClient) -> RoundRobinGroupChat:
        a = AssistantAgent("a", model_client=client)
        b = AssistantAgent("b", model_client=client)
        return RoundRobinGroupChat([a, b], max_turns=10)

    condition = TextMentionTermination("DONE")
    cascade = Cascade(
        tiers(server, "small", "large"),
        ContainsJudge("Paris"),
        solver=AutoGenSolver(pair, termination=condition),
    )
    for query in ("Capital of France?", "And again: capital of France?"):
        result = await cascade.run(query)
        assert [(a.verdict, a.answer) for a in result.attempts] == [
            ("reject", "Lyon DONE"),
            ("accept", "Paris DONE"),
        ]
    assert not condition.terminated
    assert len(server.requests_for("small")) == len(server.requests_for("large")) == 2


async def test_an_error_in_the_run_cancels_the_teams_call_in_flight(
    server: FakeLLMServer,
) -> None:
    """When the run fails while the next agent's model call is still waiting, that call is
    cancelled: the solver raises at once and the team makes no further (paid) calls."""
    server.script("m", "first", Fault.timeout(20, then="late"), "third")

    class Broken(TerminationCondition):
        @property
        def terminated(self) -> bool:
            return False

        async def __call__(self, messages: Sequence[object]) -> None:
            raise ValueError("condition bug")

        async def reset(self) -> None:
            pass

    def pair(client: LiteLLMChatCompletionClient) -> RoundRobinGroupChat:
        a = AssistantAgent("a", model_client=client)
        b = AssistantAgent("b", model_client=client)
        return RoundRobinGroupChat([a, b], max_turns=4)

    solver = AutoGenSolver(pair, termination=Broken())
    tier = Tier("openai/m", api_base=server.api_base, price=PRICE, retry=FAST, timeout_s=30)
    started = time.perf_counter()
    with pytest.raises(SolverError, match="condition bug"):
        await solver.solve(Task("Go."), TierClient(tier))
    assert time.perf_counter() - started < 15
    assert len(server.requests_for("m")) <= 2  # never the third


async def test_an_async_factory_is_awaited(server: FakeLLMServer) -> None:
    """A factory may be a coroutine function."""
    server.script("m", "hello")

    async def build(client: LiteLLMChatCompletionClient) -> AssistantAgent:
        return AssistantAgent("assistant", model_client=client)

    solution = await AutoGenSolver(build).solve(Task("Hi"), TierClient(tiers(server, "m")[0]))
    assert solution.answer == "hello"


async def test_a_factory_returning_something_else_is_a_config_error(
    server: FakeLLMServer,
) -> None:
    """A factory that returns neither an agent nor a team is the caller's mistake, said clearly."""
    cascade = Cascade(
        tiers(server, "m"), ContainsJudge("x"), solver=AutoGenSolver(lambda client: "agent")
    )
    with pytest.raises(ConfigError, match=r"ChatAgent .* or team .* got str"):
        await cascade.run("Hi")


async def test_a_factory_that_raises_is_a_failed_attempt_not_a_config_error(
    server: FakeLLMServer,
) -> None:
    """A factory crashing at run time fails that attempt; the cascade keeps the query."""

    def broken(client: LiteLLMChatCompletionClient) -> AssistantAgent:
        raise RuntimeError("no tools today")

    cascade = Cascade(tiers(server, "m"), ContainsJudge("x"), solver=AutoGenSolver(broken))
    result = await cascade.run("Hi")
    assert not result.success
    assert (result.attempts[0].error, result.attempts[0].error_message) == (
        "RuntimeError",
        "no tools today",
    )


@pytest.mark.parametrize(
    ("args", "kwargs", "where"),
    [
        (("not callable",), {}, "factory"),
        ((Built(),), {"max_turns": 0}, "max_turns"),
        ((Built(),), {"termination": "TERMINATE"}, "termination"),
        ((Built(),), {"answer": "last"}, "answer"),
    ],
)
def test_bad_settings_are_config_errors(
    args: tuple[object, ...], kwargs: dict[str, object], where: str
) -> None:
    """Settings that could never work are rejected at construction, naming the field."""
    with pytest.raises(ConfigError, match=where):
        AutoGenSolver(*args, **kwargs)  # type: ignore[arg-type]


async def test_final_text_drops_terminate_and_a_bare_terminate_message(
    server: FakeLLMServer,
) -> None:
    """The default answer is the last agent text without AutoGen's TERMINATE keyword."""
    server.script("m", "The answer is 4. TERMINATE", "TERMINATE")

    def pair(client: LiteLLMChatCompletionClient) -> RoundRobinGroupChat:
        a = AssistantAgent("a", model_client=client)
        b = AssistantAgent("b", model_client=client)
        return RoundRobinGroupChat([a, b], max_turns=2)

    solution = await AutoGenSolver(pair).solve(Task("2+2?"), TierClient(tiers(server, "m")[0]))
    assert solution.answer == "The answer is 4."
