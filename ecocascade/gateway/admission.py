"""Who may call what, and for how much: the gateway's admission hook.

Before a cascade (or pass-through) call the gateway asks ``admit(api_key, cascade_name,
estimate_usd)``; the hook returns a :class:`Reservation` or raises :class:`GatewayError` with an
OpenAI-style status (401 no/bad key, 403 cascade not allowed, 429 over budget or rate). After the
call — answered, failed or cancelled — the gateway calls ``settle(reservation, actual_usd)`` once.
:class:`AllowAll`, the default, admits everything when no keys are configured.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ecocascade.gateway.errors import GatewayError

__all__ = ["Admission", "AllowAll", "GatewayError", "Reservation"]


@dataclass(frozen=True, slots=True)
class Reservation:
    """What ``admit`` granted. ``key_id`` names the key in records and metrics (never the key
    itself; ``None`` for anonymous callers); ``data`` is the implementation's own (e.g. which
    budget window the estimate was reserved in)."""

    key_id: str | None
    cascade: str
    estimate_usd: float | None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    data: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Admission(Protocol):
    """Admission control: reserve before the call, settle after it.

    ``cascade_name`` is the cascade's name, or for a pass-through model the model name as the
    client sent it; ``estimate_usd`` is the gateway's worst-case estimate (``None``: unknown
    price). ``settle`` gets ``actual_usd=None`` when the real cost is unknown.
    """

    async def admit(
        self, api_key: str | None, cascade_name: str, estimate_usd: float | None
    ) -> Reservation: ...

    async def settle(self, reservation: Reservation, actual_usd: float | None) -> None: ...


class AllowAll:
    """Admit every caller, with or without a key; nothing to settle."""

    async def admit(
        self, api_key: str | None, cascade_name: str, estimate_usd: float | None
    ) -> Reservation:
        return Reservation(key_id=None, cascade=cascade_name, estimate_usd=estimate_usd)

    async def settle(self, reservation: Reservation, actual_usd: float | None) -> None:
        return None
