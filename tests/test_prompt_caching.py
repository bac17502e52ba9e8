"""Provider prompt caching: cached input tokens read from usage and billed at their lower price."""

from __future__ import annotations

import pytest

from ecocascade import Cascade, ContainsJudge, Price, Tier, TierClient
from ecocascade.config.schema import PriceSpec, TierSpec
from ecocascade.exceptions import ConfigError
from ecocascade.models.pricing import known_price
from ecocascade.testing import FakeLLMServer
from ecocascade.testing.server import Reply

PRICED = Price(input_per_mtok=1.0, output_per_mtok=4.0, cached_input_per_mtok=0.1)


async def test_cached_prompt_tokens_are_counted_and_billed_at_the_cached_price(
    server: FakeLLMServer,
) -> None:
    server.script(
        "paid", Reply("Paris", prompt_tokens=1000, completion_tokens=10, cached_tokens=800)
    )
    client = TierClient(Tier("openai/paid", api_base=server.api_base, price=PRICED))

    completion = await client.complete([{"role": "user", "content": "Capital of France?"}])

    assert completion.usage.cached_input_tokens == 800
    assert completion.cost_usd == pytest.approx((200 * 1.0 + 800 * 0.1 + 10 * 4.0) / 1e6)


async def test_a_provider_that_reports_no_cache_is_billed_in_full(server: FakeLLMServer) -> None:
    server.script("paid", Reply("Paris", prompt_tokens=1000, completion_tokens=10))
    client = TierClient(Tier("openai/paid", api_base=server.api_base, price=PRICED))

    completion = await client.complete([{"role": "user", "content": "Capital of France?"}])

    assert completion.usage.cached_input_tokens == 0
    assert completion.cost_usd == pytest.approx((1000 * 1.0 + 10 * 4.0) / 1e6)


async def test_every_attempt_in_a_result_shows_its_cached_input_tokens(
    server: FakeLLMServer,
) -> None:
    server.script("small", Reply("Lyon", prompt_tokens=50, cached_tokens=0))
    server.script("large", Reply("Paris", prompt_tokens=50, cached_tokens=32))
    tiers = [
        Tier(f"openai/{n}", api_base=server.api_base, price=PRICED) for n in ("small", "large")
    ]

    result = await Cascade(tiers, ContainsJudge("Paris")).run("Capital of France?")

    data = result.to_dict()
    assert [a["cached_input_tokens"] for a in data["attempts"]] == [0, 32]
    assert data["cached_input_tokens"] == 32


def test_litellms_cached_input_price_is_used_and_a_config_can_set_its_own() -> None:
    table = known_price(Tier("openai/gpt-4o-mini"))
    assert table is not None and table.cached_input_per_mtok == pytest.approx(0.075)
    spec = TierSpec(model="openai/x", price=PriceSpec(input_per_mtok=1, output_per_mtok=2,
                                                      cached_input_per_mtok=0.25))  # fmt: skip
    assert spec.to_tier().price == Price(1, 2, 0.25)
    with pytest.raises(ConfigError, match="cached_input_per_mtok"):
        Price(1, 2, -1)


def test_stable_demo_order_gives_the_same_prompt_prefix_whatever_the_similarities() -> None:
    from ecocascade.controller.solvers import ChatSolver
    from ecocascade.types import Demonstration, Task

    a = Demonstration("id-a", "Capital of Spain?", "Madrid", 0.9)
    b = Demonstration("id-b", "Capital of Italy?", "Rome", 0.8)
    first = Task("Capital of France?", "Be brief.", (a, b))
    second = Task("Which city is France's capital?", "Be brief.", (b, a))  # other similarities

    stable, by_similarity = ChatSolver(demo_order="stable"), ChatSolver()

    assert stable.messages(first)[:-1] == stable.messages(second)[:-1]
    assert stable.messages(first)[0] == {"role": "system", "content": "Be brief."}
    assert by_similarity.messages(first)[:-1] != by_similarity.messages(second)[:-1]
    with pytest.raises(ConfigError, match="demo_order"):
        ChatSolver(demo_order="random")  # type: ignore[arg-type]
