"""Redis plumbing shared by the gateway's Redis-backed parts: one client per event loop (the
cache's :class:`~ecocascade.cache.redis_backend.RedisBackend` connection handling, reused as is)
and Lua scripts run by SHA with a fallback to EVAL after a Redis restart."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from ecocascade.cache.redis_backend import RedisBackend

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisConnection", "Script", "part"]


class RedisConnection:
    """Clients for ``url``: one per event loop, closed with the loop; fail-fast timeouts."""

    def __init__(
        self, url: str, *, prefix: str = "ecocascade:gw", socket_timeout_s: float = 2.0
    ) -> None:
        # RedisBackend validates the URL, masks its password and binds a client to each loop.
        self._backend = RedisBackend(url, prefix=prefix, socket_timeout_s=socket_timeout_s)
        self.prefix = prefix

    @property
    def location(self) -> str:
        """The URL, password masked."""
        return self._backend.location

    async def client(self) -> Redis:
        return await self._backend._client()

    async def close(self) -> None:
        await self._backend.close()


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
