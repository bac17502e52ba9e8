"""Keys, budgets, tenant isolation and the dashboard through a real gateway on Redis: the OpenAI
SDK as the client, upstream tiers on FakeLLMServer, a real ``redis-server``."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from ecocascade.gateway.apikeys import hash_key
from ecocascade.testing import FakeLLMServer, Reply
from ecocascade.testing.services import RedisServer

from .conftest import tier

KEYS = {"a": "eco-tenant-a", "b": "eco-tenant-b", "a2": "eco-tenant-a-too", "ops": "eco-ops"}
Q = [{"role": "user", "content": "What is 2+2?"}]


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A throwaway ``redis-server`` on a free loopback port, killed after the test."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    with RedisServer() as server:
        yield server


def _config(server: FakeLLMServer, redis_url: str, **keys: dict[str, Any]) -> dict[str, Any]:
    cascade = {
        "tiers": [tier(server, "small"), tier(server, "large")],
        "judge": {"type": "contains", "text": "4"},
        "cache": {"location": redis_url},
    }
    specs = [{"id": name, "sha256": hash_key(KEYS[name]), **spec} for name, spec in keys.items()]
    return {
        "redis": redis_url,
        "cascades": {"support": cascade, "code": cascade},
        "access": {"keys": specs},
    }


_OPEN: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def _client(gw: Any, key: str | None) -> openai.OpenAI:
    client = openai.OpenAI(base_url=gw.base_url, api_key=key or "", max_retries=0)
    _OPEN.append(client)
    return client


def test_keys_are_checked_and_tenants_never_share_cached_answers(
    server: FakeLLMServer, redis_server: RedisServer, gateway_factory: Any
) -> None:
    server.always("small", "4")
    gw = gateway_factory(
        _config(
            server,
            redis_server.url,
            a={"cascades": ["support"]},
            b={},
            a2={"namespace": "a"},  # shares tenant a's answers on purpose
        )
    )
    with pytest.raises(openai.AuthenticationError) as unknown:
        _client(gw, "eco-nobody").chat.completions.create(model="cascade/support", messages=Q)
    assert unknown.value.body["code"] == "invalid_api_key"  # type: ignore[index]
    with pytest.raises(openai.PermissionDeniedError) as denied:
        _client(gw, KEYS["a"]).chat.completions.create(model="cascade/code", messages=Q)
    assert denied.value.body["code"] == "cascade_not_allowed"  # type: ignore[index]

    def ask(name: str) -> str:
        raw = _client(gw, KEYS[name]).chat.completions.with_raw_response.create(
            model="cascade/support", messages=Q
        )
        assert raw.parse().choices[0].message.content == "4"
        return str(raw.headers["x-ecocascade-cache"])

    assert [ask("a"), ask("a"), ask("b"), ask("a2"), ask("b")] == [
        "miss", "exact", "miss", "exact", "exact"
    ]  # fmt: skip
    assert len(server.requests_for("small")) == 2  # one per tenant namespace


def test_a_budgeted_key_gets_429_naming_its_budget_and_rate_limits_send_retry_after(
    server: FakeLLMServer, redis_server: RedisServer, gateway_factory: Any
) -> None:
    server.always("small", Reply("4", completion_tokens=500))  # about $0.0002 per answer
    gw = gateway_factory(
        _config(
            server,
            redis_server.url,
            # a request reserves ~$0.0054 (both tiers, worst case); ~13 answers fit
            a={"budget": {"usd": 0.008, "period": "day"}, "admin": True},
            b={"rate_limit": {"requests": 2, "per_s": 30}},
        )
    )
    answered, refused = 0, None
    for i in range(40):  # distinct questions: each one a miss that costs something
        try:
            _client(gw, KEYS["a"]).chat.completions.create(
                model="cascade/support",
                messages=[{"role": "user", "content": f"What is 2+2? ({i})"}],
                max_tokens=16,
            )
            answered += 1
        except openai.RateLimitError as error:
            refused = error
            break
    assert refused is not None and 5 <= answered < 40
    assert refused.body["code"] == "budget_exceeded"  # type: ignore[index]
    assert "daily budget of $0.008 reached" in refused.message
    with httpx.Client(base_url=gw.url) as http:
        anonymous = http.get("/dashboard/data")
        assert anonymous.json()["error"]["code"] == "invalid_api_key", anonymous.text[:300]
        data = http.get("/dashboard/data", headers={"Authorization": f"Bearer {KEYS['a']}"})
        (budget,) = data.json()["budgets"]
        assert budget["key"] == "a" and budget["reserved_usd"] == 0
        assert 0 < budget["spent_usd"] <= 0.008
        codes = [
            http.post(
                "/v1/chat/completions",
                json={"model": "cascade/support", "messages": Q},
                headers={"Authorization": f"Bearer {KEYS['b']}"},
            )
            for _ in range(3)
        ]
    assert [r.status_code for r in codes] == [200, 200, 429]
    assert codes[2].json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(codes[2].headers["retry-after"]) <= 30


def test_the_dashboard_shows_the_traffic_to_admins_only_and_loads_nothing_external(
    server: FakeLLMServer, redis_server: RedisServer, gateway_factory: Any
) -> None:
    server.script("small", "5")  # rejected by the judge: the first question escalates
    server.always("small", "4")
    server.always("large", "4")
    gw = gateway_factory(
        _config(server, redis_server.url, a={}, ops={"admin": True, "cascades": ["code"]})
    )
    client = _client(gw, KEYS["a"])
    for _ in range(3):
        client.chat.completions.create(model="cascade/support", messages=Q)
    with httpx.Client(base_url=gw.url) as http:
        assert http.get("/").status_code == 307
        assert http.get("/dashboard", params={"key": KEYS["a"]}).status_code == 403
        page = http.get("/dashboard", params={"key": KEYS["ops"]})
        assert page.status_code == 200 and "<svg" in page.text
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text)
        auth = {"Authorization": f"Bearer {KEYS['ops']}"}
        data = http.get("/dashboard/data", params={"window": "15m"}, headers=auth).json()
        assert http.get("/dashboard/data?window=2y", headers=auth).status_code == 400
    totals = data["totals"]
    assert totals["requests"] == 3 and totals["ok"] == 3 and totals["cache_hits"] == 2
    assert totals["escalations"] == 1
    assert data["escalation_reasons"] == {"judge_rejected": 1}
    assert data["resolved"] == {"c:exact": 2, "t:1:openai/large": 1}
    assert totals["cost_usd"] > 0 and totals["baseline_usd"] > 0
    (row,) = data["keys"]
    assert row["key"] == "a" and row["requests"] == 3
    assert sum(p["resolved"].get("c:exact", 0) for p in data["series"]) == 2
