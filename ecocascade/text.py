"""Text utilities shared by the cascade, the judges, the solution store and the cache.

Pure functions on strings, with no ecocascade imports: code blocks in a model's answer, the
normal form of a query (the key of records and cache entries), secret masking before storage.
"""

from __future__ import annotations

import functools
import os
import re
import textwrap
import unicodedata
from collections.abc import Mapping
from typing import Any, TypeVar, cast

__all__ = [
    "MAX_QUERY_CHARS",
    "MAX_STORED_QUERY_CHARS",
    "extract_python_code",
    "mask_secrets",
    "mask_secrets_in",
    "normalise_query",
    "truncate",
    "without_fenced_blocks",
]

T = TypeVar("T")

_PYTHON_TAGS = frozenset({"python", "py", "python3"})
_OPEN_FENCE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n]*?)[ \t]*$")
_CLOSE_FENCE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*$")


def extract_python_code(text: str) -> str | None:
    """Return the code of the last fenced Python block in ``text``.

    Blocks tagged ``python``, ``py`` or ``python3`` win; failing those, the last untagged block.
    Blocks tagged with another language (```` ```bash ````) are never Python. Both ```` ``` ```` and
    ``~~~`` fences are recognised; a block left open at the end of the text runs to the end.
    Returns ``None`` when there is no candidate block.
    """
    last_python: str | None = None
    last_untagged: str | None = None
    for tag, code in _fenced_blocks(text):
        if tag in _PYTHON_TAGS:
            last_python = code
        elif not tag:
            last_untagged = code
    return last_python if last_python is not None else last_untagged


def without_fenced_blocks(text: str) -> str:
    """``text`` with every fenced block removed, fences included — a block left open at the end
    removes the rest of the text — parsed as :func:`extract_python_code` parses them."""
    return "\n".join(_split_fences(text)[0])


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    """Split markdown into ``(lower-cased tag, dedented code)`` for every fenced block."""
    return _split_fences(text)[1]


def _split_fences(text: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The lines outside fenced blocks, and ``(lower-cased tag, dedented code)`` per block."""
    outside: list[str] = []
    blocks: list[tuple[str, str]] = []
    fence: str | None = None
    tag = ""
    body: list[str] = []
    for line in text.splitlines():
        if fence is None:
            opening = _OPEN_FENCE.match(line)
            if opening is None or (opening["fence"][0] == "`" and "`" in opening["info"]):
                outside.append(line)  # prose, or inline code such as ```x``` (CommonMark)
                continue
            info = opening["info"]
            fence = opening["fence"]
            tag = info.split(maxsplit=1)[0].strip("{}.").lower() if info else ""
            body = []
            continue
        closing = _CLOSE_FENCE.match(line)
        if closing and closing["fence"][0] == fence[0] and len(closing["fence"]) >= len(fence):
            blocks.append((tag, _block_code(body)))
            fence = None
        else:
            body.append(line)
    if fence is not None:
        blocks.append((tag, _block_code(body)))
    return outside, blocks


def _block_code(lines: list[str]) -> str:
    code = textwrap.dedent("\n".join(lines)).strip("\n")
    return code + "\n" if code else ""


MAX_QUERY_CHARS = 100_000
"""The default hard cap on one query (``Cascade(max_query_chars=...)``): a longer one is a
:class:`~ecocascade.exceptions.ConfigError`, before any model is called."""

MAX_STORED_QUERY_CHARS = 20_000
"""The default cap on a query the solution store records or the cache keeps
(``max_query_chars=`` on both), and the length a demonstration's query is cut to."""


def truncate(text: str, limit: int) -> str:
    """``text`` if it has at most ``limit`` characters, else its first ``limit`` characters and
    a marker saying how many were cut: ``"abc… [20 characters cut]"``."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} characters cut]"


_SPACE = re.compile(r"\s+")


def normalise_query(query: str) -> str:
    """Case, Unicode form, whitespace and trailing punctuation do not make a query different."""
    text = unicodedata.normalize("NFKC", query).casefold()
    return _SPACE.sub(" ", text).strip().rstrip("?.!。 ")


# Environment variables whose values are secrets, by name.
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)", re.IGNORECASE)
# Well-known key shapes, for secrets that did not come from this process's environment.
_SECRET_SHAPES = [
    re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_\-]{16,}"),  # OpenAI / Anthropic
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),  # GitHub
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b"),  # Slack
    re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b"),  # Google
]
_MIN_SECRET_LEN = 8


def mask_secrets(text: str, env: Mapping[str, str] | None = None) -> str:
    """Replace secrets with placeholders before text is kept or shown anywhere: the solution
    store, the response cache, attempts' reasons and error messages, tapes, eval outputs, CLI
    JSON and log events all go through this one function.

    Values of secret-looking environment variables (``*_API_KEY``, ``*TOKEN*``, ``*SECRET*``,
    ``*PASSWORD*``, …; at least 8 characters) become ``<NAME>`` (as EcoAssistant's placeholder
    keys); well-known key shapes (``sk-…``, ``AKIA…``, ``ghp_…``, ``xox…-``, ``AIza…``) become
    ``<REDACTED>``. ``env`` defaults to this process's environment, read at each call.
    """
    return _mask(text, _env_secrets(env))


def mask_secrets_in(value: T, env: Mapping[str, str] | None = None) -> T:
    """``value`` with :func:`mask_secrets` applied to every string in it: nested dicts (values;
    keys are field names and kept), lists and tuples are rebuilt, anything else is returned
    as it is. For a JSON-able structure about to be written or printed."""
    secrets = _env_secrets(env)

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return _mask(item, secrets)
        if isinstance(item, dict):
            return {k: walk(v) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v) for v in item]
        if isinstance(item, tuple):
            return tuple(walk(v) for v in item)
        return item

    return cast(T, walk(value))


def _env_secrets(env: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    # Keyed by the whole environment, so a variable set or changed later is seen at once.
    return _secrets_of(tuple((os.environ if env is None else env).items()))


@functools.lru_cache(maxsize=16)
def _secrets_of(items: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    return tuple(
        sorted(
            (
                (value, name)
                for name, value in items
                if _SECRET_NAME.search(name) and len(value) >= _MIN_SECRET_LEN
            ),
            key=lambda pair: -len(pair[0]),  # longest first, so a key inside another is kept whole
        )
    )


def _mask(text: str, secrets: tuple[tuple[str, str], ...]) -> str:
    if not text:
        return text
    for value, name in secrets:
        if value in text:
            text = text.replace(value, f"<{name}>")
    for shape in _SECRET_SHAPES:
        text = shape.sub("<REDACTED>", text)
    return text
