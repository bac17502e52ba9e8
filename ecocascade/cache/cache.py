"""The response cache: a repeated question costs nothing; a different one never gets another's.

- **Exact**: key = hash(cascade fingerprint, namespace, normalised query). The fingerprint covers
  everything that can change the answer (ladder, params, judge, demonstration settings, system
  prompt), so changing any of them misses instead of serving a stale answer.
- **Semantic** (opt-in per namespace): a query whose embedding has cosine similarity ≥
  ``semantic_threshold`` with a cached query of the same namespace and fingerprint reuses its
  answer — only if both agree on numbers, named entities and negation, and never for
  time-sensitive queries (see :mod:`ecocascade.cache.guards`).
- Only accepted answers are stored, each with a TTL: ``ttl_s`` (7 days), per namespace
  ``namespace_ttl_s``, and at most ``time_sensitive_ttl_s`` (1 hour) for time-sensitive queries.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import structlog

from ecocascade.cache.base import CacheBackend, CacheEntry, CacheHit, CacheStats
from ecocascade.cache.guards import guard_mismatch, is_time_sensitive
from ecocascade.exceptions import ConfigError
from ecocascade.text import MAX_STORED_QUERY_CHARS, mask_secrets, mask_secrets_in, normalise_query
from ecocascade.types import Embedder

__all__ = ["ResponseCache", "open_backend"]

log = structlog.get_logger(__name__)

DAY = 86_400.0


def open_backend(location: str | Path) -> CacheBackend:
    """``redis://…``/``rediss://…`` → Redis; anything else is a SQLite file path."""
    text = str(location)
    if text.startswith(("redis://", "rediss://", "unix://")):
        from ecocascade.cache.redis_backend import RedisBackend

        backend: CacheBackend = RedisBackend(text)
        return backend
    if "://" in text:
        raise ConfigError(
            f"expected a SQLite file path or redis://host:port/db, got {text!r}", where="cache"
        )
    from ecocascade.cache.sqlite_backend import SQLiteBackend

    return SQLiteBackend(text)


class ResponseCache:
    def __init__(
        self,
        backend: CacheBackend | str | Path,
        *,
        ttl_s: float = 7 * DAY,
        namespace_ttl_s: Mapping[str, float] | None = None,
        time_sensitive_ttl_s: float = 3600.0,
        semantic_namespaces: Collection[str] = (),
        semantic_threshold: float = 0.9,
        embedder: Embedder | None = None,
        max_query_chars: int = MAX_STORED_QUERY_CHARS,
    ) -> None:
        if not isinstance(max_query_chars, int) or max_query_chars < 1:
            raise ConfigError(
                f"must be an integer >= 1, got {max_query_chars!r}", where="cache.max_query_chars"
            )
        for name, value in (("ttl_s", ttl_s), ("time_sensitive_ttl_s", time_sensitive_ttl_s)):
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(
                    f"must be a finite number > 0, got {value}", where=f"cache.{name}"
                )
        if not -1.0 <= semantic_threshold <= 1.0:
            raise ConfigError(
                f"a cosine similarity is in [-1, 1], got {semantic_threshold}",
                where="cache.semantic_threshold",
            )
        self.backend = backend if isinstance(backend, CacheBackend) else open_backend(backend)
        self.ttl_s = ttl_s
        self.namespace_ttl_s = dict(namespace_ttl_s or {})
        self.time_sensitive_ttl_s = time_sensitive_ttl_s
        self.semantic_namespaces = frozenset(semantic_namespaces)
        self.semantic_threshold = semantic_threshold
        self.max_query_chars = max_query_chars
        self._embedder = embedder

    @property
    def location(self) -> str:
        """Where the entries live (a SQLite path or a Redis URL)."""
        return self.backend.location

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from ecocascade.store.embedders import default_embedder

            self._embedder = default_embedder()
        return self._embedder

    def semantic(self, namespace: str) -> bool:
        return namespace in self.semantic_namespaces or "*" in self.semantic_namespaces

    @staticmethod
    def key(query: str, namespace: str, fingerprint: str) -> str:
        raw = f"{fingerprint}\0{namespace}\0{normalise_query(query)}"
        return hashlib.sha256(raw.encode()).hexdigest()[:40]

    async def lookup(
        self,
        query: str,
        *,
        namespace: str,
        fingerprint: str,
        time_sensitive: bool | None = None,
        semantic: bool = True,
    ) -> tuple[CacheHit | None, str | None]:
        """A hit, or ``None`` with the reason a semantic candidate was refused (if one was).
        ``semantic=False`` looks for an exact hit only (a follow-up turn of a conversation)."""
        now = time.time()
        hit = await self.get(self.key(query, namespace, fingerprint))
        if hit is not None:
            return hit, None
        if not (semantic and self.semantic(namespace)):
            return None, None
        if time_sensitive if time_sensitive is not None else is_time_sensitive(query):
            return None, "time-sensitive query: no semantic reuse"
        candidates = await self.backend.candidates(namespace, fingerprint)
        if not candidates:
            return None, None
        import numpy as np

        (vector,) = await self.embedder.embed([query])
        matrix = np.stack([np.asarray(c.vector, dtype=np.float32) for c in candidates])
        similarities = matrix @ np.asarray(vector, dtype=np.float32)  # vectors are unit length
        scored = sorted(zip(similarities.tolist(), candidates, strict=True), key=lambda p: -p[0])
        refused: str | None = None
        for similarity, candidate in scored:
            if similarity < self.semantic_threshold:
                break
            mismatch = guard_mismatch(query, candidate.query)
            if mismatch is None:
                await self.backend.record_hit(candidate.key)
                return self._hit("semantic", candidate, similarity, now), None
            refused = refused or f"similar ({similarity:.3f}) but {mismatch}"
        return None, refused

    async def store(
        self,
        query: str,
        *,
        namespace: str,
        fingerprint: str,
        answer: str,
        model: str | None,
        tier: int | None,
        time_sensitive: bool | None = None,
        semantic: bool = True,
        reply: Mapping[str, Any] | None = None,
    ) -> CacheEntry | None:
        """Cache an accepted answer (``reply``: its message, usage and upstream model).
        ``semantic=False`` stores no embedding: the entry serves exact lookups only. The query
        and answer are kept with secrets masked (:func:`~ecocascade.text.mask_secrets`); the key
        is made from the query as given, so the same query still hits. A query longer than
        ``max_query_chars`` is not cached (``None``, with a ``cache.query_too_large`` warning)."""
        if len(query) > self.max_query_chars:
            log.warning("cache.query_too_large", chars=len(query), max_chars=self.max_query_chars)
            return None
        vector = None
        if semantic and self.semantic(namespace):
            (vector,) = await self.embedder.embed([mask_secrets(query)])
        return await self.put(
            self.key(query, namespace, fingerprint),
            query=query,
            namespace=namespace,
            fingerprint=fingerprint,
            answer=answer,
            model=model,
            tier=tier,
            time_sensitive=time_sensitive,
            vector=vector,
            reply=reply,
        )

    async def get(self, key: str) -> CacheHit | None:
        """The live entry stored under exactly ``key`` (see :meth:`key`) as an exact hit, counted
        as a hit; ``None`` when there is none."""
        entry = await self.backend.get(key)
        if entry is None:
            return None
        await self.backend.record_hit(key)
        return self._hit("exact", entry, 1.0, time.time())

    async def put(
        self,
        key: str,
        *,
        query: str,
        namespace: str,
        fingerprint: str,
        answer: str,
        model: str | None = None,
        tier: int | None = None,
        time_sensitive: bool | None = None,
        vector: Sequence[float] | None = None,
        reply: Mapping[str, Any] | None = None,
    ) -> CacheEntry | None:
        """Store an accepted answer under exactly ``key``, with the namespace's TTL (at most
        ``time_sensitive_ttl_s`` for a time-sensitive query); secrets masked, and nothing stored
        (``None``) for a query longer than ``max_query_chars``."""
        if len(query) > self.max_query_chars:
            log.warning("cache.query_too_large", chars=len(query), max_chars=self.max_query_chars)
            return None
        ttl = self.namespace_ttl_s.get(namespace, self.ttl_s)
        query, answer = mask_secrets(query), mask_secrets(answer)
        if reply is not None:
            reply = mask_secrets_in(reply)
        if time_sensitive if time_sensitive is not None else is_time_sensitive(query):
            ttl = min(ttl, self.time_sensitive_ttl_s)
        now = time.time()
        entry = CacheEntry(
            key=key,
            namespace=namespace,
            fingerprint=fingerprint,
            query=query,
            answer=answer,
            model=model,
            tier=tier,
            created_at=now,
            expires_at=now + ttl,
            vector=vector,
            reply=reply,
        )
        await self.backend.put(entry)
        return entry

    async def invalidate(
        self, query: str | None = None, *, namespace: str | None = None, fingerprint: str = ""
    ) -> int:
        """Drop one query's entry (under ``fingerprint``), a namespace's entries, or all."""
        if query is not None:
            if namespace is None:
                raise ConfigError("invalidating a query needs its namespace", where="cache")
            return await self.backend.delete(key=self.key(query, namespace, fingerprint))
        return await self.backend.delete(namespace=namespace)

    async def purge_expired(self) -> int:
        return await self.backend.purge_expired()

    async def stats(self) -> CacheStats:
        return await self.backend.stats()

    async def close(self) -> None:
        await self.backend.close()

    @staticmethod
    def _hit(kind: Literal["exact", "semantic"], e: CacheEntry, sim: float, now: float) -> CacheHit:
        return CacheHit(
            kind=kind,
            key=e.key,
            answer=e.answer,
            model=e.model,
            tier=e.tier,
            cached_query=e.query,
            similarity=round(sim, 6),
            age_s=round(max(0.0, now - e.created_at), 3),
            reply=e.reply,
        )
