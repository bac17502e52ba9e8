"""Judges reach a verdict on (query, answer): code checks, combinators, an LLM, a human."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator

import pytest

from ecocascade.exceptions import (
    ConfigError,
    JudgeError,
    JudgeUnavailableError,
    ProviderRejectedError,
)
from ecocascade.judges import (
    AllOf,
    AnyOf,
    CheckJudge,
    ContainsJudge,
    HumanJudge,
    LLMJudge,
    RegexJudge,
)
from ecocascade.models.tier import Price, RetryPolicy, Tier
from ecocascade.testing import FakeLLMServer, Fault, Reply
from ecocascade.types import Judge, Usage, Verdict

PRICE = Price(1.0, 2.0)
NO_RETRY = RetryPolicy(max_retries=0)


class Fixed:
    """A judge that returns a fixed verdict and records how often it was asked."""

    def __init__(self, accepted: bool, cost_usd: float | None = 0.0, name: str = "fixed") -> None:
        self.name = name
        self.calls: list[tuple[str, str]] = []
        self._verdict = Verdict(accepted, "fixed", judge=name, cost_usd=cost_usd)

    async def judge(self, query: str, answer: str) -> Verdict:
        self.calls.append((query, answer))
        return self._verdict


@pytest.fixture
def llm_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


def judge_tier(server: FakeLLMServer, *, price: Price | None = PRICE) -> Tier:
    return Tier("openai/judge", api_base=server.api_base, price=price, retry=NO_RETRY)


# -- ContainsJudge ------------------------------------------------------------------------------


async def test_contains_is_case_insensitive_by_default() -> None:
    """ContainsJudge accepts the text in any case unless told otherwise."""
    verdict = await ContainsJudge("paris").judge("capital?", "It is PARIS.")
    assert verdict.accepted
    assert verdict.judge == "contains:paris"
    assert verdict.cost_usd == 0.0


async def test_contains_case_sensitive_rejects_a_different_case() -> None:
    """With case_sensitive=True only the exact case is accepted."""
    judge = ContainsJudge("Paris", case_sensitive=True)
    assert not (await judge.judge("q", "it is paris")).accepted
    assert (await judge.judge("q", "it is Paris")).accepted


def test_contains_with_empty_text_is_a_config_error() -> None:
    """An empty needle would accept everything, so it is refused at construction."""
    with pytest.raises(ConfigError):
        ContainsJudge("")


# -- RegexJudge ---------------------------------------------------------------------------------


async def test_regex_accepts_a_match_and_rejects_a_miss() -> None:
    """RegexJudge accepts when the pattern is found anywhere in the answer."""
    judge = RegexJudge(r"\b4\b")
    assert (await judge.judge("2+2?", "the answer is 4.")).accepted
    miss = await judge.judge("2+2?", "the answer is 44.")
    assert not miss.accepted
    assert miss.judge == r"regex:\b4\b"


def test_regex_with_an_invalid_pattern_is_a_config_error() -> None:
    """A pattern that does not compile is the caller's mistake."""
    with pytest.raises(ConfigError, match="regular expression"):
        RegexJudge("(unclosed")


# -- CheckJudge ---------------------------------------------------------------------------------


async def test_check_with_a_sync_predicate_receives_query_and_answer() -> None:
    """A sync predicate is called with (query, answer) and its truth decides."""
    seen: list[tuple[str, str]] = []

    def is_four(query: str, answer: str) -> bool:
        seen.append((query, answer))
        return answer.strip() == "4"

    judge = CheckJudge(is_four)
    assert (await judge.judge("2+2?", " 4 ")).accepted
    assert not (await judge.judge("2+3?", "4.5")).accepted
    assert seen == [("2+2?", " 4 "), ("2+3?", "4.5")]
    assert judge.name == "check:is_four"


async def test_check_with_an_async_predicate_is_awaited() -> None:
    """An async predicate is awaited, not taken for a truthy coroutine."""

    async def never(query: str, answer: str) -> bool:
        return False

    verdict = await CheckJudge(never, name="never").judge("q", "a")
    assert not verdict.accepted
    assert verdict.judge == "never"


async def test_check_passes_a_returned_verdict_through_unchanged() -> None:
    """A predicate returning a Verdict gives its own reason and cost."""
    own = Verdict(True, "looks right", judge="mine", cost_usd=0.25)
    verdict = await CheckJudge(lambda q, a: own).judge("q", "a")
    assert verdict == own


def test_check_with_a_non_callable_is_a_config_error() -> None:
    """CheckJudge refuses anything it cannot call."""
    with pytest.raises(ConfigError):
        CheckJudge("not a function")  # type: ignore[arg-type]


# -- combinators --------------------------------------------------------------------------------


async def test_all_of_accepts_when_every_judge_accepts_and_sums_costs() -> None:
    """AllOf accepts only when all parts accept, and its cost is the sum of theirs."""
    verdict = await AllOf(Fixed(True, 0.1, "a"), Fixed(True, 0.2, "b")).judge("q", "a")
    assert verdict.accepted
    assert verdict.cost_usd == pytest.approx(0.3)
    assert verdict.judge == "(a & b)"


async def test_all_of_stops_at_the_first_rejection() -> None:
    """AllOf rejects at the first rejecting judge without asking the ones after it."""
    later = Fixed(True, name="later")
    verdict = await AllOf(Fixed(True, name="a"), Fixed(False, name="b"), later).judge("q", "a")
    assert not verdict.accepted
    assert later.calls == []


async def test_all_of_cost_is_unknown_when_any_part_is_unknown() -> None:
    """One unpriced part makes the combined cost None, never a silent undercount."""
    verdict = await AllOf(Fixed(True, 0.1), Fixed(True, None)).judge("q", "a")
    assert verdict.accepted
    assert verdict.cost_usd is None


async def test_any_of_accepts_at_the_first_acceptance() -> None:
    """AnyOf accepts as soon as one judge accepts and does not ask the rest."""
    later = Fixed(False, name="later")
    first = Fixed(False, 0.1, "first")
    verdict = await AnyOf(first, Fixed(True, 0.2, "second"), later).judge("q", "a")
    assert verdict.accepted
    assert later.calls == []
    assert first.calls == [("q", "a")]
    assert verdict.cost_usd == pytest.approx(0.3)
    assert verdict.judge == "(first | second | later)"


async def test_any_of_rejects_when_all_reject() -> None:
    """AnyOf rejects only after every judge has rejected."""
    judges = [Fixed(False, name=n) for n in "abc"]
    verdict = await AnyOf(*judges).judge("q", "a")
    assert not verdict.accepted
    assert all(j.calls == [("q", "a")] for j in judges)


@pytest.mark.parametrize("combinator", [AllOf, AnyOf])
def test_a_combinator_without_judges_is_a_config_error(
    combinator: type[AllOf] | type[AnyOf],
) -> None:
    """Combining nothing is refused at construction."""
    with pytest.raises(ConfigError):
        combinator()


def test_every_builtin_judge_satisfies_the_protocol() -> None:
    """Built-in judges plug in wherever a Judge is expected."""
    judges = [
        ContainsJudge("x"),
        CheckJudge(lambda q, a: True),
        AllOf(ContainsJudge("x")),
        HumanJudge(),
    ]
    assert all(isinstance(j, Judge) for j in judges)


# -- LLMJudge -----------------------------------------------------------------------------------


async def test_llm_judge_accepts_on_yes(llm_server: FakeLLMServer) -> None:
    """A reply starting with 'Yes' accepts, naming the judge's tier."""
    llm_server.script("judge", "Yes, it does.")
    verdict = await LLMJudge(judge_tier(llm_server)).judge("2+2?", "4")
    assert verdict.accepted
    assert verdict.judge == "llm:openai/judge"
    assert "Yes, it does." in verdict.reason


async def test_llm_judge_rejects_on_no(llm_server: FakeLLMServer) -> None:
    """A reply of 'No.' rejects."""
    llm_server.script("judge", "No.")
    verdict = await LLMJudge(judge_tier(llm_server)).judge("2+2?", "5")
    assert not verdict.accepted


async def test_llm_judge_cost_is_the_price_times_the_reported_usage(
    llm_server: FakeLLMServer,
) -> None:
    """The verdict's cost is the tier price applied to the tokens the server reported."""
    llm_server.script("judge", Reply("yes", prompt_tokens=100, completion_tokens=1))
    verdict = await LLMJudge(judge_tier(llm_server)).judge("2+2?", "4")
    assert verdict.usage == Usage(100, 1)
    assert verdict.cost_usd == pytest.approx((100 * 1.0 + 1 * 2.0) / 1e6)


async def test_llm_judge_cost_follows_the_servers_default_token_count(
    llm_server: FakeLLMServer,
) -> None:
    """With default counting (prompt words + 3, reply words) the cost follows those counts."""
    llm_server.script("judge", "Yes, it does.")
    verdict = await LLMJudge(judge_tier(llm_server)).judge("What is 2+2?", "4")
    [request] = llm_server.requests_for("judge")
    prompt_tokens = len(request.messages[0]["content"].split()) + 3
    assert verdict.usage == Usage(prompt_tokens, 3)
    assert verdict.cost_usd == pytest.approx((prompt_tokens * 1.0 + 3 * 2.0) / 1e6)


async def test_llm_judge_prompt_contains_the_query_and_the_answer(
    llm_server: FakeLLMServer,
) -> None:
    """The judge model is sent one user message holding both the query and the answer."""
    llm_server.script("judge", "yes")
    await LLMJudge(judge_tier(llm_server)).judge("capital of France?", "Paris, of course")
    [request] = llm_server.requests_for("judge")
    [message] = request.messages
    assert message["role"] == "user"
    assert "capital of France?" in message["content"]
    assert "Paris, of course" in message["content"]


async def test_llm_judge_reply_without_yes_or_no_raises_with_its_cost(
    llm_server: FakeLLMServer,
) -> None:
    """A reply that is neither yes nor no raises JudgeError carrying what the call cost."""
    llm_server.script("judge", Reply("Perhaps.", prompt_tokens=100, completion_tokens=1))
    with pytest.raises(JudgeError) as caught:
        await LLMJudge(judge_tier(llm_server)).judge("q", "a")
    assert caught.value.judge == "llm:openai/judge"
    assert caught.value.cost_usd == pytest.approx(102 / 1e6)


async def test_llm_judge_provider_failure_raises_judge_error(llm_server: FakeLLMServer) -> None:
    """A judge model that fails (bad key) raises JudgeError caused by the provider error."""
    llm_server.script("judge", Fault.status(401, "bad key"))
    with pytest.raises(JudgeError) as caught:
        await LLMJudge(judge_tier(llm_server)).judge("q", "a")
    cause = caught.value.__cause__
    assert isinstance(cause, ProviderRejectedError)
    assert cause.status_code == 401


async def test_llm_judge_with_an_unpriced_model_has_unknown_cost(
    llm_server: FakeLLMServer,
) -> None:
    """A judge model with no price and no entry in LiteLLM's table costs None, not 0."""
    llm_server.script("judge", "yes")
    verdict = await LLMJudge(judge_tier(llm_server, price=None)).judge("q", "a")
    assert verdict.accepted
    assert verdict.cost_usd is None


@pytest.mark.parametrize("prompt", ["Is {answer} right?", "Does this answer {query}?", "Judge."])
def test_llm_judge_prompt_without_placeholders_is_a_config_error(prompt: str) -> None:
    """A custom prompt must contain both {query} and {answer}."""
    with pytest.raises(ConfigError):
        LLMJudge(Tier("openai/judge", api_base="http://127.0.0.1:9/v1"), prompt=prompt)


async def test_llm_judge_truncates_a_long_answer(llm_server: FakeLLMServer) -> None:
    """An answer longer than max_answer_chars is cut to that length in the prompt."""
    llm_server.script("judge", "no")
    judge = LLMJudge(judge_tier(llm_server), max_answer_chars=10)
    await judge.judge("q", "x" * 50)
    content = llm_server.requests_for("judge")[0].messages[0]["content"]
    assert "x" * 10 in content
    assert "x" * 11 not in content
    assert "truncated" in content


# -- HumanJudge ---------------------------------------------------------------------------------


def human(lines: str) -> tuple[HumanJudge, io.StringIO]:
    output = io.StringIO()
    judge = HumanJudge(input=io.StringIO(lines), output=output, require_tty=False)
    return judge, output


async def test_human_y_accepts() -> None:
    """Typing 'y' accepts the answer."""
    judge, _ = human("y\n")
    verdict = await judge.judge("q", "a")
    assert verdict.accepted
    assert verdict.judge == "human"


async def test_human_n_rejects() -> None:
    """Typing 'n' rejects the answer."""
    judge, _ = human("n\n")
    assert not (await judge.judge("q", "a")).accepted


async def test_human_is_asked_again_after_garbage() -> None:
    """An unrecognised reply is asked again, and a later 'yes' accepts."""
    judge, output = human("maybe\nyes\n")
    assert (await judge.judge("q", "a")).accepted
    assert output.getvalue().count("Accept this answer? [y/n]") == 2


async def test_human_eof_raises_judge_error() -> None:
    """Input that ends before any reply raises JudgeError instead of guessing."""
    judge, _ = human("")
    with pytest.raises(JudgeError):
        await judge.judge("q", "a")


async def test_human_three_garbage_replies_raise_judge_error() -> None:
    """After three unrecognised replies the human judge gives up with JudgeError."""
    judge, _ = human("what\nhuh\n?\ny\n")
    with pytest.raises(JudgeError, match="3 tries"):
        await judge.judge("q", "a")


async def test_human_without_a_tty_is_unavailable_without_blocking() -> None:
    """With require_tty=True and a non-terminal input, judge() refuses at once."""
    judge = HumanJudge(input=io.StringIO("y\n"), output=io.StringIO(), require_tty=True)
    async with asyncio.timeout(2):
        with pytest.raises(JudgeUnavailableError) as caught:
            await judge.judge("q", "a")
    assert isinstance(caught.value, ConfigError)


async def test_human_is_shown_the_query_and_the_answer() -> None:
    """The prompt written for the human includes both the query and the answer."""
    judge, output = human("y\n")
    await judge.judge("What is 2+2?", "It is 4.")
    shown = output.getvalue()
    assert "What is 2+2?" in shown
    assert "It is 4." in shown


# -- regressions --------------------------------------------------------------------------------


async def test_llm_judge_does_not_substitute_placeholders_inside_the_query(
    llm_server: FakeLLMServer,
) -> None:
    """A literal "{answer}" in the query reaches the judge as written."""
    llm_server.script("judge", "yes")
    judge = LLMJudge(judge_tier(llm_server))
    await judge.judge("What does {answer} mean in str.format?", "SECRET")
    prompt = llm_server.requests_for("judge")[0].messages[0]["content"]
    assert "What does {answer} mean in str.format?" in prompt
    assert prompt.count("SECRET") == 1


class Undecided:
    name = "undecided"

    async def judge(self, query: str, answer: str) -> Verdict:
        raise JudgeError("no idea", judge=self.name, cost_usd=0.25)


async def test_all_of_with_an_undecided_part_is_undecided_and_keeps_the_cost_spent() -> None:
    with pytest.raises(JudgeError) as caught:
        await AllOf(Fixed(True, cost_usd=1.0), Undecided()).judge("q", "a")
    assert caught.value.cost_usd == pytest.approx(1.25)


async def test_any_of_skips_an_undecided_part_and_asks_the_next() -> None:
    verdict = await AnyOf(Undecided(), Fixed(True, cost_usd=1.0)).judge("q", "a")
    assert verdict.accepted and verdict.cost_usd == pytest.approx(1.25)
    assert "undecided" in verdict.reason


async def test_any_of_with_no_acceptance_and_an_undecided_part_is_undecided() -> None:
    with pytest.raises(JudgeError) as caught:
        await AnyOf(Fixed(False, cost_usd=1.0), Undecided()).judge("q", "a")
    assert caught.value.cost_usd == pytest.approx(1.25)
