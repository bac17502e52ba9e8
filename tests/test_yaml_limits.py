"""Hostile or sloppy YAML (configs and scenarios share one reader) fails fast with a clear
ConfigError: alias bombs, recursive aliases, duplicate keys, absurd nesting, huge files."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ecocascade.config import load_config
from ecocascade.config.loader import read_yaml
from ecocascade.eval.scenario import load_scenario
from ecocascade.exceptions import ConfigError


def alias_bomb(levels: int = 9, fan_out: int = 10) -> str:
    """A billion laughs shaped as a valid config: a judge of all-judges of … of 10**9 leaves."""
    lines = ["j0: &j0 {type: contains, text: x}"]
    for level in range(1, levels + 1):
        refs = ",".join([f"*j{level - 1}"] * fan_out)
        lines.append(f"j{level}: &j{level} {{type: all, judges: [{refs}]}}")
    lines.append("tiers: [{model: m}]")
    lines.append(f"judge: *j{levels}")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_config_is_refused_quickly_without_eating_memory(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())
    assert path.stat().st_size < 1024
    # In a child with a 1 GiB address-space cap, so a regression fails this test, not the machine.
    script = textwrap.dedent(
        f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        from ecocascade.config import load_config
        from ecocascade.exceptions import ConfigError
        try:
            load_config({str(path)!r})
        except ConfigError as error:
            print(error)
            sys.exit(0)
        sys.exit("loaded an alias bomb")
        """
    )
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "alias" in proc.stdout and str(path) in proc.stdout
    assert time.monotonic() - started < 30


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("tiers: &t [{model: m}, *t]\njudge: {type: contains, text: x}\n")
    with pytest.raises(ConfigError, match="recursive alias"):
        load_config(path)


def test_anchors_aliases_and_merge_keys_still_work(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(
        textwrap.dedent(
            """
            base: &base {api_base: "http://127.0.0.1:9/v1", timeout_s: 5}
            tiers:
              - {<<: *base, model: openai/small}
              - {<<: *base, model: openai/large, timeout_s: 9}
            judge: {type: contains, text: x}
            """
        )
    )
    data = read_yaml(path)
    assert data["tiers"][1] == {"api_base": "http://127.0.0.1:9/v1", "timeout_s": 9,
                                "model": "openai/large"}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ("tiers: [{model: a}]\njudge: {type: contains, text: x}\njudge: {type: exec}\n",
         "judge", 3),
        ("tiers:\n  - model: a\n    timeout_s: 5\n    model: b\njudge: {type: exec}\n",
         "model", 4),
    ],
    ids=["top-level", "nested"],
)  # fmt: skip
def test_a_duplicate_key_is_an_error_naming_the_key_and_line(
    tmp_path: Path, text: str, key: str, line: int
) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert f"duplicate key {key!r}" in message
    assert message.startswith(f"{path}:{line}:")


def test_scenarios_use_the_same_strict_reader(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text("name: s\nname: t\ntiers: [{model: m}]\ntasks: []\n")
    with pytest.raises(ConfigError, match="duplicate key 'name'"):
        load_scenario(path)


@pytest.mark.parametrize("style", ["flow", "block"])
def test_a_20000_deep_config_is_a_config_error_not_a_recursion_error(
    tmp_path: Path, style: str
) -> None:
    depth = 20_000
    path = tmp_path / "deep.yaml"
    if style == "flow":
        path.write_text("tiers: " + "[" * depth + "]" * depth + "\n")
    else:
        path.write_text("tiers:\n" + "- " * depth + "x\n")  # a list of a list of … (block)
    with pytest.raises(ConfigError, match="nested deeper than"):
        load_config(path)


def test_an_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"# padding\n" * 2_000_000)  # 20 MB
    with pytest.raises(ConfigError, match="too large"):
        read_yaml(path)
