"""The gateway at scale: 3 replicas (`ecocascade serve --workers 3`) on one redis-server and one
`chroma run` server, a faulty upstream, the OpenAI SDK as the client.

    PYTHONPATH=. nice python evals/bench_gateway_scale.py [--requests 2000] [--out PATH.md]

Phases (real processes throughout; the upstream is evals/gateway_load.py's function models):

A. 2,000 requests, 32 in flight, over 400 distinct questions (skewed, so many repeat), three API
   keys — one with a $0.02 daily budget — with upstream faults on 30% of model calls. Counted:
   requests lost (no answer and no OpenAI error body), cache entries and solution records that
   are not a verified answer (the judge's pattern and the true sum), duplicate solution records,
   the budgeted key's spend against its budget plus one request's estimate.
B. 400 more requests (60 new questions); after 200 have finished one replica is killed with
   SIGKILL. Clients use the OpenAI SDK's own retries (max_retries=4). Counted: lost requests;
   unverified entries again.
C. Cache-hit throughput with 1 and 3 workers: 10 s of already-cached questions, 64 in flight,
   from a plain httpx client (a gateway without the solution store, so workers start fast).

The machine has 2 shared cores: timings are noisy and the client, Redis, Chroma, the upstream
and the replicas all compete for them.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import platform
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gateway_load as gl

from ecocascade.gateway.apikeys import hash_key
from ecocascade.gateway.limits import RedisLimits, period_bounds
from ecocascade.store.records import normalise_query
from ecocascade.testing.services import ChromaServer, RedisServer, free_port

KEYS = {"team-a": "eco-team-a", "team-b": "eco-team-b", "capped": "eco-capped"}
BUDGET_USD = 0.02
VERIFIED = re.compile(r"^\d+$")


def key_specs() -> list[dict[str, Any]]:
    return [
        {"id": "team-a", "sha256": hash_key(KEYS["team-a"])},
        {"id": "team-b", "sha256": hash_key(KEYS["team-b"])},
        {"id": "capped", "sha256": hash_key(KEYS["capped"]), "budget": {"usd": BUDGET_USD}},
    ]


def verified(query: str, answer: str) -> bool:
    return bool(VERIFIED.match(answer.strip())) and int(answer) == gl.truth(query)


def audit(redis_url: str, chroma_url: str) -> dict[str, Any]:
    """What is stored: cache entries and solution records, and how many are not verified."""
    import redis

    from ecocascade.store.chroma import SolutionStore

    client = redis.Redis.from_url(redis_url)
    names = list(client.scan_iter("ecocascade:cache:e:*", count=1000))
    entries = [json.loads(raw) for raw in (client.mget(names) if names else []) if raw]
    client.close()
    store = SolutionStore(chroma_url)
    records = list(store.iter_records(check_embedder=False))
    keys = collections.Counter((r.namespace, normalise_query(r.query)) for r in records)
    return {
        "cache_entries": len(entries),
        "cache_unverified": sum(not verified(e["query"], e["answer"]) for e in entries),
        "cache_namespaces": len({e["namespace"] for e in entries}),
        "solution_records": len(records),
        "solutions_unverified": sum(not verified(r.query, r.solution) for r in records),
        "solution_duplicates": sum(n - 1 for n in keys.values() if n > 1),
    }


def summarise(outcomes: list[gl.Outcome]) -> dict[str, Any]:
    statuses = collections.Counter(
        f"{o.status} {o.code}" if o.code else str(o.status) for o in outcomes if o.status
    )
    lost = [o for o in outcomes if o.status is None]
    wrong = [o for o in outcomes if o.status == 200 and not verified(o.query, o.answer or "")]
    return {
        "requests": len(outcomes),
        "lost": len(lost),
        "lost_examples": [o.error for o in lost[:3]],
        "answered": sum(o.status == 200 for o in outcomes),
        "answered_unverified": len(wrong),
        "statuses": dict(statuses.most_common()),
        "cache": dict(collections.Counter(o.cache for o in outcomes if o.status == 200)),
    }


async def hits_throughput(port: int, queries: list[str], seconds: float, inflight: int) -> float:
    import httpx

    body = [
        json.dumps({"model": "cascade/support", "messages": [{"role": "user", "content": q}]})
        for q in queries
    ]
    headers = {"Authorization": f"Bearer {KEYS['team-b']}", "Content-Type": "application/json"}
    done = 0
    bad = 0
    stop_at = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=inflight, max_keepalive_connections=inflight)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits,
                                 timeout=120) as client:  # fmt: skip

        async def worker(i: int) -> None:
            nonlocal done, bad
            n = i
            while time.monotonic() < stop_at:
                try:
                    reply = await client.post(
                        "/v1/chat/completions", content=body[n % len(body)], headers=headers
                    )
                except httpx.TimeoutException:  # a miss stuck behind upstream faults (warm-up)
                    bad += 1
                    continue
                finally:
                    n += inflight
                if reply.status_code == 200 and reply.headers.get("x-ecocascade-cache") == "exact":
                    done += 1
                else:
                    bad += 1

        started = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(inflight)))
        elapsed = time.monotonic() - started
    if bad:
        print(f"  ({bad} replies were not exact cache hits)", flush=True)
    return done / elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--kill-requests", type=int, default=400)
    parser.add_argument("--fault-rate", type=float, default=0.30)
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--skip-load", action="store_true", help="phases B and C only")
    parser.add_argument("--only-scaling", action="store_true", help="phase C only")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    parser.add_argument("--out", type=Path, default=gl.ROOT / "evals" / "gateway" / "scale.md")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="eco-scale-"))
    results: dict[str, Any] = {}
    t0 = time.monotonic()
    with RedisServer() as redis_server, ChromaServer(work / "chroma") as chroma:
        upstream_port, port = free_port(), free_port()
        upstream = gl.start_upstream(upstream_port, args.fault_rate)
        try:
            _run(args, results, work, redis_server, chroma, upstream_port, port)
        finally:
            gl.stop(upstream)
    results["total_s"] = time.monotonic() - t0
    results["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    (args.out.with_suffix(".json")).write_text(json.dumps(results, indent=1, default=str))
    print(f"wrote {args.out.with_suffix('.json')}")
    if args.keep:
        print(f"logs in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _run(
    args: argparse.Namespace,
    results: dict[str, Any],
    work: Path,
    redis_server: RedisServer,
    chroma: ChromaServer,
    upstream_port: int,
    port: int,
) -> None:
    if not args.only_scaling:
        _load_and_kill(args, results, work, redis_server, chroma, upstream_port, port)
    _scaling(args, results, work, redis_server, upstream_port, port)


def _load_and_kill(
    args: argparse.Namespace,
    results: dict[str, Any],
    work: Path,
    redis_server: RedisServer,
    chroma: ChromaServer,
    upstream_port: int,
    port: int,
) -> None:
    config = gl.gateway_config(upstream_port, redis_server.url, chroma.url, key_specs())
    config_path = work / "gateway.yaml"
    config_path.write_text(yaml.safe_dump(config))
    gateway = gl.start_gateway(config_path, port, 3, work / "gateway.log")
    base = f"http://127.0.0.1:{port}/v1"
    try:
        if not args.skip_load:
            # -- A: 2,000 requests, 30% upstream faults ---------------------------------------
            print(f"A: {args.requests} requests, {args.fault_rate:.0%} upstream faults, 3 "
                  "replicas", flush=True)  # fmt: skip
            jobs = gl.jobs_for(args.requests, list(KEYS), distinct=400, seed=1,
                               cascades=["support", "math"])  # fmt: skip
            load = gl.Load(base, KEYS, concurrency=32, max_retries=4)
            started = time.monotonic()
            asyncio.run(load.run(jobs))
            results["A"] = {**summarise(load.outcomes), "wall_s": time.monotonic() - started}
            results["A"]["stored"] = audit(redis_server.url, chroma.url)
            capped = [o for o in load.outcomes if o.key == "capped"]
            limits = RedisLimits(redis_server.url)
            period, _ = period_bounds("day")
            usage = asyncio.run(limits.usage("capped", period))
            results["A"]["budget"] = {
                "budget_usd": BUDGET_USD,
                "ledger_spent_usd": usage.spent_usd,
                "ledger_reserved_usd": usage.reserved_usd,
                "answers_cost_usd": sum(o.cost_usd for o in capped if o.status == 200),
                "answered": sum(o.status == 200 for o in capped),
                "refused_budget": sum(o.code == "budget_exceeded" for o in capped),
                "max_estimate_usd": _max_estimate(config),
            }
            print(json.dumps(results["A"], indent=1), flush=True)

        # -- B: SIGKILL one replica mid-load ----------------------------------------------
        workers = gl.children(gateway.pid)
        victim = workers[0]
        print(f"B: {args.kill_requests} requests; SIGKILL replica pid {victim} of "
              f"{workers} after 200", flush=True)  # fmt: skip
        killed = threading.Event()

        def progress(done: int) -> None:
            if done >= 200 and not killed.is_set():
                killed.set()
                os.kill(victim, signal.SIGKILL)

        jobs = gl.jobs_for(args.kill_requests, ["team-a", "team-b"], distinct=60, seed=2,
                           cascades=["support", "math"])  # fmt: skip
        load = gl.Load(base, KEYS, concurrency=32, max_retries=4)
        started = time.monotonic()
        asyncio.run(load.run(jobs, on_progress=progress))
        results["B"] = {**summarise(load.outcomes), "wall_s": time.monotonic() - started}
        results["B"]["killed_pid"] = victim
        results["B"]["workers_after"] = gl.children(gateway.pid)
        results["B"]["stored"] = audit(redis_server.url, chroma.url)
        print(json.dumps(results["B"], indent=1), flush=True)
    finally:
        gl.stop(gateway)


def _scaling(
    args: argparse.Namespace,
    results: dict[str, Any],
    work: Path,
    redis_server: RedisServer,
    upstream_port: int,
    port: int,
) -> None:
    """C: cache-hit throughput, 1 → 3 workers (no solution store: nothing to load at start-up;
    cache hits never reach it anyway)."""
    results["C"] = {}
    upstream_port = free_port()  # a fault-free upstream: a miss must not hang in the timed part
    upstream = gl.start_upstream(upstream_port, 0.0)
    try:
        _hits(args, results, work, redis_server, upstream_port, port)
    finally:
        gl.stop(upstream)


def _hits(
    args: argparse.Namespace,
    results: dict[str, Any],
    work: Path,
    redis_server: RedisServer,
    upstream_port: int,
    port: int,
) -> None:
    config = gl.gateway_config(upstream_port, redis_server.url, None, key_specs())
    config_path = work / "gateway-hits.yaml"
    config_path.write_text(yaml.safe_dump(config))
    cached = [gl.question(i, i + 1) for i in range(1, 41)]
    for n in () if args.skip_scaling else (1, 3):
        gateway = gl.start_gateway(config_path, port, n, work / "gateway.log")
        try:
            asyncio.run(hits_throughput(port, cached, 3, 16))  # fills the cache, warms workers
            rate = asyncio.run(hits_throughput(port, cached, 10, 64))
        finally:
            gl.stop(gateway)
        results["C"][n] = rate
        print(f"C: {n} worker(s): {rate:.0f} cache hits/s", flush=True)


def _max_estimate(config: dict[str, Any]) -> float:
    """The gateway's worst-case estimate for one of these questions (every tier, max_tokens)."""
    from ecocascade.config.schema import CascadeConfig
    from ecocascade.gateway.app import _estimate
    from ecocascade.types import ChatRequest

    os.environ.setdefault("UPSTREAM_KEY", "sk-fake")
    cascade = CascadeConfig.model_validate(
        {**config["cascades"]["support"], "solutions": None}
    ).build()
    request = ChatRequest.from_query(gl.question(999, 999))
    return float(_estimate(cascade, request, 0) or 0.0)


if __name__ == "__main__":
    raise SystemExit(main())
