"""The response cache: exact and (opt-in) semantic reuse of accepted answers."""

from ecocascade.cache.base import CacheBackend, CacheEntry, CacheHit, CacheStats
from ecocascade.cache.cache import ResponseCache, open_backend
from ecocascade.cache.guards import guard_mismatch, is_time_sensitive
from ecocascade.cache.keys import exact_key_text
from ecocascade.cache.verifier import AlignmentVerifier, PairDecision, PairVerifier

__all__ = [
    "AlignmentVerifier",
    "CacheBackend",
    "CacheEntry",
    "CacheHit",
    "CacheStats",
    "PairDecision",
    "PairVerifier",
    "ResponseCache",
    "exact_key_text",
    "guard_mismatch",
    "is_time_sensitive",
    "open_backend",
]
