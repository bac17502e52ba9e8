"""Config files and CLI judge specs become live cascades, or fail naming the file and field."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from ecocascade.config import load_config, parse_config, parse_judge_spec
from ecocascade.exceptions import ConfigError
from ecocascade.judges import (
    AllOf,
    AnyOf,
    ContainsJudge,
    ExecutionJudge,
    HumanJudge,
    LLMJudge,
    RegexJudge,
)
from ecocascade.models.tier import Price, RetryPolicy, Tier

API_BASE = "http://127.0.0.1:9/v1"  # nothing listens here; building a cascade makes no call
CONTAINS = {"type": "contains", "text": "4"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cascade.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def config_error(data: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, source="cascade.yaml")
    return str(caught.value)


# -- a valid file -------------------------------------------------------------------------------


def test_a_valid_file_builds_the_cascade_it_describes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tiers (price, params, retry, key variable), the LLM judge and the budget all carry over."""
    monkeypatch.setenv("ECO_TEST_KEY", "sk-test")
    path = write(
        tmp_path,
        f"""\
        tiers:
          - model: openai/small
            name: small
            api_base: {API_BASE}
            price: {{input_per_mtok: 0.15, output_per_mtok: 0.6}}
            params: {{temperature: 0, max_tokens: 256}}
            retry: {{max_retries: 1, base_delay_s: 0.1, max_delay_s: 2}}
            timeout_s: 30
          - model: openai/gpt-4o
            api_key_env: ECO_TEST_KEY
        judge:
          type: llm
          model: openai/judge
          api_base: {API_BASE}
          price: {{input_per_mtok: 1, output_per_mtok: 2}}
        system_prompt: Be brief.
        budget_usd: 0.05
        """,
    )
    cascade = load_config(path).build()

    small, large = cascade.tiers
    assert small == Tier(
        "openai/small",
        api_base=API_BASE,
        params={"temperature": 0, "max_tokens": 256},
        price=Price(0.15, 0.6),
        timeout_s=30,
        retry=RetryPolicy(max_retries=1, base_delay_s=0.1, max_delay_s=2),
        name="small",
    )
    assert large == Tier("openai/gpt-4o", api_key_env="ECO_TEST_KEY")
    assert isinstance(cascade.judge, LLMJudge)
    assert cascade.judge.tier.model == "openai/judge"
    assert cascade.judge.tier.price == Price(1, 2)
    assert cascade.budget_usd == 0.05
    assert cascade.system_prompt == "Be brief."


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"type": "llm", "model": "openai/judge", "api_base": API_BASE}, LLMJudge),
        ({"type": "exec", "timeout_s": 2, "expected_output": "4"}, ExecutionJudge),
        ({"type": "human"}, HumanJudge),
        ({"type": "contains", "text": "Paris", "case_sensitive": True}, ContainsJudge),
        ({"type": "regex", "pattern": "^4$"}, RegexJudge),
        ({"type": "any", "judges": [CONTAINS, {"type": "exec"}]}, AnyOf),
    ],
)
def test_every_judge_type_parses_and_builds(spec: dict[str, Any], expected: type) -> None:
    """Each judge type in a config becomes the matching judge object."""
    cascade = parse_config({"tiers": [{"model": "openai/small"}], "judge": spec}).build()
    assert isinstance(cascade.judge, expected)


def test_all_judge_nests_an_any_judge() -> None:
    """An `all` judge may contain an `any` judge, built in the order written."""
    spec = {
        "type": "all",
        "judges": [CONTAINS, {"type": "any", "judges": [{"type": "regex", "pattern": "^4$"}]}],
    }
    judge = parse_config({"tiers": [{"model": "openai/small"}], "judge": spec}).build().judge
    assert isinstance(judge, AllOf)
    first, second = judge.judges
    assert isinstance(first, ContainsJudge)
    assert isinstance(second, AnyOf)
    assert isinstance(second.judges[0], RegexJudge)


# -- bad files ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"judge": CONTAINS}, "tiers: Field required"),
        ({"tiers": [], "judge": CONTAINS}, "tiers: List should have at least 1 item"),
        ({"tiers": [{"api_base": API_BASE}], "judge": CONTAINS}, "tiers.0.model: Field required"),
        (
            {
                "tiers": [{"model": "m", "price": {"input_per_mtok": "abc", "output_per_mtok": 1}}],
                "judge": CONTAINS,
            },
            "tiers.0.price.input_per_mtok: Input should be a valid number",
        ),
        (
            {
                "tiers": [{"model": "m", "price": {"input_per_mtok": -1, "output_per_mtok": 1}}],
                "judge": CONTAINS,
            },
            "tiers.0.price.input_per_mtok: Input should be greater than or equal to 0",
        ),
        (
            {"tiers": [{"model": "m", "api_bas": API_BASE}], "judge": CONTAINS},
            "tiers.0.api_bas: unknown field",
        ),
        ({"tiers": [{"model": "m"}], "judge": {"type": "bogus"}}, "judge: Input tag 'bogus'"),
        (
            {"tiers": [{"model": "m"}], "judge": {"type": "all", "judges": []}},
            "judge.all.judges: List should have at least 1 item",
        ),
        (
            {
                "tiers": [{"model": "m", "price": {"input_per_mtok": "inf", "output_per_mtok": 1}}],
                "judge": CONTAINS,
            },
            "tiers.0.price.input_per_mtok: Input should be a finite number",
        ),
        (
            {"tiers": [{"model": "m", "params": {"model": "x"}}], "judge": CONTAINS},
            "tiers.0: params: ['model'] are set by the tier itself",
        ),
        (
            {"tiers": [{"model": "m"}], "judge": {"type": "regex", "pattern": "("}},
            "judge.regex: regex: not a valid regular expression",
        ),
        (
            {"tiers": [{"model": "m"}], "judge": {"type": "llm", "model": "j", "prompt": "hi"}},
            "judge.llm: prompt: the judge prompt must contain {query} and {answer}",
        ),
        ({"tiers": [{"model": "m"}], "judge": CONTAINS, "budget_usd": "nan"}, "budget_usd"),
    ],
    ids=[
        "missing-tiers",
        "empty-tiers",
        "tier-without-model",
        "string-price",
        "negative-price",
        "unknown-field",
        "unknown-judge",
        "empty-all",
        "infinite-price",
        "reserved-param",
        "bad-regex",
        "judge-prompt-without-placeholders",
        "nan-budget",
    ],
)
def test_bad_config_names_the_source_and_the_field(data: dict[str, Any], expected: str) -> None:
    """A schema violation is a ConfigError that starts with the source and names the field."""
    message = config_error(data)
    assert message.startswith("cascade.yaml: ")
    assert expected in message


def test_bad_field_in_a_file_is_reported_with_the_file_path(tmp_path: Path) -> None:
    """Loaded from disk, the error names the file path and the field path."""
    path = write(
        tmp_path,
        """\
        tiers:
          - model: openai/small
            price: {input_per_mtok: abc, output_per_mtok: 1}
        judge: {type: contains, text: "4"}
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.where == str(path)
    assert "tiers.0.price.input_per_mtok" in str(caught.value)
    assert "'abc'" in str(caught.value)


def test_yaml_syntax_error_reports_line_and_column(tmp_path: Path) -> None:
    """Broken YAML is a ConfigError located at file:line:col."""
    path = write(tmp_path, "tiers:\n  - model: [unclosed\njudge: {type: human}\n")
    with pytest.raises(ConfigError, match="not valid YAML") as caught:
        load_config(path)
    assert caught.value.where is not None
    assert caught.value.where.startswith(f"{path}:")
    line, col = caught.value.where.rsplit(":", 2)[1:]
    assert line.isdigit()
    assert col.isdigit()


def test_a_top_level_list_is_not_a_config(tmp_path: Path) -> None:
    """A file whose top level is a list says a mapping was expected."""
    path = write(tmp_path, "- model: openai/small\n")
    with pytest.raises(ConfigError, match="expected a mapping") as caught:
        load_config(path)
    assert str(path) in str(caught.value)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """A path that does not exist is a ConfigError naming it, not a FileNotFoundError."""
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="no such file") as caught:
        load_config(path)
    assert caught.value.where == str(path)


def test_an_unset_api_key_variable_fails_when_the_cascade_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tier whose api_key_env is not set cannot be built, and the error names the variable."""
    monkeypatch.delenv("ECO_TEST_MISSING_KEY", raising=False)
    config = parse_config(
        {
            "tiers": [{"model": "openai/gpt-4o", "api_key_env": "ECO_TEST_MISSING_KEY"}],
            "judge": CONTAINS,
        }
    )
    with pytest.raises(ConfigError, match="ECO_TEST_MISSING_KEY"):
        config.build()


# -- the CLI's --judge syntax -------------------------------------------------------------------


def test_parse_judge_spec_contains() -> None:
    """`contains:TEXT` builds a ContainsJudge for TEXT."""
    judge = parse_judge_spec("contains:Paris").build()
    assert isinstance(judge, ContainsJudge)
    assert judge.text == "Paris"


def test_parse_judge_spec_regex() -> None:
    """`regex:PATTERN` builds a RegexJudge for PATTERN."""
    judge = parse_judge_spec("regex:^4$").build()
    assert isinstance(judge, RegexJudge)
    assert judge.pattern == "^4$"


def test_parse_judge_spec_llm_passes_the_api_base_through() -> None:
    """`llm:MODEL` builds an LLMJudge on MODEL at the given api_base."""
    judge = parse_judge_spec("llm:openai/judge", api_base=API_BASE).build()
    assert isinstance(judge, LLMJudge)
    assert judge.tier.model == "openai/judge"
    assert judge.tier.api_base == API_BASE


@pytest.mark.parametrize(("spec", "expected"), [("exec", ExecutionJudge), ("human", HumanJudge)])
def test_parse_judge_spec_without_argument(spec: str, expected: type) -> None:
    """`exec` and `human` take no argument."""
    assert isinstance(parse_judge_spec(spec).build(), expected)


@pytest.mark.parametrize("spec", ["contains:", "regex:", "llm:", "bogus", "exec:x", "human:y"])
def test_parse_judge_spec_rejects_bad_specs_naming_the_flag(spec: str) -> None:
    """A malformed --judge value is a ConfigError that names the flag."""
    with pytest.raises(ConfigError, match="--judge"):
        parse_judge_spec(spec)


# -- Tier, Price and RetryPolicy ----------------------------------------------------------------


@pytest.mark.parametrize("key", ["model", "messages", "api_base", "api_key", "timeout", "stream"])
def test_tier_refuses_params_it_sets_itself(key: str) -> None:
    """Params that the tier controls cannot be smuggled in through params."""
    with pytest.raises(ConfigError, match=key):
        Tier("openai/small", params={key: "x"})


@pytest.mark.parametrize("timeout_s", [0, -1.5, float("nan"), float("inf")])
def test_tier_refuses_a_non_positive_timeout(timeout_s: float) -> None:
    """A tier's timeout must be a finite number greater than zero."""
    with pytest.raises(ConfigError, match="timeout_s"):
        Tier("openai/small", timeout_s=timeout_s)


def test_tier_refuses_an_empty_model() -> None:
    """A tier needs a model string."""
    with pytest.raises(ConfigError, match="model"):
        Tier("  ")


@pytest.mark.parametrize(
    ("inp", "out"), [(-0.1, 1.0), (1.0, -1.0), (float("inf"), 1.0), (float("nan"), 1.0)]
)
def test_price_refuses_negative_or_non_finite_values(inp: float, out: float) -> None:
    """Prices must be finite and not negative."""
    with pytest.raises(ConfigError):
        Price(inp, out)


def test_price_cost_is_per_million_tokens() -> None:
    """Cost is input and output tokens at their per-million rates."""
    assert Price(1.0, 2.0).cost(1_000_000, 500_000) == pytest.approx(2.0)


def test_retry_delay_backs_off_exponentially_up_to_the_cap() -> None:
    """Without Retry-After, delays double from base_delay_s and stop at max_delay_s."""
    policy = RetryPolicy(max_retries=5, base_delay_s=0.5, max_delay_s=3.0)
    assert [policy.delay(n, None) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_retry_delay_honours_a_retry_after_within_the_cap() -> None:
    """A provider's Retry-After up to max_delay_s is waited exactly."""
    policy = RetryPolicy(max_retries=2, base_delay_s=0.5, max_delay_s=10.0)
    assert policy.delay(1, 7.0) == 7.0
    assert policy.delay(2, 10.0) == 10.0


def test_retry_delay_stops_for_a_too_long_retry_after() -> None:
    """A Retry-After beyond max_delay_s ends retrying, so the cascade escalates instead."""
    assert RetryPolicy(max_delay_s=10.0).delay(1, 10.5) is None


def test_retry_delay_stops_beyond_max_retries() -> None:
    """No delay is offered past max_retries, with or without Retry-After."""
    policy = RetryPolicy(max_retries=2)
    assert policy.delay(3, None) is None
    assert policy.delay(3, 0.1) is None
    assert RetryPolicy(max_retries=0).delay(1, None) is None


def test_retry_policy_refuses_negative_settings() -> None:
    """Negative retry counts or delays are config errors."""
    with pytest.raises(ConfigError):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ConfigError):
        RetryPolicy(base_delay_s=-0.1)
