""":class:`~ecocascade.gateway.state.GatewayState` on Redis: several replicas behave as one.

Key layout under ``prefix`` (``ecocascade:gw`` by default)::

    {prefix}:sticky:{conversation}   string  the tier that answered the previous turn, PX = TTL
    {prefix}:flight:{key}            string  the single-flight lock: the leader's token, PX
    {prefix}:fb:{request_id}         string  the feedback target as JSON, PX = TTL

**Single-flight across replicas.** Identical concurrent requests on one replica share one run
in-process (:class:`~ecocascade.gateway.state.InProcessState`). Across replicas the first takes
the lock (``SET NX PX``) and renews it while its work runs; the others wait (polling, bounded by
``wait_s``) until the lock is gone, then take it and run their own work — which finds the leader's
verified answer in the shared cache, so the hand-off costs one cache hit. A leader killed mid-run
stops renewing: its lock expires after ``lock_s`` and a waiter takes over. A waiter that has
waited ``wait_s`` runs its work without the lock rather than fail the request. Redis being down
never fails a request: every operation degrades to "unknown" (no sticky tier, no lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from ecocascade.gateway._redis import RedisConnection, Script, part
from ecocascade.gateway.state import FeedbackTarget, InProcessState

__all__ = ["RedisState"]

log = structlog.get_logger(__name__)

T = TypeVar("T")

# Delete / extend KEYS[1] only while it still holds our token ARGV[1].
_RELEASE = Script(
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)
_RENEW = Script(
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
)


class RedisState:
    """Sticky tiers, single-flight and the feedback map in Redis at ``url``.

    ``lock_s``: how long a leader's lock outlives its last renewal (a dead leader's waiters take
    over after at most this long); ``wait_s``: the longest a waiter waits for a leader.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "ecocascade:gw",
        lock_s: float = 5.0,
        wait_s: float = 60.0,
        socket_timeout_s: float = 2.0,
    ) -> None:
        self.connection = RedisConnection(url, prefix=prefix, socket_timeout_s=socket_timeout_s)
        self.prefix = prefix
        self.lock_s = lock_s
        self.wait_s = wait_s
        self._local = InProcessState()

    def __repr__(self) -> str:
        return f"RedisState({self.connection.location!r}, prefix={self.prefix!r})"

    # -- sticky tiers --------------------------------------------------------------------------

    async def get_sticky(self, conversation: str) -> int | None:
        client = await self.connection.client()
        raw = await client.get(f"{self.prefix}:sticky:{part(conversation)}")
        return None if raw is None else int(raw)

    async def set_sticky(self, conversation: str, tier: int, ttl_s: float) -> None:
        client = await self.connection.client()
        key = f"{self.prefix}:sticky:{part(conversation)}"
        await client.set(key, int(tier), px=max(1, round(ttl_s * 1000)))

    # -- single-flight -------------------------------------------------------------------------

    async def single_flight(self, key: str, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """In-process sharing first; across replicas, the Redis lock (see the module doc)."""
        return await self._local.single_flight(key, lambda: self._across_replicas(key, work))

    async def _across_replicas(self, key: str, work: Callable[[], Awaitable[T]]) -> T:
        lock = f"{self.prefix}:flight:{part(key)}"
        token = uuid.uuid4().hex
        lock_ms = max(1, round(self.lock_s * 1000))
        deadline = time.monotonic() + self.wait_s
        delay = 0.005
        waited = False
        while True:
            try:
                client = await self.connection.client()
                acquired = bool(await client.set(lock, token, nx=True, px=lock_ms))
            except Exception as error:
                if not _is_redis_error(error):
                    raise
                log.warning("gateway.state_unavailable", during="single_flight", error=repr(error))
                return await work()
            if acquired:
                if waited:
                    log.info("gateway.flight_took_over", key=key)
                return await self._lead(lock, token, lock_ms, work)
            waited = True
            if time.monotonic() >= deadline:
                log.warning("gateway.flight_wait_exceeded", key=key, wait_s=self.wait_s)
                return await work()
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.1)

    async def _lead(
        self, lock: str, token: str, lock_ms: int, work: Callable[[], Awaitable[T]]
    ) -> T:
        renewer = asyncio.ensure_future(self._renew(lock, token, lock_ms))
        try:
            return await work()
        finally:
            renewer.cancel()
            with contextlib.suppress(BaseException):
                await renewer
            try:
                redis_client = await self.connection.client()
                await _RELEASE(redis_client, [lock], [token])
            except Exception as error:  # it expires on its own
                if not _is_redis_error(error):
                    raise
                log.warning("gateway.state_unavailable", during="release", error=repr(error))

    async def _renew(self, lock: str, token: str, lock_ms: int) -> None:
        while True:
            await asyncio.sleep(lock_ms / 3000)
            try:
                client = await self.connection.client()
                if not await _RENEW(client, [lock], [token, lock_ms]):
                    return  # lost it (expired while Redis was unreachable): stop renewing
            except Exception as error:
                if not _is_redis_error(error):
                    raise
                log.warning("gateway.state_unavailable", during="renew", error=repr(error))

    # -- the feedback map ----------------------------------------------------------------------

    async def remember(self, request_id: str, target: FeedbackTarget, ttl_s: float) -> None:
        client = await self.connection.client()
        await client.set(
            f"{self.prefix}:fb:{part(request_id)}",
            json.dumps(dataclasses.asdict(target), separators=(",", ":")),
            px=max(1, round(ttl_s * 1000)),
        )

    async def recall(self, request_id: str) -> FeedbackTarget | None:
        client = await self.connection.client()
        raw = await client.get(f"{self.prefix}:fb:{part(request_id)}")
        if raw is None:
            return None
        return FeedbackTarget(**json.loads(raw))

    async def forget(self, request_id: str) -> None:
        client = await self.connection.client()
        await client.delete(f"{self.prefix}:fb:{part(request_id)}")

    async def close(self) -> None:
        await self._local.close()
        await self.connection.close()


def _is_redis_error(error: BaseException) -> bool:
    from redis.exceptions import RedisError

    return isinstance(error, (RedisError, ConnectionError, TimeoutError, OSError))
