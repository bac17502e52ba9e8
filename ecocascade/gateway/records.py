"""What the gateway tells the world after each request: one frozen record, to every sink.

The gateway emits one :class:`RequestRecord` per chat request (cascade or pass-through, answered
or failed) and one :class:`FeedbackEvent` per ``/v1/feedback`` call, to every registered
:class:`RecordSink`. The Prometheus metrics are one sink; a stats store behind a dashboard is
another. Sinks run after the response has gone out; a sink that raises is logged and skipped,
never fails a request.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "CacheOutcome",
    "Escalation",
    "FeedbackEvent",
    "RecordSink",
    "RequestRecord",
    "RequestStatus",
]

CacheOutcome = Literal["miss", "exact", "semantic"]
RequestStatus = Literal["ok", "unresolved", "error", "cancelled"]
"""``ok``: answered · ``unresolved``: no tier's answer was accepted · ``error``: the request
failed (bad request, admission refused, upstream error of a pass-through model) ·
``cancelled``: the client went away before the answer."""


@dataclass(frozen=True, slots=True)
class Escalation:
    """One step up the ladder: from which tier to which, and why (the failed attempt's error
    kind, e.g. ``rate_limited``, or ``rejected`` when the judge said no)."""

    from_tier: int
    to_tier: int
    from_model: str
    to_model: str
    reason: str


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One chat request as the gateway saw it.

    ``cascade`` is the cascade's name, ``None`` for a pass-through model; ``tier``/``model`` are
    those that answered (for a cache hit: those that originally did); ``cost_usd`` is what this
    request spent on models and judges (``None``: a price is unknown); ``saved_usd`` is the
    estimate of what the ladder's last tier alone would have cost minus ``cost_usd`` (``None``
    when either is unknown); ``key_id`` identifies the API key (never the key itself);
    ``http_status`` is the status the client got (200 for a stream that later sent an error
    event); ``timestamp`` is epoch seconds at the start of the request.
    """

    request_id: str
    key_id: str | None
    cascade: str | None
    model_requested: str
    tier: int | None
    model: str | None
    cache: CacheOutcome
    cost_usd: float | None
    saved_usd: float | None
    escalations: tuple[Escalation, ...]
    latency_s: float
    timestamp: float
    status: RequestStatus
    http_status: int = 200
    stream: bool = False
    shared: bool = False
    """True when a concurrent identical request ran the cascade and this one shared its answer."""
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class FeedbackEvent:
    """A ``/v1/feedback`` verdict on an earlier answer; ``removed`` says whether a bad answer was
    found and taken out of the cache and the solution store."""

    request_id: str
    verdict: Literal["good", "bad"]
    cascade: str | None
    key_id: str | None
    timestamp: float
    removed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@runtime_checkable
class RecordSink(Protocol):
    """Receives every request record and feedback event the gateway emits."""

    async def on_request(self, record: RequestRecord) -> None: ...

    async def on_feedback(self, event: FeedbackEvent) -> None: ...
