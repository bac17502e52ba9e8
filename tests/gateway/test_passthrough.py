"""Models that are not cascade/<name> go through LiteLLM unchanged; the gateway's own endpoints."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from ecocascade.testing import FakeLLMServer, Fault

from .conftest import tier


def _config(server: FakeLLMServer, **extra: Any) -> dict[str, Any]:
    return {"models": {"small": tier(server, "small"), "emb": tier(server, "emb")}, **extra}


def test_a_listed_model_is_passed_through_and_answers_as_upstream(
    server: FakeLLMServer, gateway_factory: Any
) -> None:
    server.always("small", "Paris")
    gw = gateway_factory(_config(server))
    response = gw.client().chat.completions.with_raw_response.create(
        model="small",
        messages=[{"role": "user", "content": "Capital of France?"}],
        temperature=0.3,
        max_tokens=7,
    )
    completion = response.parse()
    assert completion.choices[0].message.content == "Paris"
    assert completion.usage is not None and completion.usage.completion_tokens == 1
    assert response.headers["x-ecocascade-request-id"]
    assert response.headers["x-ecocascade-cost-usd"]  # the tier's price is known
    (upstream,) = server.requests_for("small")
    assert upstream.body["temperature"] == 0.3 and upstream.body["max_tokens"] == 7
    assert upstream.messages == [{"role": "user", "content": "Capital of France?"}]


def test_a_passed_through_stream_arrives_chunk_by_chunk(
    server: FakeLLMServer, gateway_factory: Any
) -> None:
    server.always("small", "The capital is Paris")
    gw = gateway_factory(_config(server))
    stream = gw.client().chat.completions.create(
        model="small", messages=[{"role": "user", "content": "Capital?"}], stream=True
    )
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert "".join(pieces) == "The capital is Paris"
    assert len([p for p in pieces if p]) >= 2


def test_an_upstream_error_keeps_its_status_and_gets_an_openai_body(
    server: FakeLLMServer, gateway_factory: Any
) -> None:
    server.script("small", Fault.status(400, "bad things in the request"))
    gw = gateway_factory(_config(server))
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client(max_retries=0).chat.completions.create(
            model="small", messages=[{"role": "user", "content": "hi"}]
        )
    assert "bad things in the request" in caught.value.message
    assert isinstance(caught.value.body, dict) and caught.value.body["code"] == "upstream_error"


def test_an_unlisted_model_is_refused_when_only_listed_ones_pass(
    server: FakeLLMServer, gateway_factory: Any
) -> None:
    gw = gateway_factory(_config(server, passthrough="listed"))
    with pytest.raises(openai.NotFoundError) as caught:
        gw.client(max_retries=0).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.code == "model_not_found"
    assert server.requests == []


def test_embeddings_are_passed_through(server: FakeLLMServer, gateway_factory: Any) -> None:
    gw = gateway_factory(_config(server))
    result = gw.client().embeddings.create(model="emb", input=["one", "two"])
    assert [len(d.embedding) for d in result.data] == [8, 8]
    assert server.embedding_requests[0]["input"] == ["one", "two"]


def test_bad_request_bodies_get_a_400_in_openai_shape(
    server: FakeLLMServer, gateway_factory: Any
) -> None:
    gw = gateway_factory(_config(server))
    response = httpx.post(f"{gw.base_url}/chat/completions", json={"model": "small"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and "messages" in error["message"]
    assert httpx.post(f"{gw.base_url}/chat/completions", content=b"{").status_code == 400
    assert httpx.get(f"{gw.url}/nope").json()["error"]["message"]


def test_models_health_and_metrics(server: FakeLLMServer, gateway_factory: Any) -> None:
    server.always("small", "ok")
    gw = gateway_factory(_config(server))
    ids = [m.id for m in gw.client().models.list()]
    assert ids == ["small", "emb"]
    assert httpx.get(f"{gw.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{gw.url}/readyz").json()["status"] == "ready"
    gw.client().chat.completions.create(model="small", messages=[{"role": "user", "content": "x"}])
    text = gw.metrics()
    assert 'ecocascade_requests_total{cache="miss",cascade="passthrough",model="small"' in text
