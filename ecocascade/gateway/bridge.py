"""How the gateway calls a cascade, and each tenant's view of one.

:func:`resolve` calls ``Cascade.resolve(request, min_tier=...)`` (the one-ladder engine of issue
12). Until that engine is on the branch, a first-turn, tool-free request is answered by
``Cascade.run(query)`` — the same cache, judge, escalation and solution store — and anything
else is a 501; the result also carries the estimate of what the last tier alone would have cost
(its price times the accepted attempt's tokens, or the query's and answer's length for a cache hit)
and the cache key, which the gateway's records and feedback need.

:func:`tenant_cascade` is a cascade whose cache and solutions namespace carry the admitted key's
namespace (``team-a/support``), made once per key namespace and reused.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from typing import TYPE_CHECKING, Any

from ecocascade.gateway.access import scoped_namespace
from ecocascade.gateway.errors import GatewayError

if TYPE_CHECKING:
    from ecocascade.controller.cascade import Cascade
    from ecocascade.controller.result import CascadeResult
    from ecocascade.gateway.admission import Reservation
    from ecocascade.gateway.app import Gateway
    from ecocascade.types import ChatRequest

__all__ = ["resolve", "tenant_cascade", "warm_up"]

_CLONES = "_ecocascade_tenant_clones"


def tenant_cascade(cascade: Cascade, reservation: Reservation | None) -> Cascade:
    """``cascade`` as the reservation's key sees it (itself for an anonymous caller)."""
    tenant = reservation.data.get("namespace") if reservation is not None else None
    if tenant is None:
        return cascade
    clones: dict[str, Cascade] = cascade.__dict__.setdefault(_CLONES, {})
    clone = clones.get(tenant)
    if clone is None:
        clone = copy.copy(cascade)
        clone.__dict__.pop(_CLONES, None)
        clone.__dict__.pop("fingerprint", None)  # a cached property: recomputed for the clone
        clone.demos = dataclasses.replace(
            cascade.demos, namespace=scoped_namespace(reservation, cascade.demos.namespace)
        )
        clones[tenant] = clone
    return clone


class _RunResult:
    """A :class:`CascadeResult` plus what the gateway reads that ``run`` does not report."""

    def __init__(self, result: CascadeResult, baseline: float | None, cache_key: str | None):
        self._result = result
        self.last_tier_cost_usd = baseline
        self.cache_key = cache_key

    def __getattr__(self, name: str) -> Any:
        return getattr(self._result, name)


async def resolve(cascade: Cascade, request: ChatRequest, min_tier: int) -> Any:
    engine = getattr(cascade, "resolve", None)
    if engine is not None:
        return await engine(request, min_tier=min_tier)
    query = request.query
    if not request.is_first_turn or request.tools or request.response_format or not query:
        raise GatewayError(
            501,
            "multi-turn, tool and JSON-mode requests need the one-ladder engine (issue 12), "
            "which this build does not have yet",
            code="not_implemented",
        )
    result = await cascade.run(query)
    return _RunResult(result, _baseline(cascade, result, query), _cache_key(cascade, result, query))


def _baseline(cascade: Cascade, result: CascadeResult, query: str) -> float | None:
    from ecocascade.models.pricing import known_price

    price = known_price(cascade.tiers[-1])
    if price is None or not result.success:
        return None
    accepted = result.accepted_attempt
    if accepted is not None and accepted.usage.input_tokens:
        return price.cost(accepted.usage.input_tokens, accepted.usage.output_tokens)
    answer = result.answer or ""
    return price.cost(len(query) // 4 + 8, max(1, len(answer) // 4))


def _cache_key(cascade: Cascade, result: CascadeResult, query: str) -> str | None:
    if result.cache is not None:
        return result.cache.key
    if cascade.cache is None or not result.success:
        return None
    return cascade.cache.key(query, cascade.demos.namespace, cascade.fingerprint)


async def warm_up(gateway: Gateway) -> None:
    """At start-up, not on a request: load each solution store's embedder and create the
    collection of every namespace a request can use (every key namespace in every cascade)."""
    from ecocascade.gateway.access import KeyAdmission

    admission = gateway.admission
    tenants: list[str | None] = [None]
    if isinstance(admission, KeyAdmission) and not admission.keys.open:
        tenants = [*sorted({p.namespace for p in admission.keys.policies.values()})]
    for cascade in gateway.cascades.values():
        store = cascade.store
        if store is None:
            continue
        await store.embedder.embed(["warm up"])
        base = cascade.demos.namespace
        for tenant in tenants:
            namespace = base if tenant is None else f"{tenant}/{base}"
            await asyncio.to_thread(store._open, namespace)
