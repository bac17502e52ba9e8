"""Read a cascade config (YAML or a mapping) into a validated :class:`CascadeConfig`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from ecocascade.config.schema import CascadeConfig, JudgeSpec
from ecocascade.exceptions import ConfigError, format_validation_error

__all__ = [
    "load_config",
    "parse_config",
    "parse_judge_spec",
    "read_yaml",
]


def load_config(path: str | Path) -> CascadeConfig:
    """Load and validate a YAML config file. Every problem is a :class:`ConfigError` naming the
    file and the field."""
    return parse_config(read_yaml(path), source=str(path))


def read_yaml(path: str | Path, *, missing: str = "no such file") -> Any:
    """Parse a YAML file; an unreadable file or bad YAML is a :class:`ConfigError` naming the
    file (and line:column for a syntax error)."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(missing, where=str(path)) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read: {error}", where=str(path)) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"not valid YAML: {problem}", where=where) from None


def parse_config(data: Any, *, source: str = "config") -> CascadeConfig:
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"expected a mapping with 'tiers' and 'judge', got {type(data).__name__}", where=source
        )
    config: CascadeConfig = _validate(CascadeConfig, data, source)
    return config


_JUDGE_ADAPTER: TypeAdapter[Any] = TypeAdapter(JudgeSpec)


def parse_judge_spec(spec: str, *, api_base: str | None = None) -> Any:
    """Parse the CLI's short judge syntax: ``contains:TEXT``, ``regex:PATTERN``, ``llm:MODEL``,
    ``exec``, ``human``."""
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    data: dict[str, Any]
    if kind in {"contains", "regex", "llm"} and not arg:
        raise ConfigError(f"'{kind}' needs an argument, e.g. {kind}:VALUE", where="--judge")
    if kind == "contains":
        data = {"type": "contains", "text": arg}
    elif kind == "regex":
        data = {"type": "regex", "pattern": arg}
    elif kind == "llm":
        data = {"type": "llm", "model": arg, "api_base": api_base}
    elif kind in {"exec", "human"} and not arg:
        data = {"type": kind}
    else:
        raise ConfigError(
            f"unknown judge {spec!r};"
            " expected contains:TEXT, regex:PATTERN, llm:MODEL, exec or human",
            where="--judge",
        )
    return _validate(_JUDGE_ADAPTER, data, "--judge")


def _validate(schema: type[BaseModel] | TypeAdapter[Any], data: Any, source: str) -> Any:
    try:
        if isinstance(schema, TypeAdapter):
            return schema.validate_python(data)
        return schema.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error), where=source) from None
