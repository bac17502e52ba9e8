"""The contracts between ecocascade's replaceable parts, and the small values they exchange.

Pluggable parts are Protocols with one async method, so anything with the right shape plugs in
(no base class to inherit). Values are frozen dataclasses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ecocascade.models.client import TierClient

__all__ = [
    "Demonstration",
    "Embedder",
    "Judge",
    "Message",
    "Solution",
    "Solver",
    "Task",
    "Usage",
    "Verdict",
    "add_costs",
]

Message = Mapping[str, Any]
"""One chat message in OpenAI/LiteLLM shape: ``{"role": "user", "content": "..."}``."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens spent by one or more model calls."""

    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )


def add_costs(*costs: float | None) -> float | None:
    """Sum USD costs where ``None`` means *unknown*: any unknown part makes the sum unknown."""
    total = 0.0
    for cost in costs:
        if cost is None:
            return None
        total += cost
    return total


@dataclass(frozen=True, slots=True)
class Verdict:
    """A judge's decision on one answer.

    ``cost_usd`` is what reaching the verdict cost (an LLM judge's own tokens); ``None`` when the
    judge used a model with no known price.
    """

    accepted: bool
    reason: str = ""
    judge: str = ""
    cost_usd: float | None = 0.0
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True, slots=True)
class Demonstration:
    """A prior query and its verified solution, retrieved to guide the model on a similar query.

    ``similarity`` is the cosine similarity of the two queries' embeddings (1.0 = same direction).
    """

    id: str
    query: str
    solution: str
    similarity: float
    model: str | None = None


@dataclass(frozen=True, slots=True)
class Task:
    """What a solver is asked to do on one tier: the query, plus demonstrations to imitate."""

    query: str
    system_prompt: str | None = None
    demonstrations: Sequence[Demonstration] = ()


@dataclass(frozen=True, slots=True)
class Solution:
    """What a solver produced on one tier: the answer plus what producing it cost."""

    answer: str
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = 0.0
    model_calls: int = 1
    retries: int = 0
    transcript: Sequence[Message] = ()


@runtime_checkable
class Judge(Protocol):
    """Decides whether an answer resolves the query: the cascade's success criterion.

    Raise :class:`~ecocascade.exceptions.JudgeError` when no verdict can be reached; the cascade
    then treats the answer as not accepted (an unverified answer is never passed off as a success).
    """

    @property
    def name(self) -> str: ...

    async def judge(self, query: str, answer: str) -> Verdict: ...


@runtime_checkable
class Solver(Protocol):
    """Produces an answer for a task using one tier's model.

    The default, :class:`~ecocascade.controller.solvers.ChatSolver`, is a single chat completion;
    agent solvers may call the model many times, summing usage and cost into the Solution.
    """

    async def solve(self, task: Task, model: TierClient) -> Solution: ...


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors for the solution store and the semantic cache.

    ``name`` identifies the vector space (model and version): vectors from different names are
    not comparable, so a store refuses an embedder other than the one it was built with.
    Vectors should be L2-normalised.
    """

    @property
    def name(self) -> str: ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...
