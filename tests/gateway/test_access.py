"""API keys, budgets and rate limits: hashing, refusals as OpenAI errors, the Lua budget against
a real ``redis-server`` shared by several "replicas" (separate clients), reservations that expire,
and tenant isolation of the cache."""

from __future__ import annotations

import asyncio
import random
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from ecocascade.cache.cache import ResponseCache
from ecocascade.cache.redis_backend import RedisBackend
from ecocascade.exceptions import ConfigError
from ecocascade.gateway.access import KeyAdmission as Admission
from ecocascade.gateway.access import scoped_namespace
from ecocascade.gateway.admission import Reservation
from ecocascade.gateway.apikeys import KeyRing, bearer_token, hash_key, main, new_key
from ecocascade.gateway.errors import GatewayError
from ecocascade.gateway.limits import Limits, MemoryLimits, RedisLimits, period_bounds
from ecocascade.testing.services import RedisServer

KEY_A, KEY_B = "eco-key-a", "eco-key-b"


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A throwaway ``redis-server`` on a free loopback port, killed after the test."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    with RedisServer() as server:
        yield server


def ring(*keys: dict[str, Any], cascades: set[str] | None = None, **access: Any) -> KeyRing:
    return KeyRing.from_spec(
        {"keys": list(keys), **access}, cascades=cascades or {"support", "code"}, environ={}
    )


async def attempt(
    admission: Admission, key: str | None, cascade: str, estimate: float | None
) -> Reservation | GatewayError:
    """What ``admit`` gave: the reservation, or the refusal it raised."""
    try:
        return await admission.admit(key, cascade, estimate)
    except GatewayError as error:
        return error


def make_limits(kind: str, redis_server: RedisServer | None) -> Limits:
    if kind == "memory":
        return MemoryLimits()
    assert redis_server is not None
    return RedisLimits(redis_server.url)


@pytest.fixture(params=["memory", "redis"])
def limits_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def limits(limits_kind: str, request: pytest.FixtureRequest) -> Limits:
    server = request.getfixturevalue("redis_server") if limits_kind == "redis" else None
    return make_limits(limits_kind, server)


# -- keys ----------------------------------------------------------------------------------------


def test_a_key_is_found_by_its_salted_hash_and_a_wrong_key_is_not() -> None:
    keys = ring(
        {"id": "a", "sha256": hash_key(KEY_A, "pepper")},
        {"id": "b", "sha256": hash_key(KEY_B, "own"), "salt": "own"},
        key_salt="pepper",
    )
    assert keys.lookup(KEY_A) is not None and keys.lookup(KEY_A).id == "a"  # type: ignore[union-attr]
    assert keys.lookup(KEY_B).id == "b"  # type: ignore[union-attr]
    assert keys.lookup("eco-key-c") is None
    assert keys.lookup(hash_key(KEY_A, "pepper")) is None  # the stored hash is not a key


def test_a_key_from_the_environment_is_hashed_when_read() -> None:
    keys = KeyRing.from_spec({"keys": [{"id": "a", "key_env": "A_KEY"}]}, environ={"A_KEY": KEY_A})
    assert keys.lookup(KEY_A) is not None
    with pytest.raises(ConfigError, match=r"access.keys.0: environment variable A_KEY"):
        KeyRing.from_spec({"keys": [{"id": "a", "key_env": "A_KEY"}]}, environ={})


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ([{"id": "a"}], "exactly one of sha256"),
        ([{"id": "a", "sha256": "abc"}], "sha256"),
        ([{"id": "a", "sha256": hash_key("x"), "cascades": ["nope"]}], "no such cascade: nope"),
        ([{"id": "a", "sha256": hash_key("x")}, {"id": "a", "sha256": hash_key("y")}], "two keys"),
        ([{"id": "a", "sha256": hash_key("x")}, {"id": "b", "sha256": hash_key("x")}], "same key"),
        ([{"id": "a", "sha256": hash_key("x"), "budget": {"usd": -1}}], "budget.usd"),
    ],
)
def test_a_bad_key_config_is_a_config_error_naming_the_field(
    keys: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        ring(*keys)


def test_the_key_tool_prints_a_new_key_and_a_hash_that_finds_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--salt", "s"]) == 0
    lines = capsys.readouterr().out.splitlines()
    key, digest = lines[0].split()[1], lines[1].split()[1]
    assert key.startswith("eco-") and len(key) > 40 and key != new_key()
    assert ring({"id": "a", "sha256": digest, "salt": "s"}).lookup(key) is not None
    assert main(["--bogus"]) == 2


def test_bearer_tokens_are_read_from_the_authorization_header() -> None:
    assert bearer_token("Bearer eco-1") == "eco-1"
    assert bearer_token("bearer  eco-1 ") == "eco-1"
    assert bearer_token("Basic abc") is None
    assert bearer_token(None) is None


# -- refusals ------------------------------------------------------------------------------------


async def test_missing_or_unknown_keys_get_401_and_other_cascades_403(limits: Limits) -> None:
    admission = Admission(ring({"id": "a", "sha256": hash_key(KEY_A), "cascades": ["support"]}),
                          limits)  # fmt: skip
    for key in (None, "eco-wrong"):
        refusal = await attempt(admission, key, "support", 0.01)
        assert isinstance(refusal, GatewayError) and refusal.status == 401
        assert refusal.body()["error"]["code"] == "invalid_api_key"
        assert refusal.body()["error"]["type"] == "invalid_request_error"
    refusal = await attempt(admission, KEY_A, "code", 0.01)
    assert isinstance(refusal, GatewayError) and refusal.status == 403
    assert refusal.body()["error"] == {
        "message": "key 'a' may not use cascade 'code' (allowed: support)",
        "type": "permission_error",
        "param": "model",
        "code": "cascade_not_allowed",
    }
    assert isinstance(await attempt(admission, KEY_A, "support", 0.01), Reservation)


async def test_an_open_gateway_admits_anyone_without_a_namespace_prefix() -> None:
    reservation = await Admission().admit(None, "support", None)
    assert reservation.key_id is None and "hold" not in reservation.data
    assert scoped_namespace(reservation, "support") == "support"


async def test_the_rate_limit_refuses_with_retry_after_then_admits_again(limits: Limits) -> None:
    spec = {"id": "a", "sha256": hash_key(KEY_A), "rate_limit": {"requests": 3, "per_s": 0.5}}
    admission = Admission(ring(spec), limits)
    for _ in range(3):
        assert isinstance(await attempt(admission, KEY_A, "support", 0.0), Reservation)
    refusal = await attempt(admission, KEY_A, "support", 0.0)
    assert isinstance(refusal, GatewayError) and refusal.status == 429
    assert refusal.body()["error"]["code"] == "rate_limit_exceeded"
    assert refusal.headers == {"Retry-After": "1"}  # whole seconds, rounded up from <= 0.5
    assert "retry in 0." in refusal.message
    await asyncio.sleep(0.55)
    assert isinstance(await attempt(admission, KEY_A, "support", 0.0), Reservation)


async def test_over_budget_is_a_429_naming_the_limit_and_settling_counts_the_real_cost(
    limits: Limits,
) -> None:
    spec = {"id": "a", "sha256": hash_key(KEY_A), "budget": {"usd": 0.10, "period": "month"}}
    admission = Admission(ring(spec), limits)
    first = await attempt(admission, KEY_A, "support", 0.06)
    assert isinstance(first, Reservation) and first.data["hold"] is not None
    refusal = await attempt(admission, KEY_A, "support", 0.06)  # 0.06 reserved + 0.06 > 0.10
    assert isinstance(refusal, GatewayError) and refusal.status == 429
    error = refusal.body()["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "budget_exceeded")
    assert "monthly budget of $0.1 reached" in error["message"]
    assert "reserved $0.06," in error["message"] and "resets" in error["message"]
    await admission.settle(first, 0.01)  # the call cost less than estimated
    (row,) = await admission.budgets()
    assert row["key"] == "a" and row["spent_usd"] == pytest.approx(0.01)
    assert row["reserved_usd"] == 0
    assert isinstance(await attempt(admission, KEY_A, "support", 0.06), Reservation)


async def test_a_budgeted_key_is_refused_when_the_cost_cannot_be_estimated() -> None:
    admission = Admission(ring({"id": "a", "sha256": hash_key(KEY_A), "budget": {"usd": 1}}))
    refusal = await attempt(admission, KEY_A, "support", None)
    assert isinstance(refusal, GatewayError)
    assert refusal.body()["error"]["code"] == "budget_unenforceable"


async def test_an_unreachable_redis_fails_closed_with_503(redis_server: RedisServer) -> None:
    spec = {"id": "a", "sha256": hash_key(KEY_A), "budget": {"usd": 1}}
    admission = Admission(ring(spec), RedisLimits(redis_server.url))
    redis_server.kill()
    refusal = await attempt(admission, KEY_A, "support", 0.01)
    assert isinstance(refusal, GatewayError) and refusal.status == 503
    assert refusal.body()["error"]["code"] == "limits_unavailable"


# -- the Lua budget across replicas --------------------------------------------------------------


async def test_concurrent_reservations_from_three_replicas_never_exceed_the_budget(
    redis_server: RedisServer,
) -> None:
    """300 concurrent requests of up to $0.03 against $1.00, over three separate clients: exactly
    33 are admitted, and what they really cost (≤ the estimate) keeps spend within budget."""
    spec = {"id": "a", "sha256": hash_key(KEY_A), "budget": {"usd": 1.0}}
    replicas = [Admission(ring(spec), RedisLimits(redis_server.url)) for _ in range(3)]
    rng = random.Random(7)

    async def one(i: int) -> float:
        admission = replicas[i % 3]
        reservation = await attempt(admission, KEY_A, "support", 0.03)
        if isinstance(reservation, GatewayError):
            assert reservation.body()["error"]["code"] == "budget_exceeded"
            return 0.0
        await asyncio.sleep(rng.random() * 0.01)
        cost = rng.uniform(0.0, 0.03)
        await admission.settle(reservation, cost)
        return cost

    costs = await asyncio.gather(*(one(i) for i in range(300)))
    admitted = [c for c in costs if c > 0]
    assert len(admitted) >= 33  # spent under budget frees room for a few more later arrivals
    (row,) = await replicas[0].budgets()
    assert row["spent_usd"] == pytest.approx(sum(costs), abs=1e-6)
    assert row["spent_usd"] <= 1.0 and row["reserved_usd"] == 0


async def test_reservations_all_in_flight_at_once_stop_at_the_budget(
    redis_server: RedisServer,
) -> None:
    """With nothing settled yet, the reservations granted add up to at most the budget."""
    spec = {"id": "a", "sha256": hash_key(KEY_A), "budget": {"usd": 1.0}}
    replicas = [Admission(ring(spec), RedisLimits(redis_server.url)) for _ in range(3)]
    results = await asyncio.gather(
        *(attempt(replicas[i % 3], KEY_A, "support", 0.03) for i in range(200))
    )
    granted = [r for r in results if isinstance(r, Reservation)]
    assert len(granted) == 33  # floor(1.00 / 0.03)
    (row,) = await replicas[1].budgets()
    assert row["reserved_usd"] == pytest.approx(0.99)


async def test_a_dead_replicas_reservation_expires_and_its_late_settle_still_counts(
    limits: Limits,
) -> None:
    spec = {"id": "a", "sha256": hash_key(KEY_A), "budget": {"usd": 0.05}}
    admission = Admission(ring(spec), limits, hold_s=0.3)
    orphan = await attempt(admission, KEY_A, "support", 0.05)  # its replica "dies": never settled
    assert isinstance(orphan, Reservation)
    assert isinstance(await attempt(admission, KEY_A, "support", 0.01), GatewayError)
    await asyncio.sleep(0.35)
    later = await attempt(admission, KEY_A, "support", 0.04)
    assert isinstance(later, Reservation)
    await admission.settle(orphan, 0.01)  # it did finish after all: the money is counted
    await admission.settle(later, 0.02)
    (row,) = await admission.budgets()
    assert row["spent_usd"] == pytest.approx(0.03) and row["reserved_usd"] == 0


def test_periods_are_utc_days_and_months() -> None:
    moment = 1_772_323_200.0 + 3600  # 2026-03-01T01:00Z
    assert period_bounds("day", moment) == ("2026-03-01", 1_772_323_200.0 + 86_400)
    name, ends = period_bounds("month", moment)
    assert name == "2026-03" and ends == 1_772_323_200.0 + 31 * 86_400


# -- tenant isolation ----------------------------------------------------------------------------


async def test_tenants_never_see_each_others_cache_unless_the_config_shares_a_namespace(
    redis_server: RedisServer,
) -> None:
    keys = ring(
        {"id": "a", "sha256": hash_key(KEY_A)},
        {"id": "b", "sha256": hash_key(KEY_B)},
        {"id": "c", "sha256": hash_key("eco-key-c"), "namespace": "a"},
    )
    admission = Admission(keys)
    cache = ResponseCache(RedisBackend(redis_server.url))
    a, b, c = [await attempt(admission, k, "support", 0.0) for k in (KEY_A, KEY_B, "eco-key-c")]
    assert isinstance(a, Reservation) and isinstance(b, Reservation)
    assert isinstance(c, Reservation)
    q = "what is 2+2?"
    await cache.store(q, namespace=scoped_namespace(a, "support"), fingerprint="f",
                      answer="4", model="small", tier=0)  # fmt: skip
    hit_b, _ = await cache.lookup(q, namespace=scoped_namespace(b, "support"), fingerprint="f")
    hit_c, _ = await cache.lookup(q, namespace=scoped_namespace(c, "support"), fingerprint="f")
    assert hit_b is None
    assert hit_c is not None and hit_c.answer == "4"
    assert scoped_namespace(a, "support") == "a/support" != scoped_namespace(b, "support")
    await cache.close()
