"""The response cache's contract: entries, hits, and the backend protocol of both backends."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["CacheBackend", "CacheEntry", "CacheHit", "CacheStats"]


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One accepted answer, stored under ``key`` until ``expires_at`` (epoch seconds).

    ``key`` is derived from the normalised query, the namespace and the cascade's fingerprint;
    ``vector`` (the query's embedding) is present only for namespaces with semantic caching;
    backends may return it as a float32 numpy array (no per-float Python objects on the hot path).
    """

    key: str
    namespace: str
    fingerprint: str
    query: str
    answer: str
    model: str | None
    tier: int | None
    expires_at: float
    created_at: float = field(default_factory=time.time)
    vector: Sequence[float] | NDArray[np.float32] | None = None
    reply: Mapping[str, Any] | None = None
    """JSON-able details of the reply beside ``answer``: ``message`` (the OpenAI assistant message,
    tool calls included), ``usage`` (``[input, output]`` tokens) and ``upstream_model``."""

    def expired(self, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) >= self.expires_at


@dataclass(frozen=True, slots=True)
class CacheHit:
    """A cached accepted answer served instead of running the ladder."""

    kind: Literal["exact", "semantic"]
    key: str
    answer: str
    model: str | None
    tier: int | None
    cached_query: str
    similarity: float
    age_s: float
    reply: Mapping[str, Any] | None = None
    """The cached entry's reply details (see :attr:`CacheEntry.reply`), if it has them."""


@dataclass(frozen=True, slots=True)
class CacheStats:
    entries: int
    expired: int
    namespaces: dict[str, int]
    hits: int


@runtime_checkable
class CacheBackend(Protocol):
    """Where cache entries live. Every method may raise; the cache turns failures into
    warnings and a bypass, never a failed query."""

    @property
    def location(self) -> str: ...

    async def get(self, key: str) -> CacheEntry | None:
        """The live entry for ``key`` (expired entries count as absent)."""
        ...

    async def put(self, entry: CacheEntry) -> None:
        """Insert or replace ``entry`` (it expires at ``entry.expires_at``)."""
        ...

    async def candidates(self, namespace: str, fingerprint: str) -> list[CacheEntry]:
        """Live entries of this namespace and fingerprint that carry a vector (semantic lookup)."""
        ...

    async def record_hit(self, key: str) -> None: ...

    async def delete(self, *, key: str | None = None, namespace: str | None = None) -> int:
        """Delete one entry, a namespace's entries, or (neither given) everything."""
        ...

    async def purge_expired(self) -> int: ...

    async def stats(self) -> CacheStats: ...

    async def close(self) -> None: ...
