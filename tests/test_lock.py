"""The lock files scripts/setup.sh installs (pip --require-hashes) agree with pyproject.toml:
every declared dependency pinned within its range, every pin hashed, the hard pins of
scripts/constraints.txt held, and the bench lock a superset pinning shared packages alike.
A dependency added to pyproject.toml without running scripts/lock.sh fails here."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
MAIN, BENCH = ROOT / "scripts/requirements.lock", ROOT / "scripts/requirements-bench.lock"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def read_lock(path: Path) -> dict[str, tuple[str, list[str]]]:
    """name → (version, sha256 hashes)."""
    pins: dict[str, tuple[str, list[str]]] = {}
    current: str | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line)
        if match:
            current = canonicalize_name(match.group(1))
            assert current not in pins, f"{path.name}: {current} pinned twice"
            pins[current] = (match.group(2), [])
        elif current is not None and "--hash=sha256:" in line:
            pins[current][1].append(line.split("--hash=sha256:")[1].strip(" \\"))
        elif line.strip() and not line.lstrip().startswith("#"):
            current = None
            assert line.startswith("--") is False, f"{path.name}: options belong in pip's config"
    return pins


def declared(*extras: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


@pytest.mark.parametrize(
    ("lock", "extras"), [(MAIN, ("test",)), (BENCH, ("test", "bench"))], ids=["main", "bench"]
)
def test_every_declared_dependency_is_pinned_within_its_range(
    lock: Path, extras: tuple[str, ...]
) -> None:
    pins = read_lock(lock)
    for requirement in declared(*extras):
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in {lock.name}: run scripts/lock.sh"
        version = pins[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock.name} pins {name}=={version}, outside {requirement}: run scripts/lock.sh"
        )


@pytest.mark.parametrize("lock", [MAIN, BENCH], ids=["main", "bench"])
def test_every_pin_carries_a_sha256_and_the_hard_pins_hold(lock: Path) -> None:
    pins = read_lock(lock)
    for name, (_, hashes) in pins.items():
        assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), name
    for line in (ROOT / "scripts/constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            version = pins[canonicalize_name(requirement.name)][0]
            assert requirement.specifier.contains(version), (
                f"{lock.name}: {requirement} vs {version}"
            )
    assert pins["torch"][0] == "2.13.0+cpu" and len(pins["torch"][1]) == 1  # the CPU wheel only
    assert pins["litellm"][0] == "1.106.2"


def test_the_bench_lock_adds_packages_but_pins_shared_ones_alike() -> None:
    main, bench = read_lock(MAIN), read_lock(BENCH)
    assert set(main) <= set(bench)
    differ = {n: (main[n][0], bench[n][0]) for n in main if main[n][0] != bench[n][0]}
    assert differ == {}
