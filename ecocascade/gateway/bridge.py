"""Each tenant's view of a cascade, and what the gateway prepares at start-up.

:func:`tenant_cascade` is a cascade whose cache and solutions namespace carry the admitted key's
namespace (``team-a/support``), made once per key namespace and reused.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from typing import TYPE_CHECKING

from ecocascade.gateway.access import scoped_namespace

if TYPE_CHECKING:
    from ecocascade.controller.cascade import Cascade
    from ecocascade.gateway.admission import Reservation
    from ecocascade.gateway.app import Gateway

__all__ = ["tenant_cascade", "warm_up"]

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


async def warm_up(gateway: Gateway) -> None:
    """At start-up, not on a request: load each solution store's embedder and create the
    collection of every namespace a request can use (every key namespace in every cascade)."""
    from ecocascade.gateway.access import KeyAdmission

    admission = gateway.admission
    tenants: list[str | None] = [None]
    if isinstance(admission, KeyAdmission) and not admission.keys.open:
        tenants = [*sorted({p.namespace for p in admission.keys.policies.values()})]
    from ecocascade.store.chroma import SolutionStore

    for cascade in gateway.cascades.values():
        store = cascade.store
        if not isinstance(store, SolutionStore):
            continue
        await store.embedder.embed(["warm up"])
        base = cascade.demos.namespace
        for tenant in tenants:
            namespace = base if tenant is None else f"{tenant}/{base}"
            await asyncio.to_thread(store._open, namespace)
