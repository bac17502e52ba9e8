"""What the solution store keeps, how records are identified, and what never goes in."""

from __future__ import annotations

import hashlib
import os
import re
import time
import unicodedata
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SolutionRecord", "mask_secrets", "normalise_query", "record_id"]

SCHEMA_VERSION = 1


class SolutionRecord(BaseModel):
    """One verified query → solution pair, with its provenance and usage counters.

    Exported as one JSON object per line; importing the lines rebuilds the store exactly.
    """

    model_config = ConfigDict(extra="forbid")

    id: str
    namespace: str
    query: str
    solution: str
    code: str | None = None
    model: str | None = None
    tier: int | None = None
    judge: str | None = None
    judge_reason: str | None = None
    run_id: str | None = None
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)
    times_retrieved: int = 0
    successes_after_retrieval: int = 0
    schema_version: int = SCHEMA_VERSION


_SPACE = re.compile(r"\s+")


def normalise_query(query: str) -> str:
    """Case, Unicode form, whitespace and trailing punctuation do not make a query different."""
    text = unicodedata.normalize("NFKC", query).casefold()
    return _SPACE.sub(" ", text).strip().rstrip("?.!。 ")


def record_id(query: str, namespace: str) -> str:
    """Stable id: re-solving the same query in the same namespace updates, never duplicates."""
    digest = hashlib.sha256(f"{namespace}\0{normalise_query(query)}".encode()).hexdigest()
    return digest[:32]


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
    """Replace secrets with placeholders before text is stored (it goes into prompts later).

    Values of secret-looking environment variables become ``<NAME>`` (as EcoAssistant's
    placeholder keys); well-known key shapes become ``<REDACTED>``.
    """
    env = os.environ if env is None else env
    secrets = sorted(
        (
            (value, name)
            for name, value in env.items()
            if _SECRET_NAME.search(name) and len(value) >= _MIN_SECRET_LEN
        ),
        key=lambda pair: -len(pair[0]),  # longest first, so a key inside another is not split
    )
    for value, name in secrets:
        if value in text:
            text = text.replace(value, f"<{name}>")
    for shape in _SECRET_SHAPES:
        text = shape.sub("<REDACTED>", text)
    return text
