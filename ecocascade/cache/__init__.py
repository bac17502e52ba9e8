"""The response cache: exact and (opt-in) semantic reuse of accepted answers."""

from ecocascade.cache.base import CacheBackend, CacheEntry, CacheHit, CacheStats
from ecocascade.cache.cache import ResponseCache, open_backend
from ecocascade.cache.guards import guard_mismatch, is_time_sensitive

__all__ = [
    "CacheBackend",
    "CacheEntry",
    "CacheHit",
    "CacheStats",
    "ResponseCache",
    "guard_mismatch",
    "is_time_sensitive",
    "open_backend",
]
