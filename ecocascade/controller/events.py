"""What :meth:`Cascade.stream <ecocascade.controller.cascade.Cascade.stream>` yields.

One :class:`AttemptFinished` per attempt (as soon as it is judged); :class:`TextDelta` and
:class:`~ecocascade.types.ToolCallDelta` pieces of the answer, live, only while the last tier of
the ladder answers (an earlier tier's answer is judged before anyone may see it, so nothing is
emitted for it); then one :class:`Finished` carrying the result.
"""

from __future__ import annotations

from dataclasses import dataclass

from ecocascade.controller.result import Attempt, CascadeResult
from ecocascade.types import ToolCallDelta

__all__ = ["AttemptFinished", "CascadeEvent", "Finished", "TextDelta", "ToolCallDelta"]


@dataclass(frozen=True, slots=True)
class AttemptFinished:
    """One tier's attempt, judged (or failed)."""

    attempt: Attempt


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the last tier's answer text, as the model writes it."""

    text: str


@dataclass(frozen=True, slots=True)
class Finished:
    """The end of the walk. ``streamed`` is true when the answer's pieces were already emitted
    (the last tier answered, live); otherwise send ``result.message`` whole."""

    result: CascadeResult
    streamed: bool = False


CascadeEvent = AttemptFinished | TextDelta | ToolCallDelta | Finished
