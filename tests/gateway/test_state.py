"""In-process gateway state: single-flight shares one run and survives a waiter going away."""

from __future__ import annotations

import asyncio

import pytest

from ecocascade.gateway import FeedbackTarget, GatewayState, InProcessState


async def test_concurrent_callers_of_one_key_share_one_run() -> None:
    state = InProcessState()
    assert isinstance(state, GatewayState)
    runs = 0

    async def work() -> str:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.05)
        return "answer"

    results = await asyncio.gather(*(state.single_flight("k", work) for _ in range(5)))
    assert runs == 1
    assert sorted(shared for _, shared in results) == [False, True, True, True, True]
    assert {answer for answer, _ in results} == {"answer"}
    await state.single_flight("k", work)  # a later call runs again: nothing is kept
    assert runs == 2


async def test_a_cancelled_waiter_leaves_the_work_to_the_others() -> None:
    state = InProcessState()
    finished = asyncio.Event()

    async def work() -> str:
        await asyncio.sleep(0.1)
        finished.set()
        return "done"

    first = asyncio.ensure_future(state.single_flight("k", work))
    second = asyncio.ensure_future(state.single_flight("k", work))
    await asyncio.sleep(0.01)
    first.cancel()
    assert await second == ("done", True)
    assert finished.is_set()


async def test_the_work_is_cancelled_when_every_waiter_has_gone() -> None:
    state = InProcessState()
    cancelled = asyncio.Event()

    async def work() -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    waiter = asyncio.ensure_future(state.single_flight("k", work))
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await asyncio.wait_for(cancelled.wait(), 1)


async def test_an_error_reaches_every_waiter() -> None:
    state = InProcessState()

    async def work() -> str:
        await asyncio.sleep(0.01)
        raise RuntimeError("upstream down")

    results = await asyncio.gather(
        state.single_flight("k", work), state.single_flight("k", work), return_exceptions=True
    )
    assert [type(r) for r in results] == [RuntimeError, RuntimeError]


async def test_sticky_tiers_and_feedback_targets_expire() -> None:
    state = InProcessState(max_entries=2)
    await state.set_sticky("a", 1, ttl_s=60)
    await state.set_sticky("b", 0, ttl_s=0.01)
    await asyncio.sleep(0.02)
    assert await state.get_sticky("a") == 1
    assert await state.get_sticky("b") is None
    target = FeedbackTarget(cascade="c", cache_key="k", solution_id=None, namespace="default")
    await state.remember("r1", target, ttl_s=60)
    assert await state.recall("r1") == target
    await state.forget("r1")
    assert await state.recall("r1") is None
    for key in ("x", "y", "z"):  # bounded: the oldest entry goes first
        await state.set_sticky(key, 2, ttl_s=60)
    assert await state.get_sticky("a") is None and await state.get_sticky("z") == 2
