"""The hierarchy controller over real LiteLLM calls to the scripted loopback server."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from ecocascade import (
    Cascade,
    CascadeFailedError,
    CheckJudge,
    ConfigError,
    ContainsJudge,
    LLMJudge,
    Price,
    RetryPolicy,
    Tier,
    Verdict,
)
from ecocascade.testing import FakeLLMServer, Fault, Reply
from ecocascade.types import Solution, Task

FAST = RetryPolicy(max_retries=2, base_delay_s=0.01, max_delay_s=1.0)
CHEAP = Price(input_per_mtok=1.0, output_per_mtok=2.0)
STRONG = Price(input_per_mtok=10.0, output_per_mtok=30.0)


def ladder(server: FakeLLMServer, *, timeout_s: float = 5.0) -> list[Tier]:
    return [
        Tier(
            "openai/small", api_base=server.api_base, price=CHEAP, retry=FAST, timeout_s=timeout_s
        ),
        Tier(
            "openai/large", api_base=server.api_base, price=STRONG, retry=FAST, timeout_s=timeout_s
        ),
    ]


def cost(price: Price, tokens_in: int, tokens_out: int) -> float:
    return (tokens_in * price.input_per_mtok + tokens_out * price.output_per_mtok) / 1e6


async def test_an_accepted_cheap_answer_stops_the_cascade_at_tier_0(server: FakeLLMServer) -> None:
    server.script("small", Reply("Paris", prompt_tokens=20, completion_tokens=2))
    result = await Cascade(ladder(server), ContainsJudge("paris")).run("Capital of France?")

    assert result.success and result.tier == 0 and result.model == "openai/small"
    assert result.answer == "Paris"
    assert [a.verdict for a in result.attempts] == ["accept"]
    assert result.cost_usd == pytest.approx(cost(CHEAP, 20, 2))
    assert server.requests_for("large") == []


async def test_a_rejected_answer_escalates_and_both_attempts_are_paid_for(
    server: FakeLLMServer,
) -> None:
    server.script("small", Reply("Lyon", prompt_tokens=20, completion_tokens=2))
    server.script("large", Reply("Paris", prompt_tokens=20, completion_tokens=3))
    result = await Cascade(ladder(server), ContainsJudge("Paris")).run("Capital of France?")

    assert result.success and result.tier == 1 and result.answer == "Paris"
    small, large = result.attempts
    assert (small.verdict, small.answer, small.reason) == ("reject", "Lyon", "answer lacks 'Paris'")
    assert large.verdict == "accept"
    assert result.cost_usd == pytest.approx(cost(CHEAP, 20, 2) + cost(STRONG, 20, 3))
    assert result.usage.input_tokens == 40 and result.usage.output_tokens == 5


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (Fault.rate_limit(retry_after_s=0), "rate_limited"),
        (Fault.server_error(500), "unavailable"),
        (Fault.server_error(503), "unavailable"),
        (Fault.timeout(delay_s=5), "timeout"),
        (Fault.disconnect(), "unavailable"),
        (Fault.malformed_json(), "malformed_response"),
        (Fault.empty_choices(), "malformed_response"),
        (Fault.context_window(), "context_window"),
        (Fault.status(401, "Incorrect API key provided"), "rejected"),
        (Fault.status(404, "The model does not exist", "model_not_found"), "rejected"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
async def test_a_tier_that_keeps_failing_is_escalated_past_with_the_error_recorded(
    server: FakeLLMServer, fault: Fault, kind: str
) -> None:
    server.always("small", fault)
    server.script("large", "Paris")
    tiers = ladder(server, timeout_s=0.5)
    result = await Cascade(tiers, ContainsJudge("Paris")).run("Capital of France?")

    assert result.success and result.tier == 1
    failed = result.attempts[0]
    assert failed.verdict == "error" and failed.error == kind
    assert failed.answer is None and failed.cost_usd == 0.0
    transient = kind in {"rate_limited", "unavailable", "timeout"}
    # transient errors are retried (bounded); the others escalate at once
    assert failed.retries == (FAST.max_retries if transient else 0)
    assert len(server.requests_for("small")) == (1 + FAST.max_retries if transient else 1)


async def test_a_transient_error_that_clears_is_retried_on_the_same_tier(
    server: FakeLLMServer,
) -> None:
    server.script("small", Fault.rate_limit(retry_after_s=0.05), Fault.server_error(502), "Paris")
    result = await Cascade(ladder(server), ContainsJudge("Paris")).run("Capital of France?")

    assert result.success and result.tier == 0
    assert result.attempts[0].retries == 2
    assert server.requests_for("large") == []


async def test_a_retry_after_longer_than_the_policy_allows_escalates_without_waiting(
    server: FakeLLMServer,
) -> None:
    server.always("small", Fault.rate_limit(retry_after_s=60))
    server.script("large", "Paris")
    started = asyncio.get_running_loop().time()
    result = await Cascade(ladder(server), ContainsJudge("Paris")).run("Capital of France?")

    assert result.tier == 1 and result.attempts[0].error == "rate_limited"
    assert len(server.requests_for("small")) == 1
    assert asyncio.get_running_loop().time() - started < 5


async def test_when_every_tier_fails_the_result_keeps_every_attempt(server: FakeLLMServer) -> None:
    server.script("small", "Lyon")
    server.always("large", Fault.server_error(500))
    result = await Cascade(ladder(server), ContainsJudge("Paris")).run("Capital of France?")

    assert not result.success and result.stop_reason == "exhausted"
    assert result.answer is None and result.tier is None
    assert [(a.model, a.verdict) for a in result.attempts] == [
        ("openai/small", "reject"),
        ("openai/large", "error"),
    ]
    assert result.attempts[0].answer == "Lyon"  # the rejected answer is kept, not served
    with pytest.raises(CascadeFailedError) as caught:
        result.raise_for_failure()
    assert caught.value.result is result


async def test_the_budget_stops_escalation_before_an_attempt_that_would_exceed_it(
    server: FakeLLMServer,
) -> None:
    server.script("small", Reply("Lyon", prompt_tokens=10, completion_tokens=10))
    tiers = ladder(server)
    tiers[1] = Tier(
        "openai/large",
        api_base=server.api_base,
        price=Price(input_per_mtok=1000.0, output_per_mtok=1000.0),
        params={"max_tokens": 100},
    )
    cascade = Cascade(tiers, ContainsJudge("Paris"), budget_usd=0.01)
    with capture_logs() as logs:
        result = await cascade.run("Capital of France?")

    assert result.stop_reason == "budget" and not result.success
    assert [a.model for a in result.attempts] == ["openai/small"]
    assert server.requests_for("large") == []
    stop = next(e for e in logs if e["event"] == "cascade.budget_stop")
    assert stop["model"] == "openai/large" and "budget" in stop["reason"]


async def test_a_budget_that_fits_lets_the_cascade_escalate(server: FakeLLMServer) -> None:
    server.script("small", "Lyon")
    server.script("large", "Paris")
    result = await Cascade(ladder(server), ContainsJudge("Paris"), budget_usd=1.0).run("Capital?")
    assert result.success and result.tier == 1


async def test_under_a_budget_an_unpriced_tier_cannot_be_shown_to_fit(
    server: FakeLLMServer,
) -> None:
    server.script("small", "Lyon")
    tiers = [ladder(server)[0], Tier("openai/mystery-model", api_base=server.api_base)]
    result = await Cascade(tiers, ContainsJudge("Paris"), budget_usd=1.0).run("Capital?")
    assert result.stop_reason == "budget" and len(result.attempts) == 1


async def test_the_judges_own_cost_is_part_of_the_total(server: FakeLLMServer) -> None:
    server.script("small", Reply("Paris", prompt_tokens=20, completion_tokens=2))
    server.script("judge", Reply("yes", prompt_tokens=50, completion_tokens=1))
    judge_price = Price(input_per_mtok=5.0, output_per_mtok=15.0)
    judge = LLMJudge(Tier("openai/judge", api_base=server.api_base, price=judge_price))
    result = await Cascade(ladder(server), judge).run("Capital of France?")

    attempt = result.attempts[0]
    assert attempt.verdict == "accept" and attempt.judge == "llm:openai/judge"
    assert attempt.judge_cost_usd == pytest.approx(cost(judge_price, 50, 1))
    assert result.cost_usd == pytest.approx(cost(CHEAP, 20, 2) + cost(judge_price, 50, 1))


async def test_an_unknown_price_makes_the_cost_unknown_not_zero(server: FakeLLMServer) -> None:
    server.script("mystery", Reply("Paris", prompt_tokens=20, completion_tokens=2))
    tiers = [Tier("openai/mystery", api_base=server.api_base)]
    result = await Cascade(tiers, ContainsJudge("Paris")).run("Capital of France?")

    assert result.success
    assert result.attempts[0].cost_usd is None
    assert result.cost_usd is None and result.known_cost_usd == 0.0
    assert result.unpriced == ("openai/mystery",)


async def test_litellms_bundled_price_table_prices_a_known_model(server: FakeLLMServer) -> None:
    """gpt-4o-mini is in LiteLLM's offline table at $0.15 / $0.60 per million tokens."""
    server.script("gpt-4o-mini", Reply("Paris", prompt_tokens=1000, completion_tokens=1000))
    tiers = [Tier("openai/gpt-4o-mini", api_base=server.api_base)]
    result = await Cascade(tiers, ContainsJudge("Paris")).run("Capital of France?")
    assert result.cost_usd == pytest.approx(0.00015 + 0.0006)


async def test_a_judge_that_cannot_decide_never_accepts(server: FakeLLMServer) -> None:
    server.script("small", "Paris")
    server.script("large", "Paris")
    server.always("judge", "maybe, hard to say")
    judge = LLMJudge(Tier("openai/judge", api_base=server.api_base, price=CHEAP, retry=FAST))
    result = await Cascade(ladder(server), judge).run("Capital of France?")

    assert not result.success
    assert [(a.verdict, a.error) for a in result.attempts] == [("error", "judge_error")] * 2
    assert all(a.judge_cost_usd and a.judge_cost_usd > 0 for a in result.attempts)


async def test_a_crashing_judge_counts_as_not_accepted(server: FakeLLMServer) -> None:
    def broken(query: str, answer: str) -> bool:
        raise KeyError("boom")

    server.script("small", "Paris")
    server.script("large", "Paris")
    result = await Cascade(ladder(server), CheckJudge(broken)).run("Capital?")
    assert not result.success
    assert result.attempts[0].error == "judge_error"
    assert "KeyError" in (result.attempts[0].error_message or "")


class _ExplodingSolver:
    async def solve(self, task: Task, model: object) -> Solution:
        raise RuntimeError("solver bug")


async def test_a_crashing_solver_is_recorded_and_the_query_is_not_lost(
    server: FakeLLMServer,
) -> None:
    result = await Cascade(ladder(server), ContainsJudge("x"), solver=_ExplodingSolver()).run("q")
    assert not result.success and len(result.attempts) == 2
    assert {a.error for a in result.attempts} == {"RuntimeError"}


async def test_the_system_prompt_and_query_reach_the_model(server: FakeLLMServer) -> None:
    server.script("small", "Paris")
    cascade = Cascade(ladder(server), ContainsJudge("Paris"), system_prompt="Answer in one word.")
    await cascade.run("Capital of France?")
    (request,) = server.requests_for("small")
    assert request.messages == [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "Capital of France?"},
    ]


async def test_tier_params_are_passed_to_the_provider(server: FakeLLMServer) -> None:
    server.script("small", "Paris")
    tier = Tier("openai/small", api_base=server.api_base, params={"temperature": 0.0, "seed": 7})
    await Cascade([tier], ContainsJudge("Paris")).run("Capital?")
    body = server.requests_for("small")[0].body
    assert body["temperature"] == 0.0 and body["seed"] == 7


async def test_the_cascade_logs_attempts_verdicts_escalations_and_resolution(
    server: FakeLLMServer,
) -> None:
    server.script("small", "Lyon")
    server.script("large", "Paris")
    with capture_logs() as logs:
        result = await Cascade(ladder(server), ContainsJudge("Paris")).run("Capital?")

    events = [e["event"] for e in logs]
    assert events == [
        "judge.verdict",
        "cascade.attempt",
        "cascade.escalated",
        "judge.verdict",
        "cascade.attempt",
        "cascade.resolved",
    ]
    assert {e["run_id"] for e in logs} == {result.run_id}
    escalated = logs[2]
    assert (escalated["from_model"], escalated["to_model"]) == ("openai/small", "openai/large")
    assert logs[1]["verdict"] == "reject" and logs[1]["tokens_in"] > 0


async def test_queries_run_concurrently_on_one_cascade(server: FakeLLMServer) -> None:
    server.always("small", lambda body: body["messages"][-1]["content"].upper())
    cascade = Cascade(ladder(server), CheckJudge(lambda q, a: a == q.upper()))
    results = await asyncio.gather(*(cascade.run(f"q{i}") for i in range(10)))
    assert [r.answer for r in results] == [f"Q{i}" for i in range(10)]


def test_run_sync_works_without_an_event_loop(server: FakeLLMServer) -> None:
    server.script("small", "Paris")
    assert Cascade(ladder(server), ContainsJudge("Paris")).run_sync("Capital?").success


async def test_run_sync_inside_an_event_loop_says_to_await(server: FakeLLMServer) -> None:
    with pytest.raises(RuntimeError, match=r"await cascade\.run"):
        Cascade(ladder(server), ContainsJudge("Paris")).run_sync("Capital?")


def test_bad_construction_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="at least one tier"):
        Cascade([], ContainsJudge("x"))
    with pytest.raises(ConfigError, match="list of tiers"):
        Cascade("openai/gpt-4o", ContainsJudge("x"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="judge"):
        Cascade(["openai/gpt-4o"], judge=lambda q, a: True)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="budget_usd"):
        Cascade(["openai/gpt-4o"], ContainsJudge("x"), budget_usd=-1)


async def test_an_empty_query_is_a_config_error(server: FakeLLMServer) -> None:
    with pytest.raises(ConfigError, match="query"):
        await Cascade(ladder(server), ContainsJudge("x")).run("   ")


async def test_a_verdict_from_a_custom_judge_is_used_as_given(server: FakeLLMServer) -> None:
    class Strict:
        name = "strict"

        async def judge(self, query: str, answer: str) -> Verdict:
            return Verdict(False, "too short", judge="strict", cost_usd=0.5)

    server.script("small", "Paris")
    server.script("large", "Paris")
    result = await Cascade(ladder(server), Strict()).run("Capital?")
    assert [a.reason for a in result.attempts] == ["too short", "too short"]
    assert result.cost_usd == pytest.approx(1.0 + sum(a.cost_usd or 0 for a in result.attempts))
