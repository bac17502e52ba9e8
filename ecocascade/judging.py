"""How the cascade asks a judge, and which attempt a judge is looking at.

The cascade tells a judge about the attempt it judges with a
:class:`~ecocascade.types.JudgeContext` (tier index, model, ladder length, the request, earlier
attempts, the solution), passed as ``context=``. Judges written for the older two-argument
``judge(query, answer)`` keep working: :func:`ask_judge` decides once per judge function whether it
takes ``context``, and sets :func:`current_attempt` around every call for judges that read it.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import weakref
from typing import Any

from ecocascade.types import Judge, JudgeContext, Verdict

__all__ = ["accepts_context", "ask_judge", "current_attempt", "reset_attempt", "set_attempt"]

_attempt: contextvars.ContextVar[JudgeContext | None] = contextvars.ContextVar(
    "ecocascade_attempt", default=None
)
_takes_context: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def current_attempt() -> JudgeContext | None:
    """The attempt the cascade is judging right now, or ``None`` outside a cascade."""
    return _attempt.get()


def set_attempt(context: JudgeContext | None) -> contextvars.Token[JudgeContext | None]:
    """Set by the cascade around each judge call; undo with :func:`reset_attempt`."""
    return _attempt.set(context)


def reset_attempt(token: contextvars.Token[JudgeContext | None]) -> None:
    _attempt.reset(token)


def accepts_context(judge: Judge) -> bool:
    """Whether ``judge.judge`` takes ``context`` (decided once per function)."""
    method = judge.judge
    function = getattr(method, "__func__", method)
    try:
        return _takes_context[function]
    except (KeyError, TypeError):
        pass
    try:
        parameters = inspect.signature(method).parameters
    except (TypeError, ValueError):  # a builtin or C callable: assume the old signature
        takes = False
    else:
        takes = "context" in parameters or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
        )
    with contextlib.suppress(TypeError):  # not weak-referenceable: decided again next time
        _takes_context[function] = takes
    return takes


async def ask_judge(judge: Judge, query: str, answer: str, context: JudgeContext | None) -> Verdict:
    """``judge.judge(query, answer, context=context)`` — or without ``context`` for a judge of the
    old signature — with :func:`current_attempt` set to ``context`` meanwhile."""
    token = set_attempt(context) if context is not None else None
    try:
        if accepts_context(judge):
            return await judge.judge(query, answer, context=context)
        return await judge.judge(query, answer)
    finally:
        if token is not None:
            reset_attempt(token)
