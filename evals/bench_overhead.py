"""What the cascade adds on top of a direct LiteLLM call, per query.

    .venv/bin/python evals/bench_overhead.py [--queries 300]

Both paths hit the same local scripted OpenAI-compatible server (ecocascade.testing) with the
same prompts, sequentially, in one process: (a) `litellm.acompletion` directly; (b)
`Cascade.run` with one tier and a ContainsJudge — i.e. retries wrapper, error mapping, cost
lookup, judge, result assembly and structlog events. Prints p50/p95 per query and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import structlog

from ecocascade import Cascade, ContainsJudge, Price, Tier
from ecocascade._env import import_litellm
from ecocascade.testing import FakeLLMServer


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


async def bench(n: int) -> None:
    litellm = import_litellm()
    # Events go nowhere, as in an app that logs at warning level.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    with FakeLLMServer() as server:
        server.always("m", "the answer is 42")
        tier = Tier("openai/m", api_base=server.api_base, price=Price(1.0, 2.0))
        cascade = Cascade([tier], ContainsJudge("42"))
        prompts = [f"question {i}" for i in range(n)]

        async def direct(q: str) -> None:
            await litellm.acompletion(
                model="openai/m", api_base=server.api_base, api_key="no-key",
                messages=[{"role": "user", "content": q}], num_retries=0, max_retries=0,
                timeout=tier.timeout_s,
            )  # fmt: skip

        async def through_cascade(q: str) -> None:
            assert (await cascade.run(q)).success

        for warm in prompts[:20]:  # connection pools, lazy imports
            await direct(warm)
            await through_cascade(warm)
        results: dict[str, list[float]] = {"direct litellm": [], "cascade.run": []}
        for q in prompts:  # interleave so drift hits both alike
            for name, fn in (("direct litellm", direct), ("cascade.run", through_cascade)):
                started = time.perf_counter()
                await fn(q)
                results[name].append(time.perf_counter() - started)

    print(f"{'path':16} {'p50 ms':>8} {'p95 ms':>8}   ({n} queries each)")
    for name, times in results.items():
        print(f"{name:16} {pct(times, 50) * 1e3:8.2f} {pct(times, 95) * 1e3:8.2f}")
    d, c = (statistics.median(results[k]) for k in ("direct litellm", "cascade.run"))
    print(f"cascade overhead per query: p50 {(c - d) * 1e3:+.2f} ms ({c / d:.2f}x direct)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=300)
    asyncio.run(bench(parser.parse_args().queries))


if __name__ == "__main__":
    main()
