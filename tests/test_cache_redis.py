"""RedisBackend against a real ``redis-server`` on loopback, started and killed by fixtures."""

from __future__ import annotations

import asyncio
import gc
import inspect
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis
import redis.exceptions

from ecocascade.cache.base import CacheBackend, CacheEntry, CacheStats
from ecocascade.cache.redis_backend import RedisBackend
from ecocascade.cache.sqlite_backend import SQLiteBackend
from ecocascade.exceptions import ConfigError
from ecocascade.testing import FakeLLMServer
from ecocascade.testing.services import RedisServer

REDIS_SERVER = shutil.which("redis-server")

# What a dead or hung Redis may raise: the client's errors, or the OS's.
UNAVAILABLE = (redis.exceptions.RedisError, ConnectionError, TimeoutError, OSError)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh redis-server for this test, terminated after it."""
    if REDIS_SERVER is None:  # scripts/setup.sh --test installs it: its absence is a failure
        pytest.fail("redis-server is not installed; run scripts/setup.sh --test")
    server = RedisServer(REDIS_SERVER)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain synchronous client, to look at (and tamper with) what the backend stored."""
    with redis.Redis.from_url(redis_server.url) as client:
        yield client


@pytest.fixture
async def backend(redis_server: RedisServer) -> AsyncIterator[RedisBackend]:
    store = RedisBackend(redis_server.url)
    yield store
    await store.close()


def entry(
    key: str,
    *,
    namespace: str = "default",
    fingerprint: str = "fp1",
    ttl: float = 60.0,
    vector: list[float] | None = None,
) -> CacheEntry:
    now = time.time()
    return CacheEntry(
        key=key,
        namespace=namespace,
        fingerprint=fingerprint,
        query=f"question {key}?",
        answer=f"answer {key}",
        model="openai/gpt-4o-mini",
        tier=1,
        created_at=now,
        expires_at=now + ttl,
        vector=vector,
    )


async def eventually(condition: Callable[[], object], within_s: float = 3.0) -> None:
    """Poll ``condition`` (awaiting it if it returns an awaitable) until it is truthy."""
    deadline = time.monotonic() + within_s
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


# -- no server needed ------------------------------------------------------------------------


def test_backend_satisfies_the_protocol_and_masks_the_password() -> None:
    store = RedisBackend("redis://user:s3cret@cache.example:6380/2?password=other&db=2")
    assert isinstance(store, CacheBackend)
    assert store.location == "redis://user:***@cache.example:6380/2?password=***&db=2"
    assert "s3cret" not in repr(store)
    assert RedisBackend("redis://:s3cret@h:1/0").location == "redis://:***@h:1/0"
    assert RedisBackend().location == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize(
    "kwargs",
    [{"url": "http://localhost:6379"}, {"prefix": ""}, {"socket_timeout_s": 0}],
)
def test_bad_settings_are_config_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        RedisBackend(**kwargs)  # type: ignore[arg-type]


# -- entries ---------------------------------------------------------------------------------


async def test_put_then_get_returns_every_field(backend: RedisBackend) -> None:
    vector = [0.1, -0.25, 1e-3, 0.333333, -1.0]
    stored = entry("k1", namespace="ns:with:colons", fingerprint="f%1", vector=vector)
    plain = entry("k2")
    await backend.put(stored)
    await backend.put(plain)

    got = await backend.get("k1")
    assert got is not None
    assert got.vector is not None
    assert list(got.vector) == pytest.approx(vector, abs=1e-6)
    assert replace(got, vector=None) == replace(stored, vector=None)
    assert await backend.get("k2") == plain
    assert await backend.get("missing") is None


async def test_an_entry_and_its_index_vanish_at_expires_at(
    backend: RedisBackend, raw: redis.Redis
) -> None:
    await backend.put(entry("short", ttl=0.3, vector=[1.0, 0.0]))
    assert await backend.get("short") is not None
    assert set(raw.scan_iter()) == {
        b"ecocascade:cache:e:short",
        b"ecocascade:cache:ns:default",
        b"ecocascade:cache:v:default:fp1",
    }

    async def gone() -> bool:
        return await backend.get("short") is None

    await eventually(gone)
    # the namespace set and vector hash expire with their longest-lived entry
    await eventually(lambda: raw.dbsize() == 0)


async def test_putting_an_already_expired_entry_deletes_the_key(backend: RedisBackend) -> None:
    await backend.put(entry("k", vector=[1.0]))
    await backend.put(entry("k", ttl=-1.0, vector=[1.0]))
    assert await backend.get("k") is None
    assert await backend.candidates("default", "fp1") == []


async def test_candidates_are_live_vectors_of_this_namespace_and_fingerprint(
    backend: RedisBackend, raw: redis.Redis
) -> None:
    await backend.put(entry("a1", vector=[1.0, 0.0]))
    await backend.put(entry("a2", vector=[0.0, 1.0]))
    await backend.put(entry("no-vector"))
    await backend.put(entry("other-fp", fingerprint="fp2", vector=[1.0, 0.0]))
    await backend.put(entry("other-ns", namespace="other", vector=[1.0, 0.0]))
    await backend.put(entry("short", ttl=0.2, vector=[1.0, 1.0]))
    await eventually(lambda: not raw.exists("ecocascade:cache:e:short"))

    found = await backend.candidates("default", "fp1")

    assert sorted(c.key for c in found) == ["a1", "a2"]
    assert {c.key: _floats(c.vector) for c in found} == {"a1": [1.0, 0.0], "a2": [0.0, 1.0]}
    assert raw.hkeys("ecocascade:cache:v:default:fp1") == [b"a1", b"a2"]  # "short" dropped
    assert await backend.candidates("default", "nope") == []


async def test_replacing_an_entry_without_a_vector_removes_it_from_candidates(
    backend: RedisBackend,
) -> None:
    await backend.put(entry("k", vector=[1.0, 0.0]))
    await backend.put(entry("k"))
    assert await backend.candidates("default", "fp1") == []
    assert await backend.get("k") is not None


# -- deleting --------------------------------------------------------------------------------


async def test_delete_one_key_removes_it_from_get_candidates_and_stats(
    backend: RedisBackend,
) -> None:
    await backend.put(entry("k1", vector=[1.0]))
    await backend.put(entry("k2", vector=[1.0]))

    assert await backend.delete(key="k1", namespace="elsewhere") == 0
    assert await backend.delete(key="k1") == 1
    assert await backend.delete(key="k1") == 0

    assert await backend.get("k1") is None
    assert [c.key for c in await backend.candidates("default", "fp1")] == ["k2"]
    assert (await backend.stats()).namespaces == {"default": 1}


async def test_delete_namespace_leaves_other_namespaces_alone(
    backend: RedisBackend, raw: redis.Redis
) -> None:
    for i in range(3):
        await backend.put(entry(f"a{i}", namespace="a", fingerprint=f"fp{i % 2}", vector=[1.0]))
    await backend.put(entry("ab", namespace="a:b", vector=[1.0]))  # key names must not collide
    await backend.put(entry("star", namespace="a*", vector=[1.0]))  # nor glob patterns match

    assert await backend.delete(namespace="a") == 3

    assert [await backend.get(f"a{i}") for i in range(3)] == [None, None, None]
    assert not any(name.startswith(b"ecocascade:cache:v:a:") for name in raw.scan_iter())
    assert not raw.exists("ecocascade:cache:ns:a")
    assert (await backend.stats()).namespaces == {"a*": 1, "a:b": 1}
    assert [c.key for c in await backend.candidates("a:b", "fp1")] == ["ab"]


async def test_delete_everything_spares_other_prefixes_and_keys(
    redis_server: RedisServer, backend: RedisBackend, raw: redis.Redis
) -> None:
    neighbour = RedisBackend(redis_server.url, prefix="other:cache")
    try:
        await neighbour.put(entry("theirs", vector=[1.0]))
        raw.set("unrelated", "1")
        for i in range(5):
            await backend.put(entry(f"k{i}", namespace=f"ns{i % 2}", vector=[1.0]))
        await backend.record_hit("k0")

        assert await backend.delete() == 5

        assert sorted(raw.scan_iter()) == [
            b"other:cache:e:theirs",
            b"other:cache:ns:default",
            b"other:cache:v:default:fp1",
            b"unrelated",
        ]
        assert await neighbour.get("theirs") is not None
        assert (await backend.stats()).entries == 0
    finally:
        await neighbour.close()


# -- maintenance -----------------------------------------------------------------------------


async def test_purge_expired_drops_members_whose_entry_is_gone(
    backend: RedisBackend, raw: redis.Redis
) -> None:
    await backend.put(entry("live", vector=[1.0]))
    await backend.put(entry("v1", vector=[1.0]))
    await backend.put(entry("v2", namespace="other", vector=[1.0]))
    await backend.put(entry("plain"))
    await backend.put(entry("short", ttl=0.2))
    raw.unlink("ecocascade:cache:e:v1", "ecocascade:cache:e:v2", "ecocascade:cache:e:plain")
    await eventually(lambda: not raw.exists("ecocascade:cache:e:short"))

    assert await backend.purge_expired() == 4
    assert await backend.purge_expired() == 0

    assert raw.smembers("ecocascade:cache:ns:default") == {b"live"}
    assert raw.hkeys("ecocascade:cache:v:default:fp1") == [b"live"]
    assert not raw.exists("ecocascade:cache:ns:other", "ecocascade:cache:v:other:fp1")


async def test_stats_count_live_entries_per_namespace_and_hits(
    backend: RedisBackend, raw: redis.Redis
) -> None:
    assert await backend.stats() == CacheStats(entries=0, expired=0, namespaces={}, hits=0)
    for i in range(3):
        await backend.put(entry(f"a{i}", namespace="a"))
    await backend.put(entry("b0", namespace="b", vector=[1.0]))
    await backend.put(entry("gone", namespace="c"))
    raw.unlink("ecocascade:cache:e:gone")  # a dangling member is not an entry
    for _ in range(3):
        await backend.record_hit("a0")

    stats = await backend.stats()

    assert (stats.entries, stats.expired, stats.namespaces, stats.hits) == (
        4,
        0,
        {"a": 3, "b": 1},
        3,
    )


@pytest.fixture(params=["sqlite", "redis"])
async def either_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[CacheBackend]:
    """The embedded and the shared backend, one after the other: they must agree."""
    store: SQLiteBackend | RedisBackend
    if request.param == "sqlite":
        store = SQLiteBackend(tmp_path / "cache.sqlite3")
    else:
        store = RedisBackend(request.getfixturevalue("redis_server").url)
    yield store
    await store.close()


async def test_re_storing_an_entry_keeps_the_hits_it_had(either_backend: CacheBackend) -> None:
    await either_backend.put(entry("k"))
    for _ in range(3):
        await either_backend.record_hit("k")
    await either_backend.put(replace(entry("k"), answer="a better answer"))
    await either_backend.record_hit("k")

    got = await either_backend.get("k")
    assert got is not None and got.answer == "a better answer"
    assert (await either_backend.stats()).hits == 4


# -- concurrency, failures, event loops -----------------------------------------------------

WRITER = textwrap.dedent(
    """
    import asyncio, sys, time
    from ecocascade.cache.base import CacheEntry
    from ecocascade.cache.redis_backend import RedisBackend

    async def main(url, start, count):
        backend = RedisBackend(url)
        await backend.get("warm-up")
        print("ready", flush=True)
        sys.stdin.readline()
        now = time.time()
        await asyncio.gather(*(
            backend.put(CacheEntry(
                key=f"k{i}", namespace="shared", fingerprint="fp", query=f"q{i}",
                answer=f"a{i}", model=None, tier=None, expires_at=now + 60, vector=[float(i)],
            ))
            for i in range(start, start + count)
        ))
        await backend.close()

    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
    """
)


async def test_concurrent_writers_store_exactly_the_distinct_keys(
    redis_server: RedisServer, raw: redis.Redis
) -> None:
    writers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WRITER,
            redis_server.url,
            str(start),
            "50",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONWARNINGS": "error"},
        )
        for start in (75, 100)  # k75..k149, overlapping each other and the in-process writers
    ]
    for writer in writers:
        assert writer.stdout is not None
        assert await asyncio.wait_for(writer.stdout.readline(), 30) == b"ready\n"
    backends = [RedisBackend(redis_server.url), RedisBackend(redis_server.url)]
    try:
        for writer in writers:
            assert writer.stdin is not None
            writer.stdin.write(b"go\n")
            await writer.stdin.drain()
        await asyncio.gather(
            *(
                b.put(entry(f"k{i}", namespace="shared", fingerprint="fp", vector=[float(i)]))
                for b, start in zip(backends, (0, 40), strict=True)  # k0..k89
                for i in range(start, start + 50)
            )
        )
        assert [await asyncio.wait_for(w.wait(), 30) for w in writers] == [0, 0]

        expected = {f"k{i}".encode() for i in range(150)}
        assert raw.smembers("ecocascade:cache:ns:shared") == expected
        assert set(raw.hkeys("ecocascade:cache:v:shared:fp")) == expected
        assert (await backends[0].stats()).namespaces == {"shared": 150}
        found = await backends[1].candidates("shared", "fp")
        assert sorted(int(c.key[1:]) for c in found) == list(range(150))
        assert all(_floats(c.vector) == [float(c.key[1:])] for c in found)
    finally:
        for b in backends:
            await b.close()


async def fails_fast(call: Awaitable[object]) -> None:
    """``call`` raises an "unavailable" error within a second."""
    started = time.monotonic()
    with pytest.raises(UNAVAILABLE):
        await call
    assert time.monotonic() - started < 1.0


async def test_a_dead_redis_fails_calls_fast_and_a_restarted_one_works_again(
    redis_server: RedisServer, backend: RedisBackend
) -> None:
    await backend.put(entry("k"))
    assert await backend.get("k") is not None

    redis_server.kill()
    await fails_fast(backend.get("k"))
    await fails_fast(backend.put(entry("k2")))

    redis_server.start()
    assert await backend.get("k") is None  # a new, empty server
    await backend.put(entry("k2"))
    assert await backend.get("k2") is not None


async def test_a_hung_redis_times_out_within_the_socket_timeout(
    redis_server: RedisServer, backend: RedisBackend
) -> None:
    await backend.put(entry("k"))
    redis_server.pause()
    try:
        await fails_fast(backend.get("k"))
    finally:
        redis_server.resume()
    assert await backend.get("k") is not None


def test_one_backend_serves_successive_event_loops(redis_server: RedisServer) -> None:
    """As ``run_sync`` does: every call in a fresh ``asyncio.run`` loop, no leaked sockets."""
    backend = RedisBackend(redis_server.url)
    asyncio.run(backend.put(entry("k")))
    first = asyncio.run(backend.get("k"))
    second = asyncio.run(backend.get("k"))
    assert first is not None
    assert first == second
    asyncio.run(backend.close())
    gc.collect()  # an unclosed connection would warn here, and warnings are errors


def _floats(vector: object) -> list[float]:
    """A stored vector (list or numpy array) as plain floats; [] when absent."""
    return [] if vector is None else [float(x) for x in vector]  # type: ignore[attr-defined]


def test_two_cli_processes_share_answers_through_a_redis_cache(
    redis_server: RedisServer, server: FakeLLMServer
) -> None:
    """Issue #5's acceptance: the second process's run is a free cache hit served from Redis."""
    server.script("small", "Paris")
    argv = [
        sys.executable, "-m", "ecocascade", "run", "--no-store",
        "--cache", redis_server.url,
        "--tier", "openai/small", "--api-base", server.api_base,
        "--judge", "contains:Paris", "--json", "What is the capital of France?",
    ]  # fmt: skip
    first, second = (
        subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
        for _ in range(2)
    )
    assert json.loads(first.stdout)["cache_hit"] is False
    hit = json.loads(second.stdout)
    assert hit["cache_hit"] is True and hit["cost_usd"] == 0.0 and hit["answer"] == "Paris"
    assert len(server.requests_for("small")) == 1
