"""The dashboard's numbers: records summed into time buckets, the same in memory and in Redis."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from ecocascade.exceptions import ConfigError
from ecocascade.gateway.apikeys import hash_key
from ecocascade.gateway.config import parse_gateway_config
from ecocascade.gateway.defaults import check_deployment
from ecocascade.gateway.records import Escalation, FeedbackEvent, RequestRecord
from ecocascade.gateway.stats import MemoryStats, RedisStats, StatsSink
from ecocascade.testing.services import RedisServer

NOW = 1_780_000_000.0


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    with RedisServer() as server:
        yield server


def record(i: int, **fields: object) -> RequestRecord:
    values: dict[str, object] = {
        "request_id": f"r{i}",
        "key_id": "a",
        "cascade": "support",
        "model_requested": "cascade/support",
        "tier": 0,
        "model": "openai/small",
        "cache": "miss",
        "cost_usd": 0.001,
        "saved_usd": 0.009,
        "escalations": (),
        "latency_s": 0.02,
        "timestamp": NOW - 600 + i * 60,
        "status": "ok",
    }
    values.update(fields)
    return RequestRecord(**values)  # type: ignore[arg-type]


TRAFFIC = [
    record(0),
    record(1, cache="exact", cost_usd=0.0, saved_usd=0.01, latency_s=0.003),
    record(2, key_id="b", tier=1, model="openai/large", cost_usd=0.011, saved_usd=-0.001,
           escalations=(Escalation(0, 1, "openai/small", "openai/large", "judge_rejected"),)),
    record(3, status="unresolved", tier=None, model=None, cost_usd=0.012, saved_usd=None),
    record(4, key_id=None, cascade=None, model_requested="gpt-x", model="gpt-x", tier=None,
           cost_usd=None, saved_usd=None),
]  # fmt: skip


async def fill(sink: StatsSink) -> None:
    for r in TRAFFIC:
        await sink.on_request(r)
    await sink.on_feedback(FeedbackEvent("r0", "bad", "support", "a", NOW - 100, removed=True))
    await sink.on_request(record(9, timestamp=NOW - 7200))  # outside a 1 h window


async def test_a_window_sums_requests_spend_savings_escalations_and_false_accepts(
    redis_server: RedisServer,
) -> None:
    snapshots = []
    for store in (MemoryStats(), RedisStats(redis_server.url)):
        sink = StatsSink(store)
        await fill(sink)
        snapshots.append(await sink.snapshot(3600, now=NOW))
        await store.close()
    memory, shared = snapshots
    assert memory == shared  # Redis buckets and in-process buckets say the same
    totals = memory["totals"]
    assert (totals["requests"], totals["ok"], totals["failed"]) == (5, 4, 1)
    assert totals["cost_usd"] == pytest.approx(0.024)
    assert totals["baseline_usd"] == pytest.approx(0.03)  # cost + saved where both are known
    assert totals["cache_hits"] == 1 and totals["escalations"] == 1 and totals["bad"] == 1
    assert totals["false_accept_rate"] == 0.25
    assert memory["resolved"] == {
        "t:0:openai/small": 1,
        "c:exact": 1,
        "t:1:openai/large": 1,
        "x:unresolved": 1,
        "p:gpt-x": 1,
    }
    assert memory["escalation_reasons"] == {"judge_rejected": 1}
    assert [(row["key"], row["requests"]) for row in memory["keys"]] == [
        ("a", 3), ("b", 1), ("(no key)", 1)
    ]  # fmt: skip
    assert len(memory["series"]) == 60 and memory["window"]["bucket_s"] == 60
    assert sum(sum(p["resolved"].values()) for p in memory["series"]) == 5


def test_budgets_on_several_workers_need_redis() -> None:
    config = parse_gateway_config(
        {
            "models": {"m": {"model": "openai/x"}},
            "access": {"keys": [{"id": "a", "sha256": hash_key("k"), "budget": {"usd": 1}}]},
        }
    )
    check_deployment(config, workers=1)
    with pytest.raises(ConfigError, match=r"redis: --workers 3 with budgets"):
        check_deployment(config, workers=3)
    with pytest.raises(ConfigError, match="environment variable NOPE"):
        check_deployment(
            parse_gateway_config(
                {
                    "models": {"m": {"model": "openai/x"}},
                    "access": {"keys": [{"id": "a", "key_env": "NOPE"}]},
                }
            )
        )
