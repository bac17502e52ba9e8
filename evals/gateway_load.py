"""Shared by evals/bench_gateway_scale.py and evals/screenshot_dashboard.py: a faulty scripted
upstream, real services (redis-server, chroma run, `ecocascade serve`), and a bounded async load
generator on the official OpenAI SDK.

The upstream is FakeLLMServer with three *function models* (they compute their answer from the
question, like pydantic-ai's FunctionModel): questions are "What is A plus B?"; ``small`` answers
a bare number for ~55% of them (by a hash of the question) and hedges ("maybe N?") otherwise,
``medium`` for ~85%, ``large`` always. The cascade's judge is ``regex: ^\\d+$`` — a hedge is
rejected and escalates. With ``--fault-rate`` each call fails instead with probability p (HTTP
500/503, 429, a malformed body or a dropped connection, in turn).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
_QUESTION = re.compile(r"What is (\d+) plus (\d+)\?")
PRICES = {"small": (0.15, 0.6), "medium": (1.0, 4.0), "large": (5.0, 15.0)}
SKILL = {"small": 0.55, "medium": 0.85, "large": 1.01}


def question(a: int, b: int) -> str:
    return f"What is {a} plus {b}?"


def truth(text: str) -> int | None:
    match = _QUESTION.search(text)
    return None if match is None else int(match.group(1)) + int(match.group(2))


def _difficulty(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 16**8


# -- the upstream (runs in its own process: python evals/gateway_load.py upstream PORT RATE) ----


def _function_model(name: str, fault_rate: float, rng: random.Random) -> Any:
    from ecocascade.testing import Fault, Reply

    faults = itertools.cycle(
        [
            Fault.server_error(500),
            Fault.rate_limit(retry_after_s=0),
            Fault.server_error(503),
            Fault.malformed_json(),
            Fault.disconnect(),
        ]
    )

    def reply(body: dict[str, Any]) -> Any:
        if rng.random() < fault_rate:
            return next(faults)
        users = [m for m in body.get("messages", []) if m.get("role") == "user"]
        text = str(users[-1].get("content", "")) if users else ""
        answer = truth(text)
        if answer is None:
            return Reply("I only do sums.", completion_tokens=40)
        if _difficulty(text) < SKILL[name]:
            return Reply(str(answer), completion_tokens=60)
        return Reply(f"maybe {answer + 1}?", completion_tokens=60)

    return reply


def serve_upstream(port: int, fault_rate: float) -> None:
    from ecocascade.testing import FakeLLMServer

    rng = random.Random(1234)
    server = FakeLLMServer(port=port)
    for name in PRICES:
        server.always(name, _function_model(name, fault_rate, rng))
    server.start()
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    server.stop()


# -- processes -------------------------------------------------------------------------------


def wait_http(url: str, timeout_s: float = 90, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout_s} s")
        time.sleep(0.2)


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}


def start_upstream(port: int, fault_rate: float) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["nice", PYTHON, __file__, "upstream", str(port), str(fault_rate)], env=env()
    )
    deadline = time.monotonic() + 30
    import socket

    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the upstream did not start")


def gateway_config(
    upstream_port: int,
    redis_url: str,
    chroma_url: str | None,
    keys: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    tiers = [
        {
            "model": f"openai/{name}",
            "api_base": f"http://127.0.0.1:{upstream_port}/v1",
            "api_key_env": "UPSTREAM_KEY",
            "price": {"input_per_mtok": price[0], "output_per_mtok": price[1]},
            "params": {"max_tokens": 64},
            "timeout_s": 10,
            "retry": {"max_retries": 2, "base_delay_s": 0.01, "max_delay_s": 0.05},
        }
        for name, price in PRICES.items()
    ]
    cascade: dict[str, Any] = {
        "tiers": tiers,
        "judge": {"type": "regex", "pattern": r"^\d+$"},
        "cache": {"location": redis_url},
    }
    config: dict[str, Any] = {"redis": redis_url, "access": {"keys": list(keys)}}
    cascades = {}
    for name in ("support", "math"):
        spec = dict(cascade)
        if chroma_url is not None:
            spec["solutions"] = {"location": chroma_url, "namespace": name, "k": 1}
        cascades[name] = spec
    config["cascades"] = cascades
    return config


def start_gateway(
    config_path: Path, port: int, workers: int, log_path: Path
) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [
                "nice",
                PYTHON,
                "-m",
                "ecocascade",
                "serve",
                "--config",
                str(config_path),
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            env={**env(), "UPSTREAM_KEY": "sk-fake"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:  # start-up loads the embedder in every worker: slow on busy cores
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout_s=400, proc=proc)
    except BaseException:
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process and, for a gateway (its own session), its workers; then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    try:
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def children(pid: int) -> list[int]:
    """The worker pids of uvicorn's supervisor ``pid``, from /proc (not multiprocessing's
    resource tracker, also a child)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmdline:
                found.append(int(child))
    return found


# -- the load generator ----------------------------------------------------------------------


@dataclass
class Outcome:
    key: str
    query: str
    cascade: str = "support"
    status: int | None = None  # HTTP status the client finally got; None: lost
    answer: str | None = None
    cache: str | None = None
    cost_usd: float = 0.0
    code: str | None = None  # error.code of an OpenAI error body
    request_id: str | None = None
    error: str | None = None  # what a lost request died of


@dataclass
class Load:
    base_url: str
    keys: dict[str, str]  # id → key
    concurrency: int = 24
    max_retries: int = 4
    timeout_s: float = 60.0
    outcomes: list[Outcome] = field(default_factory=list)

    async def run(self, jobs: Sequence[tuple[str, str, str]], *, on_progress: Any = None) -> None:
        import openai

        clients = {
            key_id: openai.AsyncOpenAI(
                base_url=self.base_url,
                api_key=key,
                max_retries=self.max_retries,
                timeout=self.timeout_s,
            )
            for key_id, key in self.keys.items()
        }
        gate = asyncio.Semaphore(self.concurrency)
        done = 0

        async def one(key_id: str, query: str, cascade: str) -> None:
            nonlocal done
            outcome = Outcome(key_id, query, cascade)
            async with gate:
                try:
                    raw = await clients[key_id].chat.completions.with_raw_response.create(
                        model=f"cascade/{cascade}",
                        messages=[{"role": "user", "content": query}],
                    )
                    completion = raw.parse()
                    outcome.status = raw.status_code
                    outcome.answer = completion.choices[0].message.content
                    outcome.cache = raw.headers.get("x-ecocascade-cache")
                    outcome.cost_usd = float(raw.headers.get("x-ecocascade-cost-usd") or 0)
                    outcome.request_id = raw.headers.get("x-ecocascade-request-id")
                except openai.APIStatusError as error:
                    body = error.body if isinstance(error.body, dict) else None
                    if body is not None and "message" in body:
                        outcome.status = error.status_code
                        outcome.code = str(body.get("code"))
                    else:
                        outcome.error = f"{error.status_code} without an OpenAI error body"
                except Exception as error:  # connection refused after the retries, etc.
                    outcome.error = f"{type(error).__name__}: {error}"[:200]
            self.outcomes.append(outcome)
            done += 1
            if on_progress is not None:
                on_progress(done)

        await asyncio.gather(*(one(k, q, c) for k, q, c in jobs))
        for client in clients.values():
            await client.close()


def jobs_for(
    n: int, keys: Sequence[str], *, distinct: int, seed: int, cascades: Sequence[str]
) -> list[tuple[str, str, str]]:
    """``n`` requests over ``distinct`` questions, skewed (Zipf-like: a few are asked often)."""
    rng = random.Random(seed)
    pool = [question(rng.randint(1, 999), rng.randint(1, 999)) for _ in range(distinct)]
    weights = [1 / (i + 1) ** 0.8 for i in range(distinct)]
    return [
        (rng.choice(keys), rng.choices(pool, weights)[0], rng.choice(cascades)) for _ in range(n)
    ]


def send_feedback(base_url: str, key: str, request_id: str, verdict: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{base_url}/feedback",
        data=json.dumps({"request_id": request_id, "verdict": verdict}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        return dict(json.loads(reply.read()))


if __name__ == "__main__":
    if sys.argv[1:2] == ["upstream"]:
        serve_upstream(int(sys.argv[2]), float(sys.argv[3]))
