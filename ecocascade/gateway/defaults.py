"""The gateway's default plug-ins, chosen from its config: in-process state, admit everyone,
no extra record sinks. Deployments that share state across replicas or enforce keys and budgets
choose other implementations here (or pass them to :func:`~ecocascade.gateway.create_app`)."""

from __future__ import annotations

from ecocascade.gateway.admission import Admission, AllowAll
from ecocascade.gateway.config import GatewayConfig
from ecocascade.gateway.records import RecordSink
from ecocascade.gateway.state import GatewayState, InProcessState

__all__ = ["build_admission", "build_sinks", "build_state"]


def build_state(config: GatewayConfig) -> GatewayState:
    return InProcessState()


def build_admission(config: GatewayConfig) -> Admission:
    return AllowAll()


def build_sinks(config: GatewayConfig) -> list[RecordSink]:
    return []
