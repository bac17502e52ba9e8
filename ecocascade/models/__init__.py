"""Tiers and the LiteLLM call path: retries, typed errors, prices."""

from ecocascade.models.client import Completion, TierClient
from ecocascade.models.tier import Price, RetryPolicy, Tier

__all__ = ["Completion", "Price", "RetryPolicy", "Tier", "TierClient"]
