"""How long `import ecocascade` and `ecocascade --help` take, in fresh processes.

    .venv/bin/python evals/bench_startup.py [--runs 15]

Prints the median and min wall time of each over N runs (the first, cold run is discarded).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def measure(argv: list[str], runs: int) -> list[float]:
    times = []
    for i in range(runs + 1):
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        if i:  # drop the cold first run (page cache)
            times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    cli = shutil.which("ecocascade", path=str(Path(sys.executable).parent)) or "ecocascade"
    cases = {
        "python -c pass (baseline)": [sys.executable, "-c", "pass"],
        "import ecocascade": [sys.executable, "-c", "import ecocascade"],
        "ecocascade --help": [cli, "--help"],
        "import litellm (for scale)": [
            sys.executable, "-c", "from ecocascade._env import import_litellm; import_litellm()"
        ],
    }  # fmt: skip
    print(f"{'case':32} {'median':>8} {'min':>8}   ({runs} runs)")
    for name, argv in cases.items():
        times = measure(argv, runs)
        print(f"{name:32} {statistics.median(times):7.3f}s {min(times):7.3f}s")


if __name__ == "__main__":
    main()
