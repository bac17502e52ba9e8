"""model="cascade/<name>" through the official OpenAI SDK: the ladder, the cache, streaming,
tools, JSON mode, multi-turn, feedback, errors and metrics — upstream tiers on FakeLLMServer."""

from __future__ import annotations

import concurrent.futures
import json
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from ecocascade.testing import FakeLLMServer, Fault, Reply, ToolCall

from .conftest import tier

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def _config(server: FakeLLMServer, tmp_path: Path, **cascade: Any) -> dict[str, Any]:
    spec = {
        "tiers": [tier(server, "small"), tier(server, "large")],
        "judge": {"type": "contains", "text": "Paris"},
        "cache": {"location": str(tmp_path / "cache.sqlite3")},
        **cascade,
    }
    return {"cascades": {"geo": spec}, "keepalive_s": 0.2}


def test_a_rejected_cheap_answer_escalates_and_the_answer_is_a_normal_completion(
    server: FakeLLMServer, gateway_factory: Any, tmp_path: Path
) -> None:
    server.script("small", "Lyon")
    server.script("large", Reply("Paris", prompt_tokens=11, completion_tokens=2))
    gw = gateway_factory(_config(server, tmp_path))
    raw = gw.client().chat.completions.with_raw_response.create(
        model="cascade/geo", messages=QUESTION
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Paris"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "large"  # what the upstream says answered
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (11, 2)
    headers = raw.headers
    assert headers["x-ecocascade-tier"] == "1" and headers["x-ecocascade-model"] == "openai/large"
    assert headers["x-ecocascade-cache"] == "miss"
    assert float(headers["x-ecocascade-cost-usd"]) > 0
    assert "x-ecocascade-saved-usd" in headers
    assert headers["x-ecocascade-request-id"]


def test_a_repeat_is_an_exact_cache_hit_that_costs_nothing(
    server: FakeLLMServer, gateway_factory: Any, tmp_path: Path
) -> None:
    server.always("small", "Paris")
    gw = gateway_factory(_config(server, tmp_path))
    client = gw.client()
    client.chat.completions.create(model="cascade/geo", messages=QUESTION)
    again = client.chat.completions.with_raw_response.create(model="cascade/geo", messages=QUESTION)
    assert again.parse().choices[0].message.content == "Paris"
    assert again.headers["x-ecocascade-cache"] == "exact"
    assert float(again.headers["x-ecocascade-cost-usd"]) == 0
    assert float(again.headers["x-ecocascade-saved-usd"]) > 0
    assert len(server.requests_for("small")) == 1


def test_a_buffered_tier_is_streamed_after_the_judge_accepted_it(
    server: FakeLLMServer, gateway_factory: Any, tmp_path: Path
) -> None:
    server.always("small", "It is Paris, of course")
    gw = gateway_factory(_config(server, tmp_path))
    stream = gw.client().chat.completions.create(
        model="cascade/geo",
        messages=QUESTION,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "It is Paris, of course"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5


def test_the_last_tier_streams_live_after_a_rejection(
    server: FakeLLMServer, gateway_factory: Any, tmp_path: Path
) -> None:
    server.script("small", "Lyon")
    server.script("large", "The capital of France is Paris")
    gw = gateway_factory(_config(server, tmp_path))
    stream = gw.client().chat.completions.create(
        model="cascade/geo", messages=QUESTION, stream=True
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "The capital of France is Paris"
    )
    assert {c.model for c in chunks} == {"openai/large"}
    assert server.requests_for("large")[0].body.get("stream") is True


def test_tool_calls_are_judged_against_the_tool_schema(
    server: FakeLLMServer, gateway_factory: Any, tmp_path: Path
) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    server.script("small", Reply(tool_calls=[ToolCall("get_weather", {"town": "Paris"})]))
    server.script("large", Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
    config = _config(server, tmp_path, judge={"type": "regex", "pattern": "."})
    gw = gateway_factory(config)
    completion = gw.client().chat.completions.create(
        model="cascade/geo",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=tools,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert completion.model == "large"
    assert server.requests_for("small")[0].body["tools"] == tools


def test_json_mode_escalates_an_answer_that_is_not_json(
    server: FakeLLMServer, gateway_factory: Any, tmp_path: Path
) -> None:
    server.script("small", "the capital is Paris")
    server.script("large", '{"capital": "Paris"}')
    gw = gateway_factory(_config(server, tmp_path))
    completion = gw.client().chat.completions.create(
        model="cascade/geo", messages=QUESTION, response_format={"type": "json_object"}
    )
    assert json.loads(completion.choices[0].message.content or "") == {"capital": "Paris"}
    assert server.requests_for("small")[0].body["response_format"] == {"type": "json_object"}


def test_a_conversation_continues_at_the_tier_that_answered_its_previous_turn(
    server: FakeLLMServer, gateway_factory: Any, tmp_path: Path
) -> None:
    server.script("small", "Lyon")
    server.always("large", "Paris, and its mayor too")
    gw = gateway_factory(_config(server, tmp_path))
    client = gw.client()
    first = client.chat.completions.create(model="cascade/geo", messages=QUESTION)
    assert first.model == "large"
    history = [
        *QUESTION,
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "And who runs Paris?"},
    ]
    raw = client.chat.completions.with_raw_response.create(model="cascade/geo", messages=history)
    assert raw.headers["x-ecocascade-tier"] == "1"
    assert len(server.requests_for("small")) == 1  # the second turn never started at tier 0
    assert server.requests_for("large")[-1].messages[-1]["content"] == "And who runs Paris?"


def test_bad_feedback_takes_the_answer_out_of_the_cache(
    server: FakeLLMServer, gateway_factory: Any, tmp_path: Path
) -> None:
    server.always("small", "Paris")
    gw = gateway_factory(_config(server, tmp_path))
    client = gw.client()
    raw = client.chat.completions.with_raw_response.create(model="cascade/geo", messages=QUESTION)
    request_id = raw.headers["x-ecocascade-request-id"]
    hit = client.chat.completions.with_raw_response.create(model="cascade/geo", messages=QUESTION)
    assert hit.headers["x-ecocascade-cache"] == "exact"
    response = httpx.post(
        f"{gw.base_url}/feedback", json={"request_id": request_id, "verdict": "bad"}
    )
    assert response.status_code == 200 and response.json()["removed"] is True
    after = client.chat.completions.with_raw_response.create(model="cascade/geo", messages=QUESTION)
    assert after.headers["x-ecocascade-cache"] == "miss"
    assert len(server.requests_for("small")) == 2
    unknown = httpx.post(f"{gw.base_url}/feedback", json={"request_id": "nope", "verdict": "bad"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "request_not_found"
    assert 'ecocascade_feedback_total{cascade="geo",removed="true",verdict="bad"} 1.0' in (
        gw.metrics()
    )


def test_rate_limits_and_outages_escalate_and_show_in_the_metrics(
    server: FakeLLMServer, gateway_factory: Any, tmp_path: Path
) -> None:
    server.script("small", Fault.rate_limit(0), Fault.rate_limit(0))  # past its one retry
    server.script("large", "Paris")
    gw = gateway_factory(_config(server, tmp_path))
    completion = gw.client().chat.completions.create(model="cascade/geo", messages=QUESTION)
    assert completion.model == "large"
    metrics = gw.metrics()
    assert (
        'ecocascade_escalations_total{cascade="geo",from_tier="0",reason="rate_limited",'
        'to_tier="1"} 1.0'
    ) in metrics
    assert (
        'ecocascade_requests_total{cache="miss",cascade="geo",model="openai/large",status="ok",'
        'tier="1"} 1.0'
    ) in metrics
    assert 'ecocascade_cost_usd_total{cascade="geo"}' in metrics
    assert 'ecocascade_request_latency_seconds_count{cache="miss",cascade="geo"} 1.0' in metrics


def test_when_every_tier_fails_the_client_gets_an_openai_error(
    server: FakeLLMServer, gateway_factory: Any, tmp_path: Path
) -> None:
    server.always("small", Fault.server_error(500))
    server.always("large", Fault.server_error(503))
    gw = gateway_factory(_config(server, tmp_path))
    with pytest.raises(openai.InternalServerError) as caught:
        gw.client(max_retries=0).chat.completions.create(model="cascade/geo", messages=QUESTION)
    assert caught.value.status_code == 503
    body = caught.value.body
    assert isinstance(body, dict) and body["code"] == "cascade_unresolved"
    assert [a["error"] for a in body["attempts"]] == ["unavailable", "unavailable"]
    server.always("small", "Lyon")
    server.always("large", "Marseille")
    with pytest.raises(openai.UnprocessableEntityError):  # rejected answers: no retry helps
        gw.client(max_retries=0).chat.completions.create(model="cascade/geo", messages=QUESTION)
    stream = gw.client(max_retries=0).chat.completions.create(
        model="cascade/geo", messages=QUESTION, stream=True
    )
    with pytest.raises(openai.APIError) as caught_late:  # the last tier went out live: an event
        for _ in stream:
            pass
    assert "no tier produced an accepted answer" in caught_late.value.message
    assert 'status="unresolved"' in gw.metrics()


def test_an_unknown_cascade_is_a_404(
    server: FakeLLMServer, gateway_factory: Any, tmp_path: Path
) -> None:
    gw = gateway_factory(_config(server, tmp_path))
    with pytest.raises(openai.NotFoundError) as caught:
        gw.client().chat.completions.create(model="cascade/nope", messages=QUESTION)
    assert "cascade/geo" in caught.value.message
    assert [m.id for m in gw.client().models.list()] == ["cascade/geo"]


def test_identical_concurrent_misses_run_the_cascade_once(
    server: FakeLLMServer, gateway_factory: Any, tmp_path: Path
) -> None:
    server.always("small", Fault.timeout(0.5, then=Reply("Paris")))
    gw = gateway_factory(_config(server, tmp_path))
    client = gw.client()

    def ask() -> str:
        raw = client.chat.completions.with_raw_response.create(
            model="cascade/geo", messages=QUESTION
        )
        assert raw.parse().choices[0].message.content == "Paris"
        return raw.headers["x-ecocascade-cost-usd"]

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        costs = list(pool.map(lambda _: ask(), range(6)))
    assert len(server.requests_for("small")) == 1
    assert sorted(float(c) > 0 for c in costs) == [False] * 5 + [True]


def test_a_client_that_goes_away_cancels_the_cascade_and_nothing_is_stored(
    server: FakeLLMServer, gateway_factory: Any, tmp_path: Path
) -> None:
    server.script("small", Fault.timeout(1.0, then=Reply("Lyon")))  # rejected if it got there
    server.always("large", "Paris")
    gw = gateway_factory(_config(server, tmp_path))
    with pytest.raises(openai.APITimeoutError):
        gw.client(max_retries=0, timeout=0.3).chat.completions.create(
            model="cascade/geo", messages=QUESTION
        )
    time.sleep(1.5)  # past the stalled tier: a cascade still running would now ask "large"
    assert server.requests_for("large") == []
    assert 'status="cancelled"' in gw.metrics()
    raw = gw.client().chat.completions.with_raw_response.create(
        model="cascade/geo", messages=QUESTION
    )
    assert raw.headers["x-ecocascade-cache"] == "miss"  # nothing was cached by the cut request


@pytest.mark.slow  # loads the embedded Chroma store and its embedding model
def test_bad_feedback_also_removes_the_recorded_solution(
    server: FakeLLMServer, gateway_factory: Any, tmp_path: Path
) -> None:
    from ecocascade.store.chroma import SolutionStore

    server.always("small", "Paris")
    location = str(tmp_path / "solutions_db")
    config = _config(server, tmp_path, solutions={"location": location, "namespace": "geo"})
    gw = gateway_factory(config)
    raw = gw.client().chat.completions.with_raw_response.create(
        model="cascade/geo", messages=QUESTION
    )
    store = gw.gateway.cascades["geo"].store
    assert isinstance(store, SolutionStore) and store.count() == 1
    response = httpx.post(
        f"{gw.base_url}/feedback",
        json={"request_id": raw.headers["x-ecocascade-request-id"], "verdict": "bad"},
    )
    assert response.json()["removed"] is True
    assert store.count() == 0
