"""`ecocascade serve` side by side with LiteLLM's proxy, on the same scripted upstream.

    .venv/bin/python evals/bench_gateway.py [--requests 300] [--seconds 4] [--out FILE]

One run, three paths to the same local OpenAI-compatible server (`ecocascade.testing.FakeLLMServer`,
in this process), every request a real HTTP request from one aiohttp client with keep-alive:

- **direct**: POST straight to the upstream;
- **ecocascade**: `ecocascade serve` (one worker, a subprocess), model `cascade/bench`: one tier,
  a `contains` judge, the SQLite response cache;
- **litellm-proxy**: `litellm --config ... --num_workers 1` (the pinned `litellm[proxy]`, a
  subprocess) with its in-memory response cache on;
- for the breakdown: `ecocascade serve`'s pass-through of the same model (gateway + LiteLLM, no
  cascade), and `litellm.acompletion` called in this process (LiteLLM alone, no gateway).

1. *Added latency*, cache miss, one tier: N distinct questions per path, sequential and
   interleaved (so drift hits all paths alike); added = gateway p50/p99 minus direct p50/p99.
2. *Exact-cache-hit throughput*: one question answered once (so both gateways have it cached),
   then asked by C concurrent clients for S seconds each, C = 1, 16, 64; req/s = answers / S.
   The upstream's request count is checked: a hit must not reach it.

Prints a table and writes the numbers as JSON (default `evals/results/bench_gateway.json`).
Timings on a shared machine are noisy: compare the columns of one run, not runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from ecocascade.testing import FakeLLMServer

ROOT = Path(__file__).resolve().parent.parent
ANSWER = "the answer is 42"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def start(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(
        cmd, stdout=handle, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
    )


async def wait_ready(session: aiohttp.ClientSession, url: str, proc: Any, log: Path) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = await asyncio.to_thread(log.read_text)
            raise RuntimeError(f"{url}: the process exited; log:\n{tail[-2000:]}")
        try:
            async with session.get(url) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    tail = await asyncio.to_thread(log.read_text)
    raise RuntimeError(f"{url} not ready after 240 s; log:\n{tail[-2000:]}")


async def chat(
    session: aiohttp.ClientSession, url: str, model: str, question: str
) -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": question}]}
    async with session.post(url, json=body) as response:
        data = await response.json()
        if response.status != 200:
            raise RuntimeError(f"{url}: HTTP {response.status}: {data}")
        assert ANSWER in data["choices"][0]["message"]["content"], data
        return {"headers": response.headers, "data": data}


async def in_process_litellm(api_base: str, question: str) -> None:
    """The same call as the tier makes, without any gateway: LiteLLM's own share."""
    from ecocascade._env import import_litellm

    response = await import_litellm().acompletion(
        model="openai/m", api_base=api_base, api_key="no-key", num_retries=0, max_retries=0,
        messages=[{"role": "user", "content": question}], timeout=60,
    )  # fmt: skip
    assert ANSWER in response.choices[0].message.content


async def latency(
    session: aiohttp.ClientSession, paths: dict[str, tuple[str, str]], n: int, api_base: str
) -> dict[str, list[float]]:
    names = [*paths, "litellm.acompletion (in-process)"]
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(n + 20):  # the first 20 rounds warm connections and code paths
        for name in names:
            question = f"question {i} {uuid.uuid4().hex[:8]}: what is six times seven?"
            started = time.perf_counter()
            if name in paths:
                url, model = paths[name]
                result = await chat(session, url, model, question)
            else:
                await in_process_litellm(api_base, question)
            elapsed = time.perf_counter() - started
            if name == "ecocascade":
                assert result["headers"]["x-ecocascade-cache"] == "miss"
            if i >= 20:
                times[name].append(elapsed)
    return times


async def throughput(
    session: aiohttp.ClientSession,
    url: str,
    model: str,
    question: str,
    clients: int,
    seconds: float,
) -> float:
    done = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            await chat(session, url, model, question)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return done / (time.perf_counter() - started)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    procs: list[subprocess.Popen[bytes]] = []
    with FakeLLMServer() as upstream:
        upstream.always("m", ANSWER)
        price = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}
        eco_port, lite_port = free_port(), free_port()
        gateway_config = {
            "models": {"m": {"model": "openai/m", "api_base": upstream.api_base, "price": price}},
            "cascades": {
                "bench": {
                    "tiers": [{"model": "openai/m", "api_base": upstream.api_base, "price": price}],
                    "judge": {"type": "contains", "text": "42"},
                    "cache": {"location": str(work / "cache.sqlite3")},
                }
            },
        }
        (work / "gateway.yaml").write_text(yaml.safe_dump(gateway_config))
        litellm_config = {
            "model_list": [
                {
                    "model_name": "m",
                    "litellm_params": {
                        "model": "openai/m",
                        "api_base": upstream.api_base,
                        "api_key": "no-key",
                    },
                }
            ],
            "litellm_settings": {"cache": True, "cache_params": {"type": "local"}},
            # no auth on either gateway (the proxy refuses to start keyless without this)
            "general_settings": {"dangerously_permit_weak_or_unset_master_key": True},
        }
        (work / "litellm.yaml").write_text(yaml.safe_dump(litellm_config))
        bin_dir = Path(sys.executable).parent  # litellm's CLI lives beside this Python
        env = {"PYTHONPATH": str(ROOT), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        try:
            procs.append(
                start(
                    [sys.executable, "-m", "ecocascade", "serve",
                     "--config", str(work / "gateway.yaml"), "--port", str(eco_port)],
                    work / "ecocascade.log",
                    env,
                )
            )  # fmt: skip
            procs.append(
                start(
                    [str(bin_dir / "litellm"), "--config", str(work / "litellm.yaml"),
                     "--port", str(lite_port), "--num_workers", "1", "--host", "127.0.0.1"],
                    work / "litellm.log",
                    {**env, "LITELLM_LOG": "ERROR"},
                )
            )  # fmt: skip
            connector = aiohttp.TCPConnector(limit=256)
            async with aiohttp.ClientSession(connector=connector) as session:
                eco = f"http://127.0.0.1:{eco_port}"
                lite = f"http://127.0.0.1:{lite_port}"
                await wait_ready(session, f"{eco}/healthz", procs[0], work / "ecocascade.log")
                await wait_ready(
                    session, f"{lite}/health/liveliness", procs[1], work / "litellm.log"
                )
                paths = {
                    "direct": (f"{upstream.api_base}/chat/completions", "m"),
                    "ecocascade": (f"{eco}/v1/chat/completions", "cascade/bench"),
                    "ecocascade pass-through": (f"{eco}/v1/chat/completions", "m"),
                    "litellm-proxy": (f"{lite}/v1/chat/completions", "m"),
                }
                times = await latency(session, paths, args.requests, upstream.api_base)
                hot = "What is six times seven? (the cached one)"
                rates: dict[str, dict[int, float]] = {"ecocascade": {}, "litellm-proxy": {}}
                for name in list(rates):
                    url, model = paths[name]
                    await chat(session, url, model, hot)  # answered once: now it is cached
                    before = len(upstream.requests)
                    for clients in (1, 16, 64):
                        rates[name][clients] = await throughput(
                            session, url, model, hot, clients, args.seconds
                        )
                    if len(upstream.requests) != before:
                        raise RuntimeError(
                            f"{name}: {len(upstream.requests) - before} cache 'hits' reached "
                            "the upstream"
                        )
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
            shutil.rmtree(work, ignore_errors=True)
    direct = times["direct"]
    summary: dict[str, Any] = {
        "requests_per_path": args.requests,
        "seconds_per_concurrency": args.seconds,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_avg_at_end": os.getloadavg(),
        "latency_ms": {},
        "cache_hit_rps": rates,
    }
    for name, values in times.items():
        row = {"p50": pct(values, 50) * 1e3, "p99": pct(values, 99) * 1e3}
        row["mean"] = statistics.fmean(values) * 1e3
        if name != "direct":
            row["added_p50"] = row["p50"] - pct(direct, 50) * 1e3
            row["added_p99"] = row["p99"] - pct(direct, 99) * 1e3
        summary["latency_ms"][name] = row
    return summary


def report(summary: dict[str, Any]) -> None:
    lat = summary["latency_ms"]
    n = summary["requests_per_path"]
    print(f"cache miss, one tier, {n} sequential requests per path (ms)")
    print(f"{'path':34} {'p50':>8} {'p99':>8} {'added p50':>10} {'added p99':>10}")
    for name, row in lat.items():
        added = f"{row['added_p50']:>10.2f} {row['added_p99']:>10.2f}" if "added_p50" in row else ""
        print(f"{name:34} {row['p50']:>8.2f} {row['p99']:>8.2f} {added}")
    rates = summary["cache_hit_rps"]
    print(f"\nexact cache hits, req/s, one worker, {summary['seconds_per_concurrency']} s each")
    print(f"{'path':15} {'c=1':>8} {'c=16':>8} {'c=64':>8}")
    for name, row in rates.items():
        print(f"{name:15} {row[1]:>8.0f} {row[16]:>8.0f} {row[64]:>8.0f}")
    ratio = {c: rates["ecocascade"][c] / rates["litellm-proxy"][c] for c in (1, 16, 64)}
    print(f"{'ratio':15} " + " ".join(f"{ratio[c]:>7.2f}×" for c in (1, 16, 64)))
    summary["cache_hit_ratio"] = ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--out", default=str(ROOT / "evals" / "results" / "bench_gateway.json"))
    args = parser.parse_args()
    summary = asyncio.run(run(args))
    report(summary)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
