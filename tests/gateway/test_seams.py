"""The plug points another deployment replaces: admission (admit → settle) and record sinks."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import openai
import pytest

from ecocascade.gateway import (
    Admission,
    FeedbackEvent,
    GatewayError,
    RecordSink,
    RequestRecord,
    Reservation,
)
from ecocascade.testing import FakeLLMServer

from .conftest import tier


class KeyBudget:
    """Admits key "rich", refuses "broke" with a 429, and remembers what was settled."""

    def __init__(self) -> None:
        self.admitted: list[tuple[str | None, str, float | None]] = []
        self.settled: list[tuple[Reservation, float | None]] = []

    async def admit(
        self, api_key: str | None, cascade_name: str, estimate_usd: float | None
    ) -> Reservation:
        self.admitted.append((api_key, cascade_name, estimate_usd))
        if api_key == "broke":
            raise GatewayError(429, "budget of key broke exhausted", code="budget_exceeded")
        if api_key != "rich":
            raise GatewayError(401, "unknown API key", code="invalid_api_key")
        return Reservation(key_id="key-rich", cascade=cascade_name, estimate_usd=estimate_usd)

    async def settle(self, reservation: Reservation, actual_usd: float | None) -> None:
        self.settled.append((reservation, actual_usd))


class Collect:
    def __init__(self) -> None:
        self.records: list[RequestRecord] = []
        self.feedback: list[FeedbackEvent] = []

    async def on_request(self, record: RequestRecord) -> None:
        self.records.append(record)

    async def on_feedback(self, event: FeedbackEvent) -> None:
        self.feedback.append(event)


def _wait_for(predicate: Any) -> None:
    deadline = time.monotonic() + 5
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_admission_refusals_are_openai_errors_and_never_reach_upstream(
    server: FakeLLMServer, gateway_factory: Any
) -> None:
    server.always("small", "hello")
    budget, sink = KeyBudget(), Collect()
    assert isinstance(budget, Admission) and isinstance(sink, RecordSink)
    gw = gateway_factory(
        {"models": {"small": tier(server, "small")}}, admission=budget, sinks=[sink]
    )
    client = gw.client(max_retries=0)
    client.api_key = "broke"
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="small", messages=[{"role": "user", "content": "x"}])
    assert caught.value.code == "budget_exceeded"
    client.api_key = "stranger"
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="small", messages=[{"role": "user", "content": "x"}])
    assert server.requests == []
    _wait_for(lambda: len(sink.records) == 2)
    assert [(r.status, r.http_status) for r in sink.records] == [("error", 429), ("error", 401)]
    assert budget.settled == []  # nothing was reserved


def test_an_admitted_call_is_settled_with_its_cost_and_recorded_under_its_key(
    server: FakeLLMServer, gateway_factory: Any
) -> None:
    server.always("small", "hello there")
    budget, sink = KeyBudget(), Collect()
    gw = gateway_factory(
        {"models": {"small": tier(server, "small")}}, admission=budget, sinks=[sink]
    )
    client = gw.client()
    client.api_key = "rich"
    client.chat.completions.create(model="small", messages=[{"role": "user", "content": "x"}])
    _wait_for(lambda: budget.settled and sink.records)
    ((reservation, actual),) = budget.settled
    assert reservation.key_id == "key-rich" and actual is not None and actual > 0
    (record,) = sink.records
    assert record.key_id == "key-rich" and record.status == "ok" and record.cost_usd == actual
    assert record.model_requested == "small" and record.cascade is None


async def test_a_failing_sink_never_fails_a_request(
    server: FakeLLMServer, gateway_factory: Any
) -> None:
    class Broken:
        async def on_request(self, record: RequestRecord) -> None:
            raise RuntimeError("stats store down")

        async def on_feedback(self, event: FeedbackEvent) -> None:
            raise RuntimeError("stats store down")

    server.always("small", "fine")
    gw = gateway_factory({"models": {"small": tier(server, "small")}}, sinks=[Broken()])
    completion = await asyncio.to_thread(
        gw.client().chat.completions.create,
        model="small",
        messages=[{"role": "user", "content": "x"}],
    )
    assert completion.choices[0].message.content == "fine"
