"""The gateway's plug-ins, chosen from its config.

=============  =================================  ==========================================
               no ``redis:`` (one replica)         ``redis: redis://…`` (any number)
=============  =================================  ==========================================
state          :class:`InProcessState`            :class:`~.redis_state.RedisState`
admission      :class:`AllowAll` without keys; :class:`~.access.KeyAdmission` with keys, its
               budgets and rate limits in :class:`~.limits.MemoryLimits` / :class:`RedisLimits`
sinks          :class:`~.stats.StatsSink` on :class:`MemoryStats` / :class:`RedisStats`
=============  =================================  ==========================================

Anything else can be passed to :func:`~ecocascade.gateway.create_app` instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecocascade.gateway.admission import Admission, AllowAll
from ecocascade.gateway.config import GatewayConfig
from ecocascade.gateway.records import RecordSink
from ecocascade.gateway.state import GatewayState, InProcessState

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ecocascade.gateway.app import Gateway

__all__ = ["add_routes", "build_admission", "build_sinks", "build_state"]


def build_state(config: GatewayConfig) -> GatewayState:
    if config.redis:
        from ecocascade.gateway.redis_state import RedisState

        return RedisState(config.redis)
    return InProcessState()


def build_admission(config: GatewayConfig) -> Admission:
    if config.access is None or not config.access.keys:
        return AllowAll()
    from ecocascade.gateway.access import KeyAdmission
    from ecocascade.gateway.apikeys import KeyRing
    from ecocascade.gateway.limits import Limits, MemoryLimits, RedisLimits

    keys = KeyRing.from_spec(config.access, cascades=[*config.cascades, *config.models])
    limits: Limits = RedisLimits(config.redis) if config.redis else MemoryLimits()
    return KeyAdmission(keys, limits)


def build_sinks(config: GatewayConfig) -> list[RecordSink]:
    from ecocascade.gateway.stats import MemoryStats, RedisStats, StatsSink, StatsStore

    store: StatsStore = RedisStats(config.redis) if config.redis else MemoryStats()
    return [StatsSink(store)]


def add_routes(app: FastAPI, gateway: Gateway) -> None:
    """The dashboard's routes, fed by the gateway's first :class:`StatsSink` (one is added when
    the gateway was given sinks without one)."""
    if not gateway.config.dashboard:
        return
    from ecocascade.gateway.dashboard import add_dashboard
    from ecocascade.gateway.stats import MemoryStats, StatsSink

    sink = next((s for s in gateway.sinks if isinstance(s, StatsSink)), None)
    if sink is None:
        sink = StatsSink(MemoryStats())
        gateway.add_sink(sink)
    top = max((len(c.tiers) - 1 for c in gateway.config.cascades.values()), default=0)
    add_dashboard(app, sink, gateway.admission, top_tier=top)


def check_deployment(config: GatewayConfig, *, workers: int = 1) -> None:
    """Fail before anything starts when the config cannot work as deployed: bad keys (an unset
    ``key_env``), or budgets / rate limits on several workers without Redis (each worker would
    count its own share: budgets multiplied by the number of workers)."""
    from ecocascade.exceptions import ConfigError

    build_admission(config)  # builds the key ring: every key error is a ConfigError here
    limited = config.access is not None and any(
        key.budget is not None or key.rate_limit is not None for key in config.access.keys
    )
    if workers > 1 and not config.redis and limited:
        raise ConfigError(
            f"--workers {workers} with budgets or rate limits needs redis: redis://... "
            "(in-process counters would give every worker the whole budget)",
            where="redis",
        )
