"""What the solution store keeps, how records are identified, and what never goes in."""

from __future__ import annotations

import hashlib
import time

from pydantic import BaseModel, ConfigDict, Field

from ecocascade.text import normalise_query

__all__ = ["SolutionRecord", "record_id"]

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


def record_id(query: str, namespace: str) -> str:
    """Stable id: re-solving the same query in the same namespace updates, never duplicates."""
    digest = hashlib.sha256(f"{namespace}\0{normalise_query(query)}".encode()).hexdigest()
    return digest[:32]
