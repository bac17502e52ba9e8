"""Response cache: hit latency (SQLite, Redis, semantic) and hit / false-hit rates on our pair set.

    .venv/bin/python evals/bench_cache.py [--lookups 2000] [--no-redis]

1. Exact-hit latency: ``ResponseCache.lookup`` of a cached query, in-process — SQLite file and a
   real ``redis-server`` on loopback (started here). Targets: p50 ≤ 1 ms SQLite, ≤ 2 ms Redis.
2. Semantic-hit latency: lookup of a paraphrase in a semantic namespace holding 1,000 cached
   queries, including embedding the query. Target p50 ≤ 20 ms.
3. Quality on ``evals/data/cache_pairs.jsonl`` (26 paraphrases, 32 near-misses, written by us):
   for several thresholds, with and without the guards, the hit rate on paraphrases and the
   false-hit rate on near-misses (a false hit serves a wrong answer).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from ecocascade.cache import ResponseCache
from ecocascade.cache.sqlite_backend import SQLiteBackend
from ecocascade.store import SentenceTransformerEmbedder

PAIRS = Path(__file__).parent / "data" / "cache_pairs.jsonl"
FP = "bench-fingerprint"


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1]


async def exact_latency(cache: ResponseCache, n: int) -> list[float]:
    queries = [f"What is fact number {i}?" for i in range(200)]
    for q in queries:
        await cache.store(q, namespace="bench", fingerprint=FP, answer="42", model="m", tier=0)
    times = []
    for i in range(n):
        q = queries[i % len(queries)]
        t0 = time.perf_counter()
        hit, _ = await cache.lookup(q, namespace="bench", fingerprint=FP)
        times.append(time.perf_counter() - t0)
        assert hit is not None and hit.kind == "exact"
    return times


async def semantic_latency(embedder: SentenceTransformerEmbedder, workdir: Path) -> list[float]:
    cache = ResponseCache(
        SQLiteBackend(workdir / "semantic.sqlite3"), semantic_namespaces={"sem"}, embedder=embedder
    )
    cities = ["Paris", "Rome", "Lima", "Oslo", "Cairo", "Delhi", "Seoul", "Perth", "Quito", "Accra"]
    stored = [
        f"What is the population of {c} in year {y}?" for c in cities for y in range(1900, 2000)
    ]
    vectors = await embedder.embed(stored)
    now = time.time()
    from ecocascade.cache.base import CacheEntry

    for q, v in zip(stored, vectors, strict=True):
        await cache.backend.put(
            CacheEntry(
                key=cache.key(q, "sem", FP), namespace="sem", fingerprint=FP, query=q,
                answer="a number", model="m", tier=0, expires_at=now + 3600, vector=v,
            )
        )  # fmt: skip
    # A comma defeats exact matching (normalisation keeps it) but not the embedding.
    probes = [
        f"What is the population of {c}, in year {1900 + i}?" for i, c in enumerate(cities * 5)
    ]
    times = []
    for q in probes:
        t0 = time.perf_counter()
        hit, _ = await cache.lookup(q, namespace="sem", fingerprint=FP)
        times.append(time.perf_counter() - t0)
        assert hit is not None and hit.kind == "semantic", (q, hit)
    return times


async def quality(embedder: SentenceTransformerEmbedder) -> list[dict[str, object]]:
    from ecocascade.cache.guards import guard_mismatch, is_time_sensitive

    pairs = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]
    a = await embedder.embed([p["cached"] for p in pairs])
    b = await embedder.embed([p["query"] for p in pairs])
    sims = [sum(x * y for x, y in zip(u, v, strict=True)) for u, v in zip(a, b, strict=True)]
    rows = []
    for threshold in (0.80, 0.85, 0.90, 0.95):
        for guarded in (False, True):
            hits = false_hits = 0
            false_examples = []
            for pair, sim in zip(pairs, sims, strict=True):
                served = sim >= threshold
                if guarded:
                    served = served and not is_time_sensitive(pair["query"])
                    served = served and guard_mismatch(pair["query"], pair["cached"]) is None
                if served and pair["same_answer"]:
                    hits += 1
                elif served:
                    false_hits += 1
                    false_examples.append(f"{pair['cached']} → {pair['query']} ({sim:.3f})")
            n_para = sum(p["same_answer"] for p in pairs)
            rows.append(
                {
                    "threshold": threshold,
                    "guards": guarded,
                    "paraphrase_hit_rate": round(hits / n_para, 3),
                    "near_miss_false_hit_rate": round(false_hits / (len(pairs) - n_para), 3),
                    "false_hits": false_examples,
                }
            )
    return rows


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as c:
                c.sendall(b"PING\r\n")
                if c.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


async def main_async(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    embedder = SentenceTransformerEmbedder()
    await embedder.embed(["warm up"])
    results: dict[str, object] = {}
    try:
        sqlite_cache = ResponseCache(SQLiteBackend(workdir / "exact.sqlite3"))
        t = await exact_latency(sqlite_cache, args.lookups)
        results["exact_sqlite_ms"] = {
            "p50": round(pct(t, 50) * 1e3, 3),
            "p95": round(pct(t, 95) * 1e3, 3),
        }
        if not args.no_redis:
            proc, url = start_redis(workdir)
            try:
                redis_cache = ResponseCache(url)
                t = await exact_latency(redis_cache, args.lookups)
                await redis_cache.close()
                results["exact_redis_ms"] = {
                    "p50": round(pct(t, 50) * 1e3, 3), "p95": round(pct(t, 95) * 1e3, 3)
                }  # fmt: skip
            finally:
                proc.terminate()
                proc.wait(5)
        t = await semantic_latency(embedder, workdir)
        results["semantic_hit_ms_1000_entries"] = {
            "p50": round(pct(t, 50) * 1e3, 2), "p95": round(pct(t, 95) * 1e3, 2)
        }  # fmt: skip
        results["quality"] = await quality(embedder)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(results, indent=1))
    print("\nthreshold guards paraphrase-hit near-miss-false-hit")
    for row in results["quality"]:  # type: ignore[union-attr]
        print(
            f"{row['threshold']:9.2f} {'on ' if row['guards'] else 'off'}"
            f" {row['paraphrase_hit_rate']:14.3f} {row['near_miss_false_hit_rate']:20.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--no-redis", action="store_true")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
