"""Read a cascade config (YAML or a mapping) into a validated :class:`CascadeConfig`."""

from __future__ import annotations

import functools
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


# Limits of the one YAML reader (configs and scenarios). Real files are far below them: the
# quickstart scenario is 8 KB, ~700 nodes, 6 levels deep.
MAX_YAML_BYTES = 10 * 1024 * 1024
MAX_YAML_NODES = 1_000_000  # counted with every alias expanded (a 1 KB alias bomb: 10**9)
MAX_YAML_DEPTH = 100


def read_yaml(path: str | Path, *, missing: str = "no such file") -> Any:
    """Parse a YAML file; an unreadable file or bad YAML is a :class:`ConfigError` naming the
    file (and line:column where there is one).

    Stricter than ``yaml.safe_load``: a duplicate key is an error (not "the last one wins"),
    and files over :data:`MAX_YAML_BYTES`, nested deeper than :data:`MAX_YAML_DEPTH` or holding
    more than :data:`MAX_YAML_NODES` nodes once aliases are expanded (an alias bomb) are refused
    before any Python object is built.
    """
    import yaml

    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_YAML_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(missing, where=str(path)) from None
    except OSError as error:  # a directory, no permission, …
        raise ConfigError(f"cannot read: {error.strerror or error}", where=str(path)) from None
    if len(raw) > MAX_YAML_BYTES:
        raise ConfigError(f"too large (over {MAX_YAML_BYTES // 2**20} MiB)", where=str(path))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"not UTF-8 text: {error.reason} at byte {error.start}", where=str(path)
        ) from None
    loader = _strict_loader()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_graph(node, loader)
        return loader.construct_document(node)
    except _YamlLimitError as error:
        raise ConfigError(error.message, where=_at(path, error.mark)) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"not valid YAML: {problem}", where=_at(path, mark)) from None
    finally:
        loader.dispose()


def _at(path: Path, mark: Any) -> str:
    return f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)


class _YamlLimitError(Exception):
    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.message, self.mark = message, mark


@functools.cache
def _strict_loader() -> type[Any]:
    import yaml

    class StrictLoader(yaml.SafeLoader):
        """SafeLoader that refuses to compose nodes nested deeper than MAX_YAML_DEPTH (the
        composer recurses: 20,000 levels would be a RecursionError)."""

        _depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            self._depth += 1
            try:
                if self._depth > MAX_YAML_DEPTH:
                    raise _YamlLimitError(
                        f"nested deeper than {MAX_YAML_DEPTH} levels",
                        self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                    )
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

    return StrictLoader


def _check_graph(root: Any, loader: Any) -> None:
    """Walk the composed node graph (aliases are shared nodes, so this is cheap even for a
    bomb): refuse a recursive alias, more than MAX_YAML_NODES nodes once expanded, and a
    mapping with a duplicate key. Iterative, so depth cannot overflow the stack here."""
    from yaml.nodes import MappingNode, ScalarNode, SequenceNode

    def children(node: Any) -> list[Any]:
        if isinstance(node, SequenceNode):
            return list(node.value)
        if isinstance(node, MappingNode):
            return [part for pair in node.value for part in pair]
        return []

    expanded: dict[int, int] = {}  # id(node) -> nodes in its subtree, aliases expanded
    open_nodes: set[int] = set()  # on the current path: meeting one again is a cycle
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        if finished:
            open_nodes.discard(id(node))
            size = 1 + sum(expanded[id(child)] for child in children(node))
            if size > MAX_YAML_NODES:
                raise _YamlLimitError(
                    f"more than {MAX_YAML_NODES:,} values once its aliases are expanded"
                    " (an alias bomb?)",
                    node.start_mark,
                )
            expanded[id(node)] = size
            continue
        if id(node) in expanded:
            continue
        if id(node) in open_nodes:
            raise _YamlLimitError(
                "a recursive alias (a value that contains itself)", node.start_mark
            )
        if isinstance(node, MappingNode):
            _check_unique_keys(node, loader, ScalarNode)
        open_nodes.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in children(node) if id(child) not in expanded)


def _check_unique_keys(node: Any, loader: Any, scalar: type[Any]) -> None:
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, scalar) or key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *base` merges may be overridden: that is what they are for
        key = loader.construct_object(key_node)
        try:
            first = seen.setdefault(key, key_node)
        except TypeError:  # an unhashable key: YAML's own error comes when it is built
            continue
        if first is not key_node:
            raise _YamlLimitError(
                f"duplicate key {key!r} (first at line {first.start_mark.line + 1})",
                key_node.start_mark,
            )


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
