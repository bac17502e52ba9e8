"""``ecocascade serve``: an OpenAI-compatible HTTP gateway in front of named cascades.

The plug points are small protocols with in-process defaults, importable without FastAPI:
:class:`GatewayState` (sticky tiers, single-flight, feedback map), :class:`Admission`
(keys/budgets: ``admit`` → :class:`Reservation`, then ``settle``) and :class:`RecordSink`
(one :class:`RequestRecord` per request, one :class:`FeedbackEvent` per feedback).
``create_app`` / :class:`Gateway` (FastAPI) are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ecocascade.gateway.admission import Admission, AllowAll, Reservation
from ecocascade.gateway.config import GatewayConfig, load_gateway_config, parse_gateway_config
from ecocascade.gateway.errors import GatewayError
from ecocascade.gateway.records import (
    CacheOutcome,
    Escalation,
    FeedbackEvent,
    RecordSink,
    RequestRecord,
    RequestStatus,
)
from ecocascade.gateway.state import FeedbackTarget, GatewayState, InProcessState

if TYPE_CHECKING:
    from ecocascade.gateway.app import Gateway, create_app
    from ecocascade.gateway.metrics import PrometheusSink

__all__ = [
    "Admission",
    "AllowAll",
    "CacheOutcome",
    "Escalation",
    "FeedbackEvent",
    "FeedbackTarget",
    "Gateway",
    "GatewayConfig",
    "GatewayError",
    "GatewayState",
    "InProcessState",
    "PrometheusSink",
    "RecordSink",
    "RequestRecord",
    "RequestStatus",
    "Reservation",
    "create_app",
    "load_gateway_config",
    "parse_gateway_config",
]

_LAZY = {
    "Gateway": "ecocascade.gateway.app",
    "create_app": "ecocascade.gateway.app",
    "PrometheusSink": "ecocascade.gateway.metrics",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
