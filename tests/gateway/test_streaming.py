"""The SSE writer, seen from real clients: keep-alives while waiting, a real HTTP status for an
error before the first byte, an error event (never a silent cut) after it."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest

from ecocascade.testing import FakeLLMServer, Fault, Reply

from .conftest import tier


def _config(server: FakeLLMServer) -> dict[str, Any]:
    return {"models": {"small": tier(server, "small", timeout_s=2)}, "keepalive_s": 0.2}


def test_a_slow_upstream_gets_keepalive_comments_then_the_answer(
    server: FakeLLMServer, gateway_factory: Any
) -> None:
    server.script("small", Fault.timeout(0.7, then=Reply("late but right")))
    gw = gateway_factory(_config(server))
    body = {"model": "small", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream("POST", f"{gw.base_url}/chat/completions", json=body) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line]
    keepalives = [line for line in lines if line.startswith(":")]
    assert len(keepalives) >= 2, lines
    assert lines[-1] == "data: [DONE]"
    assert lines.index(keepalives[0]) < lines.index(next(x for x in lines if x.startswith("data")))


def test_the_sdk_reads_a_stream_with_keepalives(
    server: FakeLLMServer, gateway_factory: Any
) -> None:
    server.script("small", Fault.timeout(0.5, then=Reply("still here")))
    gw = gateway_factory(_config(server))
    stream = gw.client().chat.completions.create(
        model="small", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "still here"


def test_an_error_before_the_first_byte_is_a_real_status(
    server: FakeLLMServer, gateway_factory: Any
) -> None:
    server.script("small", Fault.rate_limit(retry_after_s=3))
    gw = gateway_factory(_config(server))
    with pytest.raises(openai.RateLimitError) as caught:
        gw.client(max_retries=0).chat.completions.create(
            model="small", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "3"


def test_an_error_after_the_stream_started_is_an_error_event(
    server: FakeLLMServer, gateway_factory: Any
) -> None:
    server.script("small", Fault.timeout(0.6))  # stall past a keep-alive, then hang up
    gw = gateway_factory(_config(server))
    body = {"model": "small", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream("POST", f"{gw.base_url}/chat/completions", json=body) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line]
    assert lines[0].startswith(":")
    assert lines[-1].startswith('data: {"error"'), lines
    with pytest.raises(openai.APIError):
        server.script("small", Fault.timeout(0.6))
        for _ in gw.client(max_retries=0).chat.completions.create(
            model="small", messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            pass
    assert 'status="error"' in gw.metrics()


def test_a_client_leaving_a_stream_cancels_it(server: FakeLLMServer, gateway_factory: Any) -> None:
    server.script("small", Fault.timeout(1.5, then=Reply("too late")))
    gw = gateway_factory(_config(server))
    body = {"model": "small", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream("POST", f"{gw.base_url}/chat/completions", json=body) as response:
        first = next(response.iter_lines())
        assert first.startswith(":")  # committed, waiting: then the client hangs up
    deadline = time.monotonic() + 5
    while 'status="cancelled"' not in gw.metrics():
        assert time.monotonic() < deadline, gw.metrics()
        time.sleep(0.05)
