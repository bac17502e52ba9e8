"""Local tiers: cold start, tokens/second, and the LiteLLM path's overhead over direct HTTP.

    .venv/bin/python evals/bench_local.py [--threads 2] [--requests 20] [--tokens 32]

For each catalogue model, on one machine, in one run:

1. cold start — spawn the xllamacpp server process and wait until it listens, then the time to
   the first streamed token of the first request (model weights paged in, caches empty);
2. throughput — a 128-token generation (``ignore_eos`` so the length is fixed): wall-clock
   tokens/s, and llama.cpp's own prompt and generation rates;
3. overhead — the same ``--requests`` prompts, each generating exactly ``--tokens`` tokens,
   sent (a) directly to the server with httpx and (b) through ``TierClient`` (LiteLLM, retries,
   error mapping, cost), interleaved so drift hits both alike. Reports medians and the ratio;
   the target is LiteLLM within 10% of direct.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

import httpx
import structlog

from ecocascade import Tier, TierClient
from ecocascade.models.local import (
    CATALOGUE,
    LocalModel,
    ServerOptions,
    ensure_server,
    pull,
    shutdown,
)
from ecocascade.models.local.server import completion_prompt


def _request(
    entry: LocalModel, prompt: str, tokens: int, stream: bool
) -> tuple[str, dict[str, Any]]:
    """The body TierClient sends for this model (catalogue defaults included), sent directly."""
    style, name = entry.style, entry.name
    # No stop sequences and ignore_eos: every request generates exactly `tokens` tokens, so
    # both paths do the same work even when llama.cpp's prompt cache nudges greedy decoding.
    defaults = {k: v for k, v in entry.defaults.items() if k != "stop"}
    # cache_prompt off: the second path must not reuse the KV cache the first one left behind.
    fixed = {
        **defaults,
        "max_tokens": tokens,
        "ignore_eos": True,
        "cache_prompt": False,
        "stream": stream,
    }
    if style == "completion":
        text = completion_prompt([{"role": "user", "content": prompt}])
        return "/completions", {"model": name, "prompt": text, **fixed}
    return "/chat/completions", {
        "model": name,
        "messages": [{"role": "user", "content": prompt}],
        **fixed,
    }


async def bench_model(name: str, threads: int, requests: int, tokens: int) -> dict[str, Any]:
    entry = CATALOGUE[name]
    pull(name)
    shutdown()  # a truly cold start
    started = time.perf_counter()
    server = await asyncio.to_thread(ensure_server, f"local/{name}", ServerOptions(threads=threads))
    start_s = time.perf_counter() - started
    async with httpx.AsyncClient(base_url=server.api_base, timeout=120) as http:
        path, body = _request(entry, "Tell me about the sea.", 16, stream=True)
        t0 = time.perf_counter()
        # A client of its own: llama.cpp drops the connection after an SSE stream, and a pooled
        # client would then send the next request down the dead connection.
        async with (
            httpx.AsyncClient(base_url=server.api_base, timeout=120) as streaming,
            streaming.stream("POST", path, json=body) as response,
        ):
            lines = response.aiter_lines()
            async for line in lines:
                if line.startswith("data: ") and line != "data: [DONE]":
                    first_token_s = time.perf_counter() - t0
                    break
            async for _ in lines:  # drain the rest of the stream
                pass

        path, body = _request(entry, "Tell me about the sea.", 128, stream=False)
        t0 = time.perf_counter()
        data = (await http.post(path, json=body)).json()
        wall = time.perf_counter() - t0
        timings = data.get("timings", {})
        throughput = {
            "completion_tokens": data["usage"]["completion_tokens"],
            "wall_tokens_per_s": data["usage"]["completion_tokens"] / wall,
            "llama_gen_tokens_per_s": timings.get("predicted_per_second"),
            "llama_prompt_tokens_per_s": timings.get("prompt_per_second"),
        }

        prompts = [f"Question {i}: name a colour and a number." for i in range(requests)]
        client = TierClient(Tier(f"local/{name}", params={"n_threads": threads}))
        via_litellm = {
            "max_tokens": tokens,
            "ignore_eos": True,
            "cache_prompt": False,
            "stop": None,
        }
        direct_s: list[float] = []
        direct_retries = 0
        litellm_s: list[float] = []
        for prompt in [prompts[0], *prompts]:  # the first pair warms both paths up
            path, body = _request(entry, prompt, tokens, stream=False)
            t0 = time.perf_counter()
            try:
                reply = await http.post(path, json=body)
            except httpx.RemoteProtocolError:
                # llama.cpp's HTTP server recycles keep-alive connections after a few requests;
                # a request racing that close fails without a response. LiteLLM's path retries
                # such transient errors, so the direct path does too (and we count them).
                direct_retries += 1
                t0 = time.perf_counter()
                reply = await http.post(path, json=body)
            reply.raise_for_status()
            direct = time.perf_counter() - t0
            t0 = time.perf_counter()
            completion = await client.complete([{"role": "user", "content": prompt}], **via_litellm)
            through = time.perf_counter() - t0
            # same work on both paths
            assert completion.usage.output_tokens == tokens, completion.usage
            assert reply.json()["usage"]["completion_tokens"] == tokens
            direct_s.append(direct)
            litellm_s.append(through)
        direct_s, litellm_s = direct_s[1:], litellm_s[1:]
    shutdown()
    d, lit = statistics.median(direct_s), statistics.median(litellm_s)
    return {
        "model": f"local/{name}",
        "threads": threads,
        "server_start_s": round(start_s, 3),
        "first_token_s": round(first_token_s, 3),
        "cold_start_to_first_token_s": round(start_s + first_token_s, 3),
        **{k: (round(v, 1) if isinstance(v, float) else v) for k, v in throughput.items()},
        "requests": requests,
        "tokens_per_request": tokens,
        "direct_median_s": round(d, 4),
        "litellm_median_s": round(lit, 4),
        "litellm_over_direct": round(lit / d, 3),
        "direct_retries": direct_retries,
    }


async def main_async(args: argparse.Namespace) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    rows = [await bench_model(name, args.threads, args.requests, args.tokens) for name in CATALOGUE]
    for row in rows:
        print(json.dumps(row))
    print()
    header = ("model", "cold→1st tok", "gen tok/s", "direct", "litellm", "ratio")
    print("{:22} {:>12} {:>9} {:>8} {:>8} {:>6}".format(*header))
    for r in rows:
        print(
            f"{r['model']:22} {r['cold_start_to_first_token_s']:11.2f}s"
            f" {r['wall_tokens_per_s']:9.1f} {r['direct_median_s'] * 1e3:6.0f}ms"
            f" {r['litellm_median_s'] * 1e3:6.0f}ms {r['litellm_over_direct']:6.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=32)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
