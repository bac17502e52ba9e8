"""The numbers behind the savings dashboard: request records and feedback counted in time buckets.

Every :class:`~ecocascade.gateway.records.RequestRecord` adds to a one-minute and a one-hour
bucket (fields are ``metric · key · cascade · detail`` → an integer; money in nano-USD)::

    n      where it was resolved: c:exact, c:semantic, t:<tier>:<model>, p:<model>, x:<status>
    cost   what it spent                      base   what the last tier alone would have cost
    esc    one escalation, detail = reason    lat    latency bucket (upper bound in ms)
    fb     a feedback verdict: good | bad (a "bad" answer had been accepted: a false accept)

:class:`RedisStats` keeps the buckets in Redis hashes (``{prefix}:stats:m:<minute>`` for two
days, ``{prefix}:stats:h:<hour>`` for 35), so every replica adds to, and the dashboard of any
replica reads, the same numbers; :class:`MemoryStats` keeps them in this process.
:meth:`snapshot` sums a window of buckets into the JSON the dashboard draws.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from ecocascade.gateway._redis import RedisConnection
from ecocascade.gateway.records import FeedbackEvent, RequestRecord

__all__ = ["MemoryStats", "RedisStats", "StatsSink", "StatsStore", "summarise"]

NANO = 1_000_000_000
SEP = "\x1f"
ANONYMOUS = "(no key)"
PASSTHROUGH = "(pass-through)"
LATENCY_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 120_000)
_GRAINS = {"m": (60, 2 * 86_400), "h": (3600, 35 * 86_400)}  # bucket seconds, kept seconds


def _usd(value: float | None) -> int:
    return 0 if value is None else round(value * NANO)


def record_fields(record: RequestRecord) -> dict[str, int]:
    """The bucket increments of one request."""
    key = record.key_id or ANONYMOUS
    cascade = record.cascade or PASSTHROUGH
    if record.status != "ok":
        where = f"x:{record.status}"
    elif record.cache != "miss":
        where = f"c:{record.cache}"
    elif record.cascade is None:
        where = f"p:{record.model or record.model_requested}"
    else:
        where = f"t:{record.tier}:{record.model or '?'}"
    dims = f"{key}{SEP}{cascade}"
    fields: dict[str, int] = defaultdict(int)
    fields[f"n{SEP}{dims}{SEP}{where}"] += 1
    if record.cost_usd:
        fields[f"cost{SEP}{dims}{SEP}"] += _usd(record.cost_usd)
    if record.cost_usd is not None and record.saved_usd is not None:
        fields[f"base{SEP}{dims}{SEP}"] += _usd(record.cost_usd + record.saved_usd)
        fields[f"priced{SEP}{dims}{SEP}"] += 1
    for step in record.escalations:
        fields[f"esc{SEP}{dims}{SEP}{step.reason}"] += 1
    bound = next((b for b in LATENCY_MS if record.latency_s * 1000 <= b), 0)
    fields[f"lat{SEP}{dims}{SEP}{bound}"] += 1
    return dict(fields)


def feedback_fields(event: FeedbackEvent) -> dict[str, int]:
    dims = f"{event.key_id or ANONYMOUS}{SEP}{event.cascade or PASSTHROUGH}"
    return {f"fb{SEP}{dims}{SEP}{event.verdict}": 1}


class StatsStore(Protocol):
    """Adds bucket increments; returns the buckets of a time range."""

    async def add(self, at: float, fields: Mapping[str, int]) -> None: ...

    async def buckets(self, grain: str, start: int, end: int) -> list[tuple[int, dict[str, int]]]:
        """``(bucket start, fields)`` for every bucket of ``grain`` ("m"/"h") with
        ``start <= bucket start < end`` (epoch seconds); empty buckets may be left out."""
        ...

    async def close(self) -> None: ...


class MemoryStats:
    """Buckets of this process; old ones are dropped as new ones arrive."""

    def __init__(self) -> None:
        self._buckets: dict[str, dict[int, dict[str, int]]] = {g: {} for g in _GRAINS}

    async def add(self, at: float, fields: Mapping[str, int]) -> None:
        for grain, (size, keep) in _GRAINS.items():
            start = int(at // size * size)
            bucket = self._buckets[grain].setdefault(start, defaultdict(int))
            for name, value in fields.items():
                bucket[name] += value
            for old in [b for b in self._buckets[grain] if b < at - keep]:
                del self._buckets[grain][old]

    async def buckets(self, grain: str, start: int, end: int) -> list[tuple[int, dict[str, int]]]:
        return sorted(
            (b, dict(fields)) for b, fields in self._buckets[grain].items() if start <= b < end
        )

    async def close(self) -> None:
        return None


class RedisStats:
    """Buckets in Redis, shared by every replica: one pipelined round trip per record."""

    def __init__(
        self, url: str, *, prefix: str = "ecocascade:gw", socket_timeout_s: float = 2.0
    ) -> None:
        self.connection = RedisConnection(url, prefix=prefix, socket_timeout_s=socket_timeout_s)
        self.prefix = prefix

    def _name(self, grain: str, start: int) -> str:
        return f"{self.prefix}:stats:{grain}:{start}"

    async def add(self, at: float, fields: Mapping[str, int]) -> None:
        client = await self.connection.client()
        async with client.pipeline(transaction=False) as pipe:
            for grain, (size, keep) in _GRAINS.items():
                name = self._name(grain, int(at // size * size))
                for field, value in fields.items():
                    pipe.hincrby(name, field, value)
                pipe.expire(name, keep)
            await pipe.execute()

    async def buckets(self, grain: str, start: int, end: int) -> list[tuple[int, dict[str, int]]]:
        size = _GRAINS[grain][0]
        first = math.ceil(start / size) * size
        starts = list(range(first, end, size))
        client = await self.connection.client()
        async with client.pipeline(transaction=False) as pipe:
            for bucket in starts:
                pipe.hgetall(self._name(grain, bucket))
            raws = await pipe.execute()
        return [
            (bucket, {k.decode(): int(v) for k, v in raw.items()})
            for bucket, raw in zip(starts, raws, strict=True)
            if raw
        ]

    async def close(self) -> None:
        await self.connection.close()


class StatsSink:
    """The :class:`~ecocascade.gateway.records.RecordSink` that feeds a :class:`StatsStore`."""

    def __init__(self, store: StatsStore) -> None:
        self.store = store

    async def on_request(self, record: RequestRecord) -> None:
        await self.store.add(record.timestamp, record_fields(record))

    async def on_feedback(self, event: FeedbackEvent) -> None:
        await self.store.add(event.timestamp, feedback_fields(event))

    async def snapshot(self, window_s: float, *, now: float | None = None) -> dict[str, Any]:
        """The dashboard's JSON for the last ``window_s`` seconds."""
        now = time.time() if now is None else now
        grain = "m" if window_s <= 6 * 3600 else "h"
        size = _GRAINS[grain][0]
        end = int(now // size * size) + size
        start = end - max(1, math.ceil(window_s / size)) * size
        buckets = await self.store.buckets(grain, start, end)
        return summarise(buckets, start=start, end=end, bucket_s=size, now=now)


def _percentile(histogram: Mapping[int, int], q: float) -> float | None:
    total = sum(histogram.values())
    if not total:
        return None
    seen = 0
    for bound in sorted(histogram, key=lambda b: b or math.inf):
        seen += histogram[bound]
        if seen >= q * total:
            return float(bound) if bound else None
    return None


def _blank() -> dict[str, Any]:
    return {
        "requests": 0,
        "ok": 0,
        "failed": 0,
        "cache_hits": 0,
        "cost_nusd": 0,
        "base_nusd": 0,
        "priced": 0,
        "escalations": 0,
        "good": 0,
        "bad": 0,
    }


def _finish(row: dict[str, Any]) -> dict[str, Any]:
    cost, base = row.pop("cost_nusd") / NANO, row.pop("base_nusd") / NANO
    row["cost_usd"] = cost
    row["baseline_usd"] = base
    row["saved_usd"] = base - cost if row["priced"] else None
    row["savings_pct"] = round(100 * (base - cost) / base, 1) if base > 0 else None
    row["cache_rate"] = round(row["cache_hits"] / row["ok"], 4) if row["ok"] else None
    row["false_accept_rate"] = round(row["bad"] / row["ok"], 4) if row["ok"] else None
    return row


def summarise(
    buckets: Iterable[tuple[int, Mapping[str, int]]],
    *,
    start: int,
    end: int,
    bucket_s: int,
    now: float,
) -> dict[str, Any]:
    """Sum ``buckets`` into totals, a time series, and per-key / per-cascade breakdowns."""
    totals = _blank()
    per_key: dict[str, dict[str, Any]] = defaultdict(_blank)
    per_cascade: dict[str, dict[str, Any]] = defaultdict(_blank)
    resolved: dict[str, int] = defaultdict(int)
    reasons: dict[str, int] = defaultdict(int)
    latency: dict[int, int] = defaultdict(int)
    series: dict[int, dict[str, Any]] = {}
    for bucket, fields in buckets:
        point = series.setdefault(
            bucket, {"t": bucket, "resolved": defaultdict(int), "cost_nusd": 0, "base_nusd": 0}
        )
        for name, value in fields.items():
            metric, key, cascade, detail = name.split(SEP)
            rows = (totals, per_key[key], per_cascade[cascade])
            if metric == "n":
                point["resolved"][detail] += value
                resolved[detail] += value
                for row in rows:
                    row["requests"] += value
                    if detail.startswith("x:"):
                        row["failed"] += value
                    else:
                        row["ok"] += value
                    if detail.startswith("c:"):
                        row["cache_hits"] += value
            elif metric in ("cost", "base"):
                point[f"{metric}_nusd"] += value
                for row in rows:
                    row[f"{metric}_nusd"] += value
            elif metric == "priced":
                for row in rows:
                    row["priced"] += value
            elif metric == "esc":
                reasons[detail] += value
                for row in rows:
                    row["escalations"] += value
            elif metric == "fb":
                for row in rows:
                    row[detail] += value
            elif metric == "lat":
                latency[int(detail)] += value
    points = []
    for bucket in range(start, end, bucket_s):
        found = series.get(bucket)
        points.append(
            {
                "t": bucket,
                "resolved": dict(found["resolved"]) if found else {},
                "cost_usd": found["cost_nusd"] / NANO if found else 0.0,
                "baseline_usd": found["base_nusd"] / NANO if found else 0.0,
            }
        )
    summary = _finish(totals)
    summary["latency_p50_ms"] = _percentile(latency, 0.5)
    summary["latency_p95_ms"] = _percentile(latency, 0.95)
    return {
        "generated_at": now,
        "window": {"start": start, "end": end, "bucket_s": bucket_s},
        "totals": summary,
        "resolved": dict(sorted(resolved.items(), key=lambda kv: -kv[1])),
        "escalation_reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        "series": points,
        "keys": sorted(
            ({"key": k, **_finish(v)} for k, v in per_key.items()), key=lambda r: -r["requests"]
        ),
        "cascades": sorted(
            ({"cascade": c, **_finish(v)} for c, v in per_cascade.items()),
            key=lambda r: -r["requests"],
        ),
    }
