"""Solution store: retrieval latency at 1k/10k/100k records, embedded and server; recording rate.

    .venv/bin/python evals/bench_store.py [--sizes 1000,10000,100000] [--queries 200]
                                          [--backends embedded,server]

Retrieval = what the cascade does per query: embed the query (all-MiniLM-L6-v2, real) and search
the top-1 in a namespace. Stored vectors: 2,000 real embeddings of generated queries, and beyond
that copies of them plus small Gaussian noise, re-normalised — clustered like real data, without
spending minutes embedding 100k texts (search cost depends on the vectors, not on where they came
from). Recording = ``SolutionStore.record`` one by one (real embedding + upsert), the cascade's
path. Prints p50/p95 per size and backend; the target is p50 ≤ 15 ms and p95 ≤ 40 ms at 100k,
embedded, on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from ecocascade.store import SentenceTransformerEmbedder, SolutionRecord, SolutionStore

CITIES = ["Paris", "Rome", "Tokyo", "Lima", "Oslo", "Cairo", "Delhi", "Austin", "Seoul", "Perth"]
TOPICS = ["weather", "population", "best museums", "time zone", "currency", "main airport"]
TEMPLATES = [
    "What is the {t} in {c}?",
    "Tell me the {t} of {c}.",
    "How would I find the {t} for {c} today?",
    "Give me a short answer: {t}, {c}.",
]
STOCKS = ["AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "GOOG", "META", "IBM"]


def generated_queries(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 3 == 2:
            out.append(
                f"What was the closing price of {rng.choice(STOCKS)} on day {rng.randint(1, 28)}?"
            )
        else:
            template = rng.choice(TEMPLATES)
            out.append(template.format(t=rng.choice(TOPICS), c=rng.choice(CITIES)) + f" #{i}")
    return out


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1]


def fill(store: SolutionStore, base: np.ndarray, base_texts: list[str], size: int) -> float:
    """Bulk-load ``size`` records straight into the collection; returns seconds."""
    collection = store._open("default")
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    batch = 4000
    for start in range(0, size, batch):
        n = min(batch, size - start)
        pick = rng.integers(0, len(base), n)
        vectors = base[pick] + rng.normal(0, 0.02, (n, base.shape[1]))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        ids = [f"bench-{start + i}" for i in range(n)]
        collection.upsert(
            ids=ids,
            embeddings=vectors.tolist(),
            documents=[base_texts[j] for j in pick],
            metadatas=[
                {"namespace": "default", "solution": "print(42)", "model": "bench", "tier": 1}
                for _ in range(n)
            ],
        )
    return time.perf_counter() - started


async def retrieval(store: SolutionStore, queries: list[str]) -> list[float]:
    for q in queries[:10]:  # warm-up: model, index pages, connection
        await store.search(q, k=1)
    times = []
    for q in queries:
        t0 = time.perf_counter()
        await store.search(q, k=1, threshold=0.0)
        times.append(time.perf_counter() - t0)
    return times


async def recording_rate(store: SolutionStore, n: int) -> float:
    texts = generated_queries(n, seed=99)
    started = time.perf_counter()
    for i, q in enumerate(texts):
        await store.record(
            SolutionRecord(id=f"rec-{i}", namespace="default", query=q, solution=f"answer {i}")
        )
    return n / (time.perf_counter() - started)


def start_server(path: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    chroma = Path(sys.executable).parent / "chroma"
    proc = subprocess.Popen(
        [str(chroma), "run", "--path", str(path), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("chroma server did not start")


async def main_async(args: argparse.Namespace) -> None:
    embedder = SentenceTransformerEmbedder()
    base_texts = generated_queries(2000, seed=1)
    t0 = time.perf_counter()
    base = np.array(await embedder.embed(base_texts))
    embed_rate = len(base_texts) / (time.perf_counter() - t0)
    queries = generated_queries(args.queries, seed=2)
    rows = []
    for backend in args.backends.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            workdir = Path(tempfile.mkdtemp(prefix="bench-store-"))
            server = None
            try:
                if backend == "server":
                    server, location = start_server(workdir)
                else:
                    location = str(workdir)
                store = SolutionStore(location, embedder=embedder, collection=f"bench-{size}")
                load_s = fill(store, base, base_texts, size)
                times = await retrieval(store, queries)
                row = {
                    "backend": backend,
                    "records": size,
                    "load_s": round(load_s, 1),
                    "p50_ms": round(pct(times, 50) * 1e3, 2),
                    "p95_ms": round(pct(times, 95) * 1e3, 2),
                    "queries": len(times),
                }
                if size == min(int(s) for s in args.sizes.split(",")):
                    row["record_per_s"] = round(await recording_rate(store, args.records), 1)
                rows.append(row)
                print(json.dumps(row), flush=True)
            finally:
                if server is not None:
                    server.terminate()
                    server.wait(10)
                shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nembedding throughput (batch of 2000): {embed_rate:.0f} sentences/s")
    print(f"{'backend':9} {'records':>8} {'p50 ms':>7} {'p95 ms':>7} {'load s':>7} {'rec/s':>6}")
    for r in rows:
        rate = f"{r['record_per_s']:6.1f}" if "record_per_s" in r else "      "
        print(
            f"{r['backend']:9} {r['records']:8d} {r['p50_ms']:7.2f} {r['p95_ms']:7.2f}"
            f" {r['load_s']:7.1f} {rate}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--backends", default="embedded,server")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--records", type=int, default=200, help="for the recording rate")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
