"""The README's two commands are the ones CI and users run, and they point at real files."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quickstart", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the Quickstart section starts with a bash block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    _, tests = quickstart_commands()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci[-1] == tests
    assert "pytest" in tests and "--test" in tests


def test_the_main_job_is_the_quickstart_eval_on_a_scenario_that_exists() -> None:
    main_job, _ = quickstart_commands()
    assert main_job.startswith("scripts/setup.sh && .venv/bin/ecocascade eval ")
    scenario = main_job.rsplit(" ", 1)[1]
    assert (ROOT / scenario).is_file()
