"""Where a query starts on the ladder, and which attempt a judge is looking at.

A :class:`Router` lets the cascade skip cheap tiers that are likely to fail for a query (saving
the cost of doomed attempts). :func:`current_attempt` tells a judge which tier produced the
answer it is judging, so one judge can treat tiers differently (a learned judge's per-model
threshold; an agreement judge that accepts the last tier outright) without changing the
:class:`~ecocascade.types.Judge` protocol.
"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ecocascade.models.tier import Tier

__all__ = ["AttemptContext", "Router", "current_attempt", "recorded_model_name"]


@runtime_checkable
class Router(Protocol):
    """Chooses the tier a query starts at: an index into ``tiers`` (0 = cheapest)."""

    async def start_tier(self, query: str, tiers: Sequence[Tier]) -> int: ...


@dataclass(frozen=True, slots=True)
class AttemptContext:
    """The attempt being judged: its tier index, the tier's label, and the ladder's length."""

    tier: int
    model: str
    tiers: int

    @property
    def is_last(self) -> bool:
        return self.tier == self.tiers - 1


_attempt: contextvars.ContextVar[AttemptContext | None] = contextvars.ContextVar(
    "ecocascade_attempt", default=None
)


def current_attempt() -> AttemptContext | None:
    """The attempt the cascade is judging right now, or ``None`` outside a cascade."""
    return _attempt.get()


def set_attempt(context: AttemptContext | None) -> contextvars.Token[AttemptContext | None]:
    """Set by the cascade around each judge call; reset with ``_attempt.reset(token)``."""
    return _attempt.set(context)


def reset_attempt(token: contextvars.Token[AttemptContext | None]) -> None:
    _attempt.reset(token)


def recorded_model_name(label: str) -> str:
    """A tier label as recorded data names the model: ``replay/gpt-4`` → ``gpt-4``."""
    return label.removeprefix("replay/")
