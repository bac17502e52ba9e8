"""Drive real traffic through `ecocascade serve`, then screenshot its dashboard in headless
Chromium: evals/gateway/dashboard.png.

    PYTHONPATH=. python evals/screenshot_dashboard.py [--minutes 4]

Real parts: redis-server, the gateway as a subprocess (one worker, on Redis), the faulty scripted
upstream of evals/gateway_load.py (10% faults), the OpenAI SDK as the client. Traffic comes in
one wave a minute, so the time series has something to show; four API keys (one budgeted, one
only allowed the "math" cascade, one admin for the dashboard); a few "bad" feedbacks.
Needs `chromium` (Debian: apt-get install -y chromium).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gateway_load as gl

from ecocascade.gateway.apikeys import hash_key
from ecocascade.testing.services import RedisServer, free_port

OUT = gl.ROOT / "evals" / "gateway" / "dashboard.png"
KEYS = {"team-a": "eco-team-a", "team-b": "eco-team-b", "batch": "eco-batch", "ops": "eco-ops"}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=int, default=4)
    parser.add_argument("--per-wave", type=int, default=120)
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium is not installed (apt-get install -y chromium)", file=sys.stderr)
        return 2
    specs = [
        {"id": "team-a", "sha256": hash_key(KEYS["team-a"]), "budget": {"usd": 0.25}},
        {"id": "team-b", "sha256": hash_key(KEYS["team-b"])},
        {"id": "batch", "sha256": hash_key(KEYS["batch"]), "cascades": ["math"]},
        {"id": "ops", "sha256": hash_key(KEYS["ops"]), "admin": True},
    ]
    work = Path(tempfile.mkdtemp(prefix="eco-dash-"))
    upstream_port, port = free_port(), free_port()
    with RedisServer() as redis_server:
        upstream = gl.start_upstream(upstream_port, 0.10)
        config = gl.gateway_config(upstream_port, redis_server.url, None, specs)
        (work / "gateway.yaml").write_text(yaml.safe_dump(config))
        gateway = gl.start_gateway(work / "gateway.yaml", port, 1, work / "gateway.log")
        try:
            base = f"http://127.0.0.1:{port}/v1"
            load = gl.Load(base, {k: v for k, v in KEYS.items() if k != "ops"}, concurrency=8)
            rng = random.Random(5)
            for wave in range(args.minutes):
                started = time.monotonic()
                jobs = gl.jobs_for(
                    args.per_wave,
                    ["team-a", "team-b"],
                    distinct=150,
                    seed=wave % 2,
                    cascades=["support", "math"],
                )
                jobs += [("batch", q, "math") for _, q, _ in jobs[: args.per_wave // 4]]
                asyncio.run(load.run(jobs))
                answered = [o for o in load.outcomes if o.request_id and o.cache == "miss"]
                for outcome in rng.sample(answered, min(2, len(answered))):
                    gl.send_feedback(base, KEYS[outcome.key], outcome.request_id or "", "bad")
                print(f"wave {wave + 1}: {len(load.outcomes)} requests so far", flush=True)
                if wave + 1 < args.minutes:
                    time.sleep(max(0.0, 60 - (time.monotonic() - started)))
            url = f"http://127.0.0.1:{port}/dashboard?window=15m&key={KEYS['ops']}"
            OUT.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [
                    chromium,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    f"--user-data-dir={work / 'chrome'}",
                    "--hide-scrollbars",
                    "--virtual-time-budget=8000",
                    f"--screenshot={OUT}",
                    "--window-size=1400,1250",
                    url,
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
            print(f"wrote {OUT.relative_to(gl.ROOT)}")
        finally:
            gl.stop(gateway)
            gl.stop(upstream)
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
