"""The response cache on a plain ``redis-server`` (no modules): Redis expiry does the TTLs.

Key layout under ``prefix`` (``ecocascade:cache`` by default)::

    {prefix}:e:{key}                     string  the entry as JSON, PX = time left until expires_at
    {prefix}:v:{namespace}:{fingerprint} hash    key → vector (float32 little-endian), entries
                                                 with a vector only; TTL = its longest entry's
    {prefix}:ns:{namespace}              set     the namespace's keys; TTL = its longest entry's
    {prefix}:hits                        string  hits recorded (INCR)

``:`` and ``%`` in namespaces and fingerprints are percent-encoded inside key names, so one
namespace's pattern never matches another's. Set members and hash fields whose entry Redis has
expired are dropped lazily by :meth:`RedisBackend.candidates` and by
:meth:`RedisBackend.purge_expired`.

Every method raises the client's errors (``redis.exceptions.RedisError`` and subclasses) as they
are; there are no retries and socket operations time out after ``socket_timeout_s``, so an
unreachable Redis fails a call within about that long.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import re
import time
import weakref
from collections.abc import AsyncGenerator, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar, cast
from urllib.parse import unquote, urlsplit, urlunsplit

import numpy as np
from numpy.typing import NDArray

from ecocascade.cache.base import CacheEntry, CacheStats
from ecocascade.exceptions import ConfigError

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisBackend"]

_T = TypeVar("_T")

_CHUNK = 500  # keys per MGET / UNLINK / EXISTS / script call
_SCHEMES = ("redis", "rediss", "unix")

# Extend KEYS[1]'s TTL to ARGV[1] ms unless it already lives longer (works before Redis 7's GT).
_EXTEND_TTL = """
local want = tonumber(ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -1 or (ttl >= 0 and ttl < want) then
  redis.call('PEXPIRE', KEYS[1], want)
end
return 1
"""

# Remove the members ARGV[2..] of the set or hash KEYS[1] whose entry key ARGV[1]..member no
# longer exists, atomically (a concurrent put of the same key cannot be undone); returns them.
_DROP_GONE = """
local kind = redis.call('TYPE', KEYS[1])['ok']
local gone = {}
for i = 2, #ARGV do
  if redis.call('EXISTS', ARGV[1] .. ARGV[i]) == 0 then
    local removed
    if kind == 'set' then
      removed = redis.call('SREM', KEYS[1], ARGV[i])
    else
      removed = redis.call('HDEL', KEYS[1], ARGV[i])
    end
    if removed == 1 then gone[#gone + 1] = ARGV[i] end
  end
end
return gone
"""


@dataclass(slots=True)
class _Bound:
    """A client and the event loop its connections belong to."""

    loop: weakref.ref[asyncio.AbstractEventLoop]
    client: Redis
    guard: AsyncGenerator[None, None]  # closes ``client`` when the loop shuts down


class RedisBackend:
    """Cache entries in Redis at ``url`` (``redis://``, ``rediss://`` or ``unix://``).

    Each event loop gets its own client (``asyncio.run`` per call is fine): a client is closed
    when its loop shuts down its async generators (``asyncio.run`` and ``asyncio.Runner`` do),
    or by :meth:`close`. Keys live under ``prefix``; ``delete()`` never touches other keys.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "ecocascade:cache",
        socket_timeout_s: float = 0.5,
    ) -> None:
        if urlsplit(url).scheme not in _SCHEMES:
            raise ConfigError(
                f"expected a redis://, rediss:// or unix:// URL, got {_mask(url)!r}",
                where="cache",
            )
        if not prefix:
            raise ConfigError("must be a non-empty string", where="cache.prefix")
        if not (math.isfinite(socket_timeout_s) and socket_timeout_s > 0):
            raise ConfigError(
                f"must be a finite number > 0, got {socket_timeout_s}",
                where="cache.socket_timeout_s",
            )
        try:
            import redis.asyncio  # noqa: F401  (fail here, not at the first lookup)
        except ImportError as error:
            raise ConfigError(
                "the Redis cache backend needs the redis package: pip install redis",
                where="cache",
            ) from error
        self.url = url
        self.prefix = prefix
        self.socket_timeout_s = socket_timeout_s
        self._entry_prefix = f"{prefix}:e:"
        self._entry_prefix_b = self._entry_prefix.encode()
        self._hits_key = f"{prefix}:hits"
        self._clients: dict[int, _Bound] = {}

    def __repr__(self) -> str:
        return f"RedisBackend({self.location!r}, prefix={self.prefix!r})"

    @property
    def location(self) -> str:
        """The URL, password masked."""
        return _mask(self.url)

    # -- keys ----------------------------------------------------------------------------------

    def _entry_key(self, key: str) -> str:
        return self._entry_prefix + key

    def _vector_key(self, namespace: str, fingerprint: str) -> str:
        return f"{self.prefix}:v:{_part(namespace)}:{_part(fingerprint)}"

    def _namespace_key(self, namespace: str) -> str:
        return f"{self.prefix}:ns:{_part(namespace)}"

    # -- connection ----------------------------------------------------------------------------

    async def _client(self) -> Redis:
        """This event loop's client, created on first use in the loop."""
        loop = asyncio.get_running_loop()
        bound = self._clients.get(id(loop))
        if bound is not None and bound.loop() is loop:
            return bound.client
        self._forget_dead_loops()
        import redis.asyncio
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        client = redis.asyncio.Redis.from_url(
            self.url,
            socket_timeout=self.socket_timeout_s,
            socket_connect_timeout=self.socket_timeout_s,
            retry=Retry(NoBackoff(), 0),  # the default retries for seconds; we fail fast
        )
        guard = _close_with_loop(client)
        self._clients[id(loop)] = _Bound(weakref.ref(loop), client, guard)
        await guard.__anext__()  # registers the generator with the loop's shutdown hooks
        return client

    def _forget_dead_loops(self) -> None:
        for loop_id, bound in list(self._clients.items()):
            loop = bound.loop()
            if loop is None or loop.is_closed():
                del self._clients[loop_id]

    async def close(self) -> None:
        """Close this event loop's client and forget those of closed loops."""
        bound = self._clients.pop(id(asyncio.get_running_loop()), None)
        if bound is not None:
            await bound.guard.aclose()
        self._forget_dead_loops()

    # -- entries -------------------------------------------------------------------------------

    async def get(self, key: str) -> CacheEntry | None:
        """The live entry for ``key``: one GET."""
        client = await self._client()
        raw = await client.get(self._entry_key(key))
        if raw is None:
            return None
        entry = _decode(raw)
        return None if entry.expired() else entry

    async def put(self, entry: CacheEntry) -> None:
        """Insert or replace ``entry`` in one transaction; an already expired entry is deleted."""
        ttl_ms = math.ceil((entry.expires_at - time.time()) * 1000)
        if ttl_ms <= 0:
            await self.delete(key=entry.key)
            return
        client = await self._client()
        namespace_key = self._namespace_key(entry.namespace)
        vector_key = self._vector_key(entry.namespace, entry.fingerprint)
        async with client.pipeline(transaction=True) as pipe:
            pipe.set(self._entry_key(entry.key), _encode(entry), px=ttl_ms)
            pipe.sadd(namespace_key, entry.key)
            pipe.eval(_EXTEND_TTL, 1, namespace_key, ttl_ms)
            if entry.vector is not None:
                pipe.hset(vector_key, entry.key, _pack(entry.vector))
                pipe.eval(_EXTEND_TTL, 1, vector_key, ttl_ms)
            else:
                pipe.hdel(vector_key, entry.key)
            await pipe.execute()

    async def candidates(self, namespace: str, fingerprint: str) -> list[CacheEntry]:
        """Live entries of ``namespace`` and ``fingerprint`` with a vector: HGETALL + MGET."""
        client = await self._client()
        vector_key = self._vector_key(namespace, fingerprint)
        vectors = cast(dict[bytes, bytes], await client.hgetall(vector_key))
        if not vectors:
            return []
        found: list[CacheEntry] = []
        gone: list[bytes] = []
        now = time.time()
        for chunk in _chunks(list(vectors)):
            raws = await client.mget([self._entry_prefix_b + field for field in chunk])
            for field, raw in zip(chunk, raws, strict=True):
                if raw is None:
                    gone.append(field)
                    continue
                entry = _decode(raw, vector=_unpack(vectors[field]))
                if (
                    not entry.expired(now)
                    and entry.namespace == namespace
                    and entry.fingerprint == fingerprint
                ):
                    found.append(entry)
        for chunk in _chunks(gone):
            await client.eval(_DROP_GONE, 1, vector_key, self._entry_prefix, *chunk)
        return found

    async def record_hit(self, key: str) -> None:
        """Count one hit (the counter is backend-wide; ``key`` is not stored)."""
        client = await self._client()
        await client.incr(self._hits_key)

    async def delete(self, *, key: str | None = None, namespace: str | None = None) -> int:
        """Delete one entry (only if in ``namespace``, when both are given), a namespace's
        entries, or every key under the prefix; returns the number of entries removed."""
        client = await self._client()
        if key is not None:
            return await self._delete_key(client, key, namespace)
        if namespace is not None:
            return await self._delete_namespace(client, namespace)
        removed = 0
        batch: list[bytes] = []
        async for name in client.scan_iter(match=f"{_glob(self.prefix)}:*", count=1000):
            batch.append(name)
            if len(batch) >= _CHUNK:
                removed += await self._unlink(client, batch)
                batch = []
        if batch:
            removed += await self._unlink(client, batch)
        return removed

    async def _delete_key(self, client: Redis, key: str, namespace: str | None) -> int:
        raw = await client.get(self._entry_key(key))
        if raw is None:
            return 0
        entry = _decode(raw)
        if namespace is not None and entry.namespace != namespace:
            return 0
        async with client.pipeline(transaction=True) as pipe:
            pipe.unlink(self._entry_key(key))
            pipe.srem(self._namespace_key(entry.namespace), key)
            pipe.hdel(self._vector_key(entry.namespace, entry.fingerprint), key)
            unlinked, _, _ = await pipe.execute()
        return int(unlinked)

    async def _delete_namespace(self, client: Redis, namespace: str) -> int:
        namespace_key = self._namespace_key(namespace)
        members = cast(set[bytes], await client.smembers(namespace_key))
        removed = 0
        for chunk in _chunks(list(members)):
            removed += await client.unlink(*[self._entry_prefix_b + m for m in chunk])
        pattern = f"{_glob(self.prefix)}:v:{_glob(_part(namespace))}:*"
        vector_keys = [name async for name in client.scan_iter(match=pattern, count=1000)]
        for chunk in _chunks([*vector_keys, namespace_key.encode()]):
            await client.unlink(*chunk)
        return removed

    async def _unlink(self, client: Redis, names: list[bytes]) -> int:
        """UNLINK ``names``; the number of entries among them that existed."""
        entries = [n for n in names if n.startswith(self._entry_prefix_b)]
        others = [n for n in names if not n.startswith(self._entry_prefix_b)]
        removed = int(await client.unlink(*entries)) if entries else 0
        if others:
            await client.unlink(*others)
        return removed

    # -- maintenance ---------------------------------------------------------------------------

    async def purge_expired(self) -> int:
        """Drop set members and vector fields whose entry Redis has expired; the number of
        distinct entries they belonged to."""
        client = await self._client()
        gone: set[bytes] = set()
        async for name in client.scan_iter(match=f"{_glob(self.prefix)}:ns:*", count=1000):
            members = cast(set[bytes], await client.smembers(name))
            gone.update(await self._drop_gone(client, name, members))
        async for name in client.scan_iter(match=f"{_glob(self.prefix)}:v:*", count=1000):
            fields = cast(list[bytes], await client.hkeys(name))
            gone.update(await self._drop_gone(client, name, fields))
        return len(gone)

    async def _drop_gone(self, client: Redis, name: bytes, members: Iterable[bytes]) -> set[bytes]:
        gone: set[bytes] = set()
        for chunk in _chunks(list(members)):
            gone.update(await client.eval(_DROP_GONE, 1, name, self._entry_prefix, *chunk))
        return gone

    async def stats(self) -> CacheStats:
        """Live entries per namespace (``expired`` is always 0: Redis removes them itself)."""
        client = await self._client()
        namespaces: dict[str, int] = {}
        marker = f"{self.prefix}:ns:".encode()
        async for name in client.scan_iter(match=f"{_glob(self.prefix)}:ns:*", count=1000):
            members = cast(set[bytes], await client.smembers(name))
            live = 0
            for chunk in _chunks(list(members)):
                live += int(await client.exists(*[self._entry_prefix_b + m for m in chunk]))
            if live:
                namespaces[unquote(name[len(marker) :].decode())] = live
        hits = await client.get(self._hits_key)
        return CacheStats(
            entries=sum(namespaces.values()),
            expired=0,
            namespaces=dict(sorted(namespaces.items())),
            hits=int(hits or 0),
        )


async def _close_with_loop(client: Redis) -> AsyncGenerator[None, None]:
    """Suspended in its loop until the loop shuts down async generators (or ``aclose()``)."""
    try:
        yield
    finally:
        await client.aclose()


def _encode(entry: CacheEntry) -> bytes:
    data = {
        "key": entry.key,
        "namespace": entry.namespace,
        "fingerprint": entry.fingerprint,
        "query": entry.query,
        "answer": entry.answer,
        "model": entry.model,
        "tier": entry.tier,
        "expires_at": entry.expires_at,
        "created_at": entry.created_at,
        "vector": None
        if entry.vector is None
        else base64.b64encode(_pack(entry.vector)).decode("ascii"),
        "reply": None if entry.reply is None else dict(entry.reply),
    }
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def _decode(raw: bytes | str, *, vector: NDArray[np.float32] | None = None) -> CacheEntry:
    """The entry stored as ``raw``; ``vector`` (when given) replaces the stored one."""
    data = json.loads(raw)
    if vector is None and data["vector"] is not None:
        vector = _unpack(base64.b64decode(data["vector"]))
    return CacheEntry(
        key=data["key"],
        namespace=data["namespace"],
        fingerprint=data["fingerprint"],
        query=data["query"],
        answer=data["answer"],
        model=data["model"],
        tier=data["tier"],
        expires_at=data["expires_at"],
        created_at=data["created_at"],
        vector=vector,
        reply=data.get("reply"),
    )


def _pack(vector: Sequence[float] | NDArray[np.float32]) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def _unpack(data: bytes) -> NDArray[np.float32]:
    # Zero-copy little-endian float32 view: ~10x cheaper than Python floats for a semantic scan.
    return np.frombuffer(data, dtype="<f4")


def _part(text: str) -> str:
    """``text`` safe to place between ``:`` separators in a key name."""
    return text.replace("%", "%25").replace(":", "%3A")


def _glob(text: str) -> str:
    """``text`` matched literally in a SCAN MATCH pattern."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def _chunks(items: list[_T]) -> Iterable[list[_T]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _mask(url: str) -> str:
    """``url`` with its password (in the userinfo or a ``password=`` parameter) replaced."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}:***@{host}"
    query = re.sub(r"(?i)(^|&)(password=)[^&]*", r"\1\2***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
