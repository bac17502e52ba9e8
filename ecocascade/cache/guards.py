"""Guards against the two ways semantic caches go wrong: near-misses and stale answers.

- **Stale answers**: a time-sensitive query ("today", "latest", "weather", "stock", …) is never
  answered semantically, and its exact entry lives at most ``time_sensitive_ttl_s``.
- **Near-misses** ("weather in Paris" / "weather in London", "from my phone to my laptop" / "from
  my laptop to my phone") are the verifier's job: :mod:`ecocascade.cache.verifier`.
  :func:`guard_mismatch` asks the default verifier and returns its reason.
"""

from __future__ import annotations

import re
from functools import lru_cache

from ecocascade.cache.verifier import AlignmentVerifier

__all__ = ["guard_mismatch", "is_time_sensitive"]

_TIME_SENSITIVE = re.compile(
    r"\b(today|tonight|tomorrow|yesterday|now|currently|current|latest|recent|recently|"
    r"this (?:morning|afternoon|evening|week|weekend|month|quarter|year)|next (?:week|month|year)|"
    r"last (?:night|week|month|year)|right now|at the moment|live|breaking|news|weather|"
    r"forecast|stock|stocks|share price|exchange rate|price of|score|newest|most recent|"
    r"up to date|up-to-date|nowadays|these days|as of|still|anymore|upcoming|trending)\b",
    re.IGNORECASE,
)


def guard_mismatch(query: str, cached_query: str, similarity: float = 1.0) -> str | None:
    """Why ``cached_query``'s answer must not serve ``query`` (by the default verifier, at
    ``similarity``), or ``None`` if it may."""
    return _default_verifier().decide(query, cached_query, similarity).reason


@lru_cache(maxsize=1)
def _default_verifier() -> AlignmentVerifier:
    return AlignmentVerifier.default()


def is_time_sensitive(query: str) -> bool:
    """Heuristic: the answer depends on when the query is asked (today, latest, weather, …)."""
    return _TIME_SENSITIVE.search(query) is not None
