"""Prompt compression before/after: the same scenario evaluated with and without ``compress``.

    nice .venv/bin/python evals/bench_compress.py scenarios/longcontext.yaml
    nice .venv/bin/python evals/bench_compress.py scenarios/quickstart.yaml --limit 24 \\
        --strategy hierarchy+demos --tiers 1

Writes two copies of the scenario (tiers unchanged / with ``compress: {rate, min_words,
scorer}`` on the tiers named by ``--tiers``, positions, default all), runs ``ecocascade eval``
on each with the same ``--limit`` and strategy, and prints success, input tokens and cost side
by side. Runs real local models: minutes on a busy 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml


def run(scenario: Path, out: Path, limit: int | None, strategy: str) -> dict[str, Any]:
    argv = [sys.executable, "-m", "ecocascade", "eval", str(scenario), "-s", strategy,
            "-o", str(out)]  # fmt: skip
    if limit:
        argv += ["--limit", str(limit)]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    (row,) = json.loads((out / "results.json").read_text())["strategies"]
    return dict(row)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", type=Path)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--strategy", default="hierarchy")
    parser.add_argument("--tiers", type=int, nargs="*", help="tier positions to compress (all)")
    parser.add_argument("--rate", type=float, default=0.5)
    parser.add_argument("--min-words", type=int, default=60)
    parser.add_argument("--scorer", default="smollm2")
    args = parser.parse_args()

    data = yaml.safe_load(args.scenario.read_text())
    compressed = json.loads(json.dumps(data))
    chosen = range(len(data["tiers"])) if not args.tiers else args.tiers
    settings = {"rate": args.rate, "min_words": args.min_words, "scorer": args.scorer}
    for i in chosen:
        compressed["tiers"][i]["compress"] = settings
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, variant in (("before", data), ("after", compressed)):
            path = Path(tmp) / f"{data['name']}-{label}.yaml"
            path.write_text(yaml.safe_dump(variant, sort_keys=False))
            rows[label] = run(path, Path(tmp) / label, args.limit, args.strategy)
    print(
        f"{args.scenario} {args.strategy} limit={args.limit} compress={settings} on {list(chosen)}"
    )
    keys = ("tasks", "success_rate", "input_tokens", "cached_input_tokens", "output_tokens",
            "total_cost_usd", "escalation_rate", "latency_p50_s")  # fmt: skip
    for key in keys:
        print(f"  {key:<16} {rows['before'].get(key)!s:>12} -> {rows['after'].get(key)!s:>12}")


if __name__ == "__main__":
    main()
