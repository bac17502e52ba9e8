"""RedisState against a real ``redis-server``: several instances stand for several replicas."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator

import pytest
import redis

from ecocascade.gateway.redis_state import RedisState
from ecocascade.gateway.state import FeedbackTarget, GatewayState
from ecocascade.testing.services import RedisServer


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A throwaway ``redis-server`` on a free loopback port, killed after the test."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    with RedisServer() as server:
        yield server


def test_redis_state_satisfies_the_gateway_state_protocol(redis_server: RedisServer) -> None:
    assert isinstance(RedisState(redis_server.url), GatewayState)


async def test_a_sticky_tier_set_by_one_replica_is_seen_by_another_until_it_expires(
    redis_server: RedisServer,
) -> None:
    one, two = RedisState(redis_server.url), RedisState(redis_server.url)
    await one.set_sticky("conv", 2, ttl_s=0.3)
    assert await two.get_sticky("conv") == 2
    assert await two.get_sticky("other") is None
    await asyncio.sleep(0.35)
    assert await two.get_sticky("conv") is None


async def test_the_feedback_map_is_shared_and_forgotten(redis_server: RedisServer) -> None:
    one, two = RedisState(redis_server.url), RedisState(redis_server.url)
    target = FeedbackTarget("support", "ck", "sid", "a/support", tier=1, model="m", key_id="a")
    await one.remember("req-1", target, ttl_s=60)
    assert await two.recall("req-1") == target
    await two.forget("req-1")
    assert await one.recall("req-1") is None


async def test_identical_misses_on_three_replicas_run_the_upstream_once(
    redis_server: RedisServer,
) -> None:
    """12 concurrent identical requests over 3 replicas: one runs the (slow) upstream and stores
    the answer; the others wait for the lock and then find it."""
    replicas = [RedisState(redis_server.url, lock_s=1.0) for _ in range(3)]
    answers = redis.asyncio.Redis.from_url(redis_server.url)
    upstream_calls = 0

    async def work() -> str:
        nonlocal upstream_calls
        cached = await answers.get("answer")
        if cached is not None:
            return f"hit:{cached.decode()}"
        upstream_calls += 1
        await asyncio.sleep(0.3)
        await answers.set("answer", "4")
        return "miss:4"

    results = await asyncio.gather(*(replicas[i % 3].single_flight("k", work) for i in range(12)))
    await answers.aclose()
    assert upstream_calls == 1
    outcomes = sorted(result for result, _ in results)
    assert outcomes.count("miss:4") == 4  # the leader and its 3 in-process waiters
    assert [shared for result, shared in results if result == "miss:4"].count(False) == 1
    assert outcomes.count("hit:4") == 8


async def test_a_leader_that_keeps_working_keeps_its_lock(redis_server: RedisServer) -> None:
    """The lock lives 0.3 s but the leader renews it: a waiter starts only after it finished."""
    leader, waiter = RedisState(redis_server.url, lock_s=0.3), RedisState(redis_server.url)
    events: list[str] = []

    async def slow() -> str:
        events.append("leader-start")
        await asyncio.sleep(1.0)
        events.append("leader-end")
        return "a"

    async def fast() -> str:
        events.append("waiter-start")
        return "b"

    first = asyncio.ensure_future(leader.single_flight("k", slow))
    await asyncio.sleep(0.05)
    await waiter.single_flight("k", fast)
    await first
    assert events == ["leader-start", "leader-end", "waiter-start"]


async def test_a_dead_leaders_lock_expires_and_a_waiter_takes_over(
    redis_server: RedisServer,
) -> None:
    """A replica killed mid-run leaves its lock behind, never renewed: the waiter runs the work
    itself once the lock expires (after lock_s), not after its whole wait bound."""
    state = RedisState(redis_server.url, lock_s=0.4, wait_s=30)
    with redis.Redis(port=redis_server.port) as raw:
        raw.set("ecocascade:gw:flight:k", "token-of-a-dead-replica", px=400)
    started = time.monotonic()

    async def work() -> str:
        return "ran"

    result, shared = await state.single_flight("k", work)
    waited = time.monotonic() - started
    assert (result, shared) == ("ran", False)
    assert 0.3 < waited < 2.0


async def test_an_unreachable_redis_never_fails_the_request(redis_server: RedisServer) -> None:
    state = RedisState(redis_server.url, socket_timeout_s=0.2)
    redis_server.kill()

    async def work() -> str:
        return "answered"

    assert await state.single_flight("k", work) == ("answered", False)
