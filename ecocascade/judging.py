"""Which attempt a judge is looking at.

The cascade tells a judge about the attempt it judges with a
:class:`~ecocascade.types.JudgeContext` (tier index, model, ladder length, …). Judges written
before the context was passed explicitly read it from :func:`current_attempt`, which the cascade
sets around every judge call.
"""

from __future__ import annotations

import contextvars

from ecocascade.types import JudgeContext

__all__ = ["current_attempt", "reset_attempt", "set_attempt"]

_attempt: contextvars.ContextVar[JudgeContext | None] = contextvars.ContextVar(
    "ecocascade_attempt", default=None
)


def current_attempt() -> JudgeContext | None:
    """The attempt the cascade is judging right now, or ``None`` outside a cascade."""
    return _attempt.get()


def set_attempt(context: JudgeContext | None) -> contextvars.Token[JudgeContext | None]:
    """Set by the cascade around each judge call; undo with :func:`reset_attempt`."""
    return _attempt.set(context)


def reset_attempt(token: contextvars.Token[JudgeContext | None]) -> None:
    _attempt.reset(token)
