"""The gateway's shared state behind one small protocol, so replicas can share it.

Three things outlive a single request: the **sticky tier** of a conversation (a multi-turn chat
continues at the tier that answered its previous turn, or higher), **single-flight** of identical
concurrent cache misses (the cascade runs once, every waiter gets the answer), and the map from a
response's ``request_id`` to what produced it, so ``/v1/feedback`` can take a bad answer out of
the cache and the solution store. :class:`InProcessState` keeps them in this process (one
replica); an implementation on Redis makes several replicas behave as one.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = ["FeedbackTarget", "GatewayState", "InProcessState"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FeedbackTarget:
    """What produced one response: enough to find and remove its answer later.

    Plain values only, so a shared implementation can serialise it (``dataclasses.asdict``).
    """

    cascade: str
    cache_key: str | None
    solution_id: str | None
    namespace: str
    tier: int | None = None
    model: str | None = None
    key_id: str | None = None


@runtime_checkable
class GatewayState(Protocol):
    """Sticky tiers, single-flight and the feedback map. Every method is async and may be shared
    across processes; none may fail a request for long (the gateway treats errors as a miss)."""

    async def get_sticky(self, conversation: str) -> int | None:
        """The tier that answered this conversation's previous turn, if known."""
        ...

    async def set_sticky(self, conversation: str, tier: int, ttl_s: float) -> None: ...

    async def single_flight(self, key: str, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Run ``work`` once for concurrent callers of the same ``key``.

        Returns ``(result, shared)``: ``shared`` is False for the caller whose ``work`` ran.
        An in-process implementation hands the leader's result to the waiters; a shared one may
        instead let a waiter, once the leader has finished, call ``work`` itself (it then finds the
        leader's answer in the cache). The work must survive one waiter being cancelled while
        others still wait, and be cancelled when every waiter has gone.
        """
        ...

    async def remember(self, request_id: str, target: FeedbackTarget, ttl_s: float) -> None: ...

    async def recall(self, request_id: str) -> FeedbackTarget | None: ...

    async def forget(self, request_id: str) -> None: ...

    async def close(self) -> None: ...


class _Flight:
    __slots__ = ("task", "waiters")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.waiters = 0


class InProcessState:
    """:class:`GatewayState` for one process: bounded dicts with expiry and in-process
    single-flight. ``max_entries`` bounds each map (oldest entries go first)."""

    def __init__(self, *, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._sticky: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._targets: OrderedDict[str, tuple[FeedbackTarget, float]] = OrderedDict()
        self._flights: dict[str, _Flight] = {}

    async def get_sticky(self, conversation: str) -> int | None:
        found = self._sticky.get(conversation)
        if found is None:
            return None
        if found[1] <= time.monotonic():
            self._sticky.pop(conversation, None)
            return None
        return found[0]

    async def set_sticky(self, conversation: str, tier: int, ttl_s: float) -> None:
        self._put(self._sticky, conversation, (tier, time.monotonic() + ttl_s))

    async def single_flight(self, key: str, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        flight = self._flights.get(key)
        leader = flight is None
        if flight is None:
            task: asyncio.Task[T] = asyncio.ensure_future(work())
            flight = _Flight(task)
            self._flights[key] = flight
            task.add_done_callback(lambda _: self._drop_flight(key, flight))
        flight.waiters += 1
        try:
            result: T = await asyncio.shield(flight.task)
        except asyncio.CancelledError:
            # This waiter went away (client disconnect); the work goes on while others wait.
            if not flight.task.done() and flight.waiters == 1:
                flight.task.cancel()
            raise
        finally:
            flight.waiters -= 1
        return result, not leader

    def _drop_flight(self, key: str, flight: _Flight) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.task.cancelled():
            flight.task.exception()  # retrieved here, raised to every waiter by shield

    async def remember(self, request_id: str, target: FeedbackTarget, ttl_s: float) -> None:
        self._put(self._targets, request_id, (target, time.monotonic() + ttl_s))

    async def recall(self, request_id: str) -> FeedbackTarget | None:
        found = self._targets.get(request_id)
        if found is None or found[1] <= time.monotonic():
            return None
        return found[0]

    async def forget(self, request_id: str) -> None:
        self._targets.pop(request_id, None)

    async def close(self) -> None:
        for flight in list(self._flights.values()):
            flight.task.cancel()

    def _put(self, store: OrderedDict[str, Any], key: str, value: Any) -> None:
        store[key] = value
        store.move_to_end(key)
        while len(store) > self.max_entries:
            store.popitem(last=False)
