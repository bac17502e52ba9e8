"""Prometheus metrics, as a record sink: what ``GET /metrics`` shows.

Every series is labelled by ``cascade`` (``passthrough`` for pass-through models). Requests are
counted by where they were resolved (``tier``, ``cache``: miss/exact/semantic) and ``status``;
escalations by ``from_tier``/``to_tier`` and ``reason`` (the failed attempt's error kind, or
``judge_rejected``). ``cost_usd`` is what was spent, ``last_tier_cost_usd`` what the ladder's
last tier alone would have cost, ``saved_usd`` the difference (a gauge: it goes down when
escalating cost more than the last tier alone would have; all only where known). Latency is a
histogram per cascade and cache outcome. Each gateway has its own registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecocascade.gateway.records import FeedbackEvent, RequestRecord

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["CONTENT_TYPE", "PrometheusSink"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_PASSTHROUGH = "passthrough"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class PrometheusSink:
    """Counts every :class:`RequestRecord` and :class:`FeedbackEvent` into Prometheus series."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "ecocascade_requests",
            "Chat requests, by cascade, answering tier and model, cache outcome and status.",
            ["cascade", "tier", "model", "cache", "status"],
            registry=r,
        )
        self.escalations = Counter(
            "ecocascade_escalations",
            "Steps up the ladder, by cascade, from/to tier and reason.",
            ["cascade", "from_tier", "to_tier", "reason"],
            registry=r,
        )
        self.cost = Counter(
            "ecocascade_cost_usd", "USD spent on models and judges.", ["cascade"], registry=r
        )
        self.baseline = Counter(
            "ecocascade_last_tier_cost_usd",
            "USD the ladder's last tier alone would have cost (estimated per request).",
            ["cascade"],
            registry=r,
        )
        # net: a request that escalated to the last tier costs more than the last tier alone
        self.saved = Gauge(
            "ecocascade_saved_usd",
            "Net USD saved versus the ladder's last tier alone (estimated; can go down).",
            ["cascade"],
            registry=r,
        )
        self.unpriced = Counter(
            "ecocascade_unpriced_requests",
            "Requests whose cost is unknown (a model without a price).",
            ["cascade"],
            registry=r,
        )
        self.latency = Histogram(
            "ecocascade_request_latency_seconds",
            "Time from request to the last byte of the answer.",
            ["cascade", "cache"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.feedback = Counter(
            "ecocascade_feedback",
            "Feedback verdicts, and whether a bad answer was removed.",
            ["cascade", "verdict", "removed"],
            registry=r,
        )

    async def on_request(self, record: RequestRecord) -> None:
        self.observe(record)

    def observe(self, record: RequestRecord) -> None:
        cascade = record.cascade or _PASSTHROUGH
        tier = "" if record.tier is None else str(record.tier)
        self.requests.labels(cascade, tier, record.model or "", record.cache, record.status).inc()
        for step in record.escalations:
            self.escalations.labels(
                cascade, str(step.from_tier), str(step.to_tier), step.reason
            ).inc()
        if record.cost_usd is None:
            self.unpriced.labels(cascade).inc()
        elif record.cost_usd > 0:
            self.cost.labels(cascade).inc(record.cost_usd)
        if record.saved_usd is not None and record.cost_usd is not None:
            self.saved.labels(cascade).inc(record.saved_usd)
            self.baseline.labels(cascade).inc(max(0.0, record.saved_usd + record.cost_usd))
        self.latency.labels(cascade, record.cache).observe(record.latency_s)

    async def on_feedback(self, event: FeedbackEvent) -> None:
        cascade = event.cascade or _PASSTHROUGH
        self.feedback.labels(cascade, event.verdict, str(event.removed).lower()).inc()

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
