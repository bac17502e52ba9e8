"""Dynamic batching: local tiers' continuous batching and the embedding micro-batcher.

    nice .venv/bin/python evals/bench_batching.py local [--slots 1 4] [--requests 32] [--tokens 16]
    nice .venv/bin/python evals/bench_batching.py embed [--requests 256]

``local``: SmolLM2-135M behind xllamacpp, once per slot count (``n_parallel``; 1 = before,
llama.cpp serving one request at a time). At concurrency 1/8/32 it sends ``--requests`` chat
requests through ``TierClient`` (the path a cascade takes), each generating exactly ``--tokens``
tokens (``ignore_eos``), and prints throughput (requests/s, generated tokens/s) and p50/p95
latency.

``embed``: the default sentence-transformers embedder, with and without the micro-batcher
(:class:`~ecocascade.store.embedders.BatchingEmbedder`): ``--requests`` one-query ``embed``
calls at concurrency 1/8/32, distinct texts (the embedder's LRU never hits).

``embed-cpu``: the encoder's own cost, free of how much CPU the machine's other users leave us —
CPU seconds (``time.process_time``, one torch thread) for 32 texts encoded one by one vs as one
batch, twice.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

CONCURRENCY = (1, 8, 32)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _drive(
    call: Callable[[int], Awaitable[Any]], requests: int, concurrency: int
) -> tuple[float, list[float]]:
    """Run ``requests`` calls, at most ``concurrency`` at once: (wall seconds, latencies)."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(i: int) -> None:
        async with gate:
            t0 = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(requests)))
    return time.perf_counter() - started, latencies


def _row(label: str, concurrency: int, n: int, wall: float, lat: list[float], unit: str) -> str:
    return (
        f"{label:<22} c={concurrency:<3} {n / wall:8.2f} {unit}/s"
        f"   p50 {_pct(lat, 0.5) * 1e3:8.1f} ms   p95 {_pct(lat, 0.95) * 1e3:8.1f} ms"
    )


async def bench_local(slots: list[int], requests: int, tokens: int, threads: int) -> None:
    from ecocascade import Tier, TierClient
    from ecocascade.models.local import pull, shutdown

    pull("smollm2-135m")
    for n_parallel in slots:
        shutdown()
        params = {"n_parallel": n_parallel, "n_threads": threads, "max_tokens": tokens,
                  "ignore_eos": True, "cache_prompt": False}  # fmt: skip
        client = TierClient(Tier("local/smollm2-135m", params=params, timeout_s=600))
        await client.complete([{"role": "user", "content": "Warm up."}])
        for concurrency in CONCURRENCY:

            async def call(i: int, client: TierClient = client) -> None:
                await client.complete(
                    [{"role": "user", "content": f"Tell me fact {i} about the sea."}]
                )

            wall, lat = await _drive(call, requests, concurrency)
            row = _row(f"n_parallel={n_parallel}", concurrency, requests, wall, lat, "req")
            print(f"{row}   {requests * tokens / wall:7.1f} tok/s", flush=True)
    shutdown()


async def bench_embed(requests: int) -> None:
    from ecocascade.store.embedders import BatchingEmbedder, SentenceTransformerEmbedder

    plain = SentenceTransformerEmbedder(cache_size=0)
    plain.embed_sync(["warm up"])
    batching = BatchingEmbedder(SentenceTransformerEmbedder(cache_size=0))
    for label, embedder in (("plain", plain), ("micro-batched", batching)):
        for concurrency in CONCURRENCY:
            base = f"{label}-{concurrency}"

            async def call(i: int, embedder: Any = embedder, base: str = base) -> None:
                await embedder.embed([f"query {base} number {i}: what is the weather in town {i}?"])

            wall, lat = await _drive(call, requests, concurrency)
            print(_row(label, concurrency, requests, wall, lat, "q"), flush=True)
        stats = getattr(embedder, "stats", None)
        if stats:
            print(f"  {label}: {stats()}")


def bench_embed_cpu() -> None:
    import torch

    from ecocascade.store.embedders import SentenceTransformerEmbedder

    torch.set_num_threads(1)
    encoder = SentenceTransformerEmbedder(cache_size=0)
    encoder.embed_sync(["warm up"])
    for rep in range(2):
        texts = [f"query {rep}-{i}: what is the weather in town {i} tomorrow?" for i in range(32)]
        c0 = time.process_time()
        for text in texts:
            encoder.embed_sync([text])
        c1 = time.process_time()
        encoder.embed_sync([t + " (batched)" for t in texts])
        c2 = time.process_time()
        print(f"32 texts: one by one {c1 - c0:.3f} CPU s, one batch {c2 - c1:.3f} CPU s"
              f" ({(c1 - c0) / (c2 - c1):.1f}x less work batched)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    local = sub.add_parser("local")
    local.add_argument("--slots", type=int, nargs="+", default=[1, 4])
    local.add_argument("--requests", type=int, default=32)
    local.add_argument("--tokens", type=int, default=16)
    local.add_argument("--threads", type=int, default=2)
    embed = sub.add_parser("embed")
    embed.add_argument("--requests", type=int, default=256)
    sub.add_parser("embed-cpu")
    args = parser.parse_args()
    if args.what == "local":
        asyncio.run(bench_local(args.slots, args.requests, args.tokens, args.threads))
    elif args.what == "embed-cpu":
        bench_embed_cpu()
    else:
        asyncio.run(bench_embed(args.requests))
    print("(timings on shared cores: see evals/cost_levers.md for the noise)", flush=True)


if __name__ == "__main__":
    main()
