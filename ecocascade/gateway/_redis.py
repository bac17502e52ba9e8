"""Redis plumbing shared by the gateway's Redis-backed parts: one client per event loop (the
cache's :class:`~ecocascade.cache.redis_backend.RedisBackend` URL checks and loop binding, plus a
bounded pool) and Lua scripts run by SHA with a fallback to EVAL after a Redis restart."""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from typing import TYPE_CHECKING, Any

from ecocascade.cache.redis_backend import RedisBackend, _Bound, _close_with_loop

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisConnection", "Script", "part"]


class RedisConnection:
    """Clients for ``url``: one per event loop, closed with the loop (the cache backend's
    helpers), fail-fast timeouts, and at most ``max_connections`` sockets per loop — a burst of
    requests queues for a connection (``socket_timeout_s`` at most) instead of opening hundreds."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "ecocascade:gw",
        socket_timeout_s: float = 2.0,
        max_connections: int = 32,
    ) -> None:
        # RedisBackend validates the URL and masks its password; its clients are not used.
        self._backend = RedisBackend(url, prefix=prefix, socket_timeout_s=socket_timeout_s)
        self.url = url
        self.prefix = prefix
        self.socket_timeout_s = socket_timeout_s
        self.max_connections = max_connections
        self._clients: dict[int, _Bound] = {}

    @property
    def location(self) -> str:
        """The URL, password masked."""
        return self._backend.location

    async def client(self) -> Redis:
        """This event loop's client, created on first use in the loop."""
        loop = asyncio.get_running_loop()
        bound = self._clients.get(id(loop))
        if bound is not None and bound.loop() is loop:
            return bound.client
        for loop_id, old in list(self._clients.items()):
            dead = old.loop()
            if dead is None or dead.is_closed():
                del self._clients[loop_id]
        import redis.asyncio
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        pool = redis.asyncio.BlockingConnectionPool.from_url(
            self.url,
            max_connections=self.max_connections,
            timeout=self.socket_timeout_s,
            socket_timeout=self.socket_timeout_s,
            socket_connect_timeout=self.socket_timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        client = redis.asyncio.Redis.from_pool(pool)  # closing the client closes the pool
        guard = _close_with_loop(client)
        self._clients[id(loop)] = _Bound(weakref.ref(loop), client, guard)
        await guard.__anext__()  # registers the generator with the loop's shutdown hooks
        return client

    async def close(self) -> None:
        bound = self._clients.pop(id(asyncio.get_running_loop()), None)
        if bound is not None:
            await bound.guard.aclose()


class Script:
    """A Lua script: EVALSHA, and EVAL once when the server does not know it (restarted)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, client: Redis, keys: list[str], args: list[Any]) -> Any:
        from redis.exceptions import NoScriptError

        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)


def part(text: str) -> str:
    """``text`` safe between ``:`` separators and inside a ``{hash tag}`` of a key name."""
    return text.replace("%", "%25").replace(":", "%3A").replace("{", "%7B").replace("}", "%7D")
