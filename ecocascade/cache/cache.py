"""The response cache: a repeated question costs nothing; a different one never gets another's.

- **Exact**: key = hash(cascade fingerprint, namespace, query with only what cannot change its
  meaning normalised: Unicode NFC and whitespace — case and punctuation are kept, "Compute 5!"
  is not "Compute 5"). The fingerprint covers everything that can change the answer (ladder,
  params, judge, demonstration settings, system prompt), so changing any of them misses instead
  of serving a stale answer.
- **Semantic** (opt-in per namespace), two stages: cached queries of the same namespace and
  fingerprint whose embedding has cosine similarity ≥ ``semantic_threshold`` are *candidates*;
  a **verifier** (:mod:`ecocascade.cache.verifier`) then decides whether a candidate's answer
  answers this query. Never for time-sensitive queries (:mod:`ecocascade.cache.guards`).
- Only accepted answers are stored, each with a TTL: ``ttl_s`` (7 days), per namespace
  ``namespace_ttl_s``, and at most ``time_sensitive_ttl_s`` (1 hour) for time-sensitive queries.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Literal

from ecocascade.cache.align import embedding_text
from ecocascade.cache.base import CacheBackend, CacheEntry, CacheHit, CacheStats
from ecocascade.cache.guards import is_time_sensitive
from ecocascade.cache.keys import exact_key_text
from ecocascade.cache.verifier import AlignmentVerifier, PairVerifier
from ecocascade.exceptions import ConfigError
from ecocascade.types import Embedder

__all__ = ["ResponseCache", "open_backend"]

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
        semantic_threshold: float = 0.75,
        embedder: Embedder | None = None,
        verifier: PairVerifier | None = None,
        max_candidates: int = 5,
    ) -> None:
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
        if max_candidates < 1:
            raise ConfigError(f"must be ≥ 1, got {max_candidates}", where="cache.max_candidates")
        self.semantic_threshold = semantic_threshold
        self.max_candidates = max_candidates
        self._embedder = embedder
        self._verifier = verifier

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from ecocascade.store.embedders import default_embedder

            self._embedder = default_embedder()
        return self._embedder

    @property
    def verifier(self) -> PairVerifier:
        if self._verifier is None:
            self._verifier = AlignmentVerifier.default()
        return self._verifier

    def semantic(self, namespace: str) -> bool:
        return namespace in self.semantic_namespaces or "*" in self.semantic_namespaces

    @staticmethod
    def key(query: str, namespace: str, fingerprint: str) -> str:
        raw = f"{fingerprint}\0{namespace}\0{exact_key_text(query)}"
        return hashlib.sha256(raw.encode()).hexdigest()[:40]

    async def lookup(
        self,
        query: str,
        *,
        namespace: str,
        fingerprint: str,
        time_sensitive: bool | None = None,
    ) -> tuple[CacheHit | None, str | None]:
        """A hit, or ``None`` with the reason a semantic candidate was refused (if one was)."""
        now = time.time()
        key = self.key(query, namespace, fingerprint)
        entry = await self.backend.get(key)
        if entry is not None:
            await self.backend.record_hit(key)
            return self._hit("exact", entry, 1.0, now), None
        if not self.semantic(namespace):
            return None, None
        if time_sensitive if time_sensitive is not None else is_time_sensitive(query):
            return None, "time-sensitive query: no semantic reuse"
        candidates = await self.backend.candidates(namespace, fingerprint)
        if not candidates:
            return None, None
        import numpy as np

        (vector,) = await self.embedder.embed([embedding_text(query)])
        matrix = np.stack([np.asarray(c.vector, dtype=np.float32) for c in candidates])
        similarities = matrix @ np.asarray(vector, dtype=np.float32)  # vectors are unit length
        scored = sorted(zip(similarities.tolist(), candidates, strict=True), key=lambda p: -p[0])
        refused: str | None = None
        for similarity, candidate in scored[: self.max_candidates]:
            if similarity < self.semantic_threshold:
                break
            decision = await self.verifier.verify(query, candidate.query, similarity)
            if decision.same:
                await self.backend.record_hit(candidate.key)
                return self._hit("semantic", candidate, similarity, now), None
            refused = refused or f"similar ({similarity:.3f}) but {decision.reason}"
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
    ) -> CacheEntry:
        """Cache an accepted answer."""
        ttl = self.namespace_ttl_s.get(namespace, self.ttl_s)
        if time_sensitive if time_sensitive is not None else is_time_sensitive(query):
            ttl = min(ttl, self.time_sensitive_ttl_s)
        vector = None
        if self.semantic(namespace):
            (vector,) = await self.embedder.embed([embedding_text(query)])
        now = time.time()
        entry = CacheEntry(
            key=self.key(query, namespace, fingerprint),
            namespace=namespace,
            fingerprint=fingerprint,
            query=query,
            answer=answer,
            model=model,
            tier=tier,
            created_at=now,
            expires_at=now + ttl,
            vector=vector,
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
        )
