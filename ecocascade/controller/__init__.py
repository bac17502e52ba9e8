"""The hierarchy controller: where escalation happens."""

from ecocascade.controller.cascade import Cascade
from ecocascade.controller.events import AttemptFinished, CascadeEvent, Finished, TextDelta
from ecocascade.controller.result import Attempt, CascadeResult
from ecocascade.controller.solvers import ChatSolver

__all__ = [
    "Attempt",
    "AttemptFinished",
    "Cascade",
    "CascadeEvent",
    "CascadeResult",
    "ChatSolver",
    "Finished",
    "TextDelta",
]
