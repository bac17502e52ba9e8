"""Admission of a request: who is calling, may they use this cascade, are they within their rate
limit and budget — answered before any model is called, as an OpenAI-style error when not.

=====  ==========================  ==========================================================
HTTP   ``error.code``              when
=====  ==========================  ==========================================================
401    ``invalid_api_key``         no ``Authorization: Bearer`` key, or an unknown one
403    ``cascade_not_allowed``     the key's ``cascades`` do not include this one
403    ``budget_unenforceable``    a budgeted key, but the cascade's cost cannot be estimated
429    ``rate_limit_exceeded``     over ``rate_limit`` (with ``Retry-After``)
429    ``budget_exceeded``         spent + reserved + this request's estimate > the budget
503    ``limits_unavailable``      the budget/rate store (Redis) did not answer: fail closed
=====  ==========================  ==========================================================

:class:`KeyAdmission` is the gateway's :class:`~ecocascade.gateway.admission.Admission` when
keys are configured: ``admit`` returns a :class:`~ecocascade.gateway.admission.Reservation` (whose
``data`` holds the budget hold and the key's namespace) or raises
:class:`~ecocascade.gateway.errors.GatewayError` with the table's status; ``settle`` releases the
hold and counts the real cost. :func:`scoped_namespace` gives the tenant's cache/solutions
namespace.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Any

import structlog

from ecocascade.gateway.admission import Reservation
from ecocascade.gateway.apikeys import KeyPolicy, KeyRing
from ecocascade.gateway.errors import GatewayError
from ecocascade.gateway.limits import Hold, Limits, MemoryLimits, period_bounds

__all__ = ["KeyAdmission", "scoped_namespace"]

log = structlog.get_logger(__name__)


def _refusal(
    status: int,
    type: str,
    code: str,
    message: str,
    *,
    param: str | None = None,
    retry_after_s: float | None = None,
) -> GatewayError:
    headers = {}
    if retry_after_s is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after_s)))
    return GatewayError(status, message, type=type, code=code, param=param, headers=headers)


def scoped_namespace(reservation: Reservation | None, base: str) -> str:
    """The cache or solutions namespace ``base`` as the admitted request must see it: prefixed
    with its key's namespace, so tenants never share answers unless their keys name the same."""
    tenant = reservation.data.get("namespace") if reservation is not None else None
    return base if tenant is None else f"{tenant}/{base}"


class KeyAdmission:
    """Keys + limits. ``hold_s``: how long a reservation survives an unsettled request (a
    replica that dies mid-call frees its reservation after this long)."""

    def __init__(
        self, keys: KeyRing | None = None, limits: Limits | None = None, *, hold_s: float = 300.0
    ) -> None:
        self.keys = keys or KeyRing()
        self.limits: Limits = limits or MemoryLimits()
        self.hold_s = hold_s

    def authenticate(self, api_key: str | None) -> KeyPolicy | None:
        """The caller's policy (``None`` on an open gateway); a 401 :class:`GatewayError` for a
        missing or unknown key."""
        if self.keys.open:
            return None
        policy = self.keys.lookup(api_key) if api_key else None
        if policy is None:
            message = (
                "Incorrect API key provided."
                if api_key
                else "Missing API key: send it as 'Authorization: Bearer <key>'."
            )
            raise _refusal(401, "invalid_request_error", "invalid_api_key", message)
        return policy

    async def admit(
        self,
        api_key: str | None,
        cascade: str,
        estimate_usd: float | None,
        *,
        now: float | None = None,
    ) -> Reservation:
        policy = self.authenticate(api_key)
        estimate = max(0.0, estimate_usd or 0.0)
        if policy is None:
            return Reservation(None, cascade, estimate_usd)
        grant = {"namespace": policy.namespace, "hold": None}
        if not policy.allows(cascade):
            raise _refusal(
                403,
                "permission_error",
                "cascade_not_allowed",
                f"key {policy.id!r} may not use cascade {cascade!r} "
                f"(allowed: {', '.join(sorted(policy.cascades))})",
                param="model",
            )
        try:
            if policy.rate_requests is not None:
                decision = await self.limits.hit(
                    policy.id, requests=policy.rate_requests, window_s=policy.rate_window_s
                )
                if not decision.allowed:
                    log.info("gateway.rate_limited", key=policy.id, cascade=cascade)
                    raise _refusal(
                        429,
                        "rate_limit_error",
                        "rate_limit_exceeded",
                        f"key {policy.id!r}: rate limit of {policy.rate_requests} requests per "
                        f"{policy.rate_window_s:g} s reached; retry in "
                        f"{decision.retry_after_s:.1f} s",
                        retry_after_s=decision.retry_after_s,
                    )
            if policy.budget_usd is None:
                return Reservation(policy.id, cascade, estimate_usd, data=grant)
            if estimate_usd is None:
                raise _refusal(
                    403,
                    "permission_error",
                    "budget_unenforceable",
                    f"key {policy.id!r} has a budget, but cascade {cascade!r} has tiers "
                    "without a price, so its cost cannot be reserved",
                    param="model",
                )
            period, ends = period_bounds(policy.period, now)
            hold, usage = await self.limits.reserve(
                policy.id,
                period,
                budget_usd=policy.budget_usd,
                estimate_usd=estimate,
                hold_s=self.hold_s,
            )
        except GatewayError:
            raise
        except Exception as error:
            if not _is_store_error(error):
                raise
            log.warning("gateway.limits_unavailable", key=policy.id, error=type(error).__name__)
            raise _refusal(
                503,
                "api_error",
                "limits_unavailable",
                "the budget and rate-limit store is unavailable; try again shortly",
                retry_after_s=1.0,
            ) from None
        if hold is None:
            log.info("gateway.budget_exceeded", key=policy.id, cascade=cascade, period=period)
            resets = datetime.fromtimestamp(ends, UTC).strftime("%Y-%m-%dT%H:%MZ")
            raise _refusal(
                429,
                "insufficient_quota",
                "budget_exceeded",
                f"key {policy.id!r}: {'daily' if policy.period == 'day' else 'monthly'} budget "
                f"of {_money(policy.budget_usd)} reached (spent {_money(usage.spent_usd)}, "
                f"reserved {_money(usage.reserved_usd)}, this request needs up to "
                f"{_money(estimate)}); resets {resets}",
            )
        return Reservation(policy.id, cascade, estimate_usd, data={**grant, "hold": hold})

    async def settle(self, reservation: Reservation, actual_usd: float | None) -> None:
        """Release the reservation and count what the request really cost (``None``: unknown,
        counted as the estimate). Does nothing for a reservation without a budget hold."""
        hold = reservation.data.get("hold")
        if not isinstance(hold, Hold):
            return
        cost = hold.estimate_usd if actual_usd is None else max(0.0, actual_usd)
        await self.limits.settle(hold, cost)

    async def budgets(self, now: float | None = None) -> list[dict[str, Any]]:
        """Each budgeted key's current period: spent, reserved, budget (for the dashboard)."""
        rows: list[dict[str, Any]] = []
        for policy in self.keys.policies.values():
            if policy.budget_usd is None:
                continue
            period, ends = period_bounds(policy.period, now)
            usage = await self.limits.usage(policy.id, period)
            rows.append(
                {
                    "key": policy.id,
                    "period": period,
                    "budget_usd": policy.budget_usd,
                    "spent_usd": usage.spent_usd,
                    "reserved_usd": usage.reserved_usd,
                    "resets_in_s": max(0.0, ends - (time.time() if now is None else now)),
                }
            )
        return rows


def _money(usd: float) -> str:
    """``$5.00`` from a dollar up; below, up to 6 decimals (``$0.06``, ``$0.000213``)."""
    if usd >= 1:
        return f"${usd:.2f}"
    return "$" + (f"{usd:.6f}".rstrip("0").rstrip(".") or "0")


def _is_store_error(error: Exception) -> bool:
    try:
        from redis.exceptions import RedisError
    except ImportError:  # pragma: no cover - redis is a dependency
        return isinstance(error, (ConnectionError, TimeoutError))
    return isinstance(error, (RedisError, ConnectionError, TimeoutError, OSError))
