"""What a call cost: the tier's price override, else LiteLLM's bundled price table, else unknown."""

from __future__ import annotations

from functools import cache

from ecocascade._env import import_litellm
from ecocascade.models.tier import Price, Tier

__all__ = ["call_cost", "known_price"]


_FREE = Price(input_per_mtok=0.0, output_per_mtok=0.0)


@cache
def _table_price(model: str) -> Price | None:
    litellm = import_litellm()
    try:
        info = litellm.get_model_info(model)
    except Exception:  # LiteLLM raises several types for "not in the table"; all mean unknown.
        return None
    inp, out = info.get("input_cost_per_token"), info.get("output_cost_per_token")
    if inp is None or out is None:
        return None
    cached = info.get("cache_read_input_token_cost")  # the provider's prompt-cache price
    return Price(
        input_per_mtok=float(inp) * 1e6,
        output_per_mtok=float(out) * 1e6,
        cached_input_per_mtok=None if cached is None else float(cached) * 1e6,
    )


def known_price(tier: Tier) -> Price | None:
    """The tier's price per million tokens, or ``None`` when nobody knows it."""
    if tier.price is not None:
        return tier.price
    if tier.is_local:
        return _FREE
    return _table_price(tier.model)


def call_cost(
    tier: Tier, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0
) -> float | None:
    """USD for one call, or ``None`` (unknown — never silently 0). Cached input tokens (part of
    ``input_tokens``) are billed at the cached-input price where one is known."""
    price = known_price(tier)
    return None if price is None else price.cost(input_tokens, output_tokens, cached_input_tokens)
