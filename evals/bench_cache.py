"""Response cache: hit latency (SQLite, Redis, semantic) and hit / false-hit rates on our pair set.

    .venv/bin/python evals/bench_cache.py [--lookups 2000] [--no-redis] [--no-gptcache]

1. Exact-hit latency: ``ResponseCache.lookup`` of a cached query, in-process — SQLite file and a
   real ``redis-server`` on loopback (started here). Targets: p50 ≤ 1 ms SQLite, ≤ 2 ms Redis.
2. Semantic-hit latency: lookup of a paraphrase in a semantic namespace holding 1,000 cached
   queries, including embedding the query. Target p50 ≤ 20 ms.
3. Quality on the **dev** split of ``evals/data/cache_pairs.jsonl`` (written by us; the verifier
   is fitted on the train split only, by ``evals/fit_cache_verifier.py``): each pair through the
   real ``ResponseCache`` (store one, look up the other) at several candidate floors, with the
   verifier and with embeddings alone; and **GPTCache** on the same pairs with the same embedder
   loaded from disk, its default evaluation and threshold, then stricter thresholds. Printed:
   paraphrase-hit rate (the cached answer was right to serve) and near-miss false-hit rate (a
   wrong answer served), plus lookup latency with one cached entry, embedding included. The
   default setting's train-split rates are printed too (the train/dev gap).
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
from typing import Any

from ecocascade.cache import AlignmentVerifier, PairDecision, ResponseCache
from ecocascade.cache.align import embedding_text
from ecocascade.cache.sqlite_backend import SQLiteBackend
from ecocascade.store import SentenceTransformerEmbedder

PAIRS = Path(__file__).parent / "data" / "cache_pairs.jsonl"
FP = "bench-fingerprint"
DEFAULT_FLOOR = 0.75  # ResponseCache's semantic_threshold default


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
    vectors = await embedder.embed([embedding_text(q) for q in stored])
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


class ServeAll:
    """A verifier that serves every candidate: embeddings alone decide."""

    async def verify(self, query: str, cached_query: str, similarity: float) -> PairDecision:
        return PairDecision(True, 1.0)


def rates(served: list[bool], pairs: list[dict[str, Any]]) -> dict[str, float]:
    para = [s for s, p in zip(served, pairs, strict=True) if p["same_answer"]]
    near = [s for s, p in zip(served, pairs, strict=True) if not p["same_answer"]]
    return {
        "paraphrase_hit": round(sum(para) / max(len(para), 1), 3),
        "near_miss_false_hit": round(sum(near) / max(len(near), 1), 3),
    }


async def ecocascade_quality(
    embedder: SentenceTransformerEmbedder,
    pairs: list[dict[str, Any]],
    workdir: Path,
    name: str,
    floors: tuple[float, ...] = (0.70, 0.75, 0.80, 0.85, 0.90, 0.95),
) -> tuple[list[dict[str, Any]], list[float], list[str]]:
    """Each pair through the real ``ResponseCache``: store the cached query (its own namespace),
    look the other one up; at several candidate floors, with the default verifier and without."""
    backend = SQLiteBackend(workdir / f"quality-{name}.sqlite3")
    writer = ResponseCache(backend, semantic_namespaces={"*"}, embedder=embedder)
    for i, pair in enumerate(pairs):
        await writer.store(
            pair["cached"], namespace=f"p{i}", fingerprint=FP, answer="A", model="m", tier=0
        )
    rows, latencies, false_hits = [], [], []
    for floor in floors:
        for verified in (True, False):
            cache = ResponseCache(
                backend,
                semantic_namespaces={"*"},
                semantic_threshold=floor,
                embedder=embedder,
                verifier=None if verified else ServeAll(),
            )
            served = []
            for i, pair in enumerate(pairs):
                t0 = time.perf_counter()
                hit, _ = await cache.lookup(pair["query"], namespace=f"p{i}", fingerprint=FP)
                if verified and floor == floors[0]:  # the first lookup of each query
                    latencies.append(time.perf_counter() - t0)
                if verified and floor == DEFAULT_FLOOR and hit and not pair["same_answer"]:
                    false_hits.append(f"{pair['cached']} → {pair['query']}")
                served.append(hit is not None)
            rows.append({"floor": floor, "verifier": verified, **rates(served, pairs)})
    return rows, latencies, false_hits


def gptcache_quality(
    pairs: list[dict[str, Any]], workdir: Path
) -> tuple[list[dict[str, Any]], list[float]]:
    """GPTCache 0.1.x on the same pairs: the same all-MiniLM-L6-v2 loaded from disk (its ``SBERT``
    embedding), SQLite + faiss storage, its ``SearchDistanceEvaluation`` and ``Config`` defaults
    (similarity_threshold 0.8 — on unit vectors that serves cosine ≥ 0.6), then stricter ones."""
    from gptcache import Cache, Config
    from gptcache.adapter.api import get, put
    from gptcache.embedding import SBERT
    from gptcache.manager import CacheBase, VectorBase, get_data_manager
    from gptcache.processor.pre import get_prompt
    from gptcache.similarity_evaluation import SearchDistanceEvaluation

    from ecocascade.store.embedders import _default_model_path

    sbert = SBERT(_default_model_path())
    thresholds = (0.8, 0.9, 0.95, 0.975)
    served: dict[float, list[bool]] = {t: [] for t in thresholds}
    latencies = []
    for i, pair in enumerate(pairs):
        folder = workdir / f"gptcache-{i}"
        folder.mkdir()
        cache = Cache()
        cache.init(
            pre_embedding_func=get_prompt,
            embedding_func=sbert.to_embeddings,
            data_manager=get_data_manager(
                CacheBase("sqlite", sql_url=f"sqlite:///{folder / 'cache.db'}"),
                VectorBase(
                    "faiss", dimension=sbert.dimension, index_path=str(folder / "faiss.index")
                ),
            ),
            similarity_evaluation=SearchDistanceEvaluation(),
            config=Config(),
        )
        put(pair["cached"], "A", cache_obj=cache)
        for t in thresholds:
            cache.config.similarity_threshold = t
            t0 = time.perf_counter()
            served[t].append(get(pair["query"], cache_obj=cache) is not None)
            if t == 0.8:
                latencies.append(time.perf_counter() - t0)
        cache.data_manager.close()
    rows = [{"similarity_threshold": t, **rates(served[t], pairs)} for t in thresholds]
    return rows, latencies


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
    # load the lemma dictionary and word frequencies once, as a long-running process has them
    AlignmentVerifier.default().decide("What is the warmest month?", "Which month is warm?", 0.9)
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
        pairs = [json.loads(line) for line in PAIRS.read_text("utf-8").splitlines() if line]
        dev = [p for p in pairs if p["split"] == "dev"]
        train = [p for p in pairs if p["split"] == "train"]
        ours, ours_ms, ours_false = await ecocascade_quality(embedder, dev, workdir, "dev")
        train_rows, _, _ = await ecocascade_quality(
            embedder, train, workdir, "train", floors=(DEFAULT_FLOOR,)
        )
        results["pairs"] = {
            "dev_paraphrases": sum(p["same_answer"] for p in dev),
            "dev_near_misses": sum(not p["same_answer"] for p in dev),
        }
        results["ecocascade_dev"] = ours
        results["ecocascade_train_default"] = [
            r for r in train_rows if r["floor"] == DEFAULT_FLOOR and r["verifier"]
        ]
        results["ecocascade_dev_false_hits"] = ours_false
        results["ecocascade_lookup_ms_one_candidate"] = {
            "p50": round(pct(ours_ms, 50) * 1e3, 2), "p95": round(pct(ours_ms, 95) * 1e3, 2)
        }  # fmt: skip
        if not args.no_gptcache:
            theirs, theirs_ms = gptcache_quality(dev, workdir)
            results["gptcache_dev"] = theirs
            results["gptcache_lookup_ms_one_entry"] = {
                "p50": round(pct(theirs_ms, 50) * 1e3, 2), "p95": round(pct(theirs_ms, 95) * 1e3, 2)
            }  # fmt: skip
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(results, indent=1, ensure_ascii=False))
    print(f"\ndev split of {PAIRS.name}: {results['pairs']}")
    print("system                       setting           paraphrase-hit  near-miss-false-hit")
    for row in results["ecocascade_dev"]:  # type: ignore[attr-defined]
        name = "ecocascade" + (" (verifier)" if row["verifier"] else " (embeddings only)")
        mark = " *default*" if row["verifier"] and row["floor"] == DEFAULT_FLOOR else ""
        print(
            f"{name:28s} floor {row['floor']:.2f}      {row['paraphrase_hit']:14.3f}"
            f" {row['near_miss_false_hit']:20.3f}{mark}"
        )
    for row in results.get("gptcache_dev", []):  # type: ignore[attr-defined]
        mark = " *default*" if row["similarity_threshold"] == 0.8 else ""
        print(
            f"{'GPTCache (search distance)':28s} threshold {row['similarity_threshold']:.3f}"
            f" {row['paraphrase_hit']:14.3f} {row['near_miss_false_hit']:20.3f}{mark}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--no-redis", action="store_true")
    parser.add_argument("--no-gptcache", action="store_true")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
