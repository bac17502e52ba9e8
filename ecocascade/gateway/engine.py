"""The gateway's view of one cascade result: what goes into the response, headers and records.

This is the one place that reads :class:`~ecocascade.controller.result.CascadeResult` and the
events of ``Cascade.stream``; the handlers use :class:`Answer` only.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ecocascade.gateway.records import CacheOutcome, Escalation

__all__ = ["Answer", "answer_from", "escalations_of"]


@dataclass(frozen=True, slots=True)
class Answer:
    """An accepted (or failed) cascade run, as the gateway reports it."""

    success: bool
    stop_reason: str
    message: Mapping[str, Any] | None
    model: str | None
    tier: int | None
    input_tokens: int
    output_tokens: int
    cache: CacheOutcome
    cache_key: str | None
    solution_id: str | None
    cost_usd: float | None
    saved_usd: float | None
    escalations: tuple[Escalation, ...]
    attempts: tuple[Mapping[str, Any], ...]
    transient_failure: bool = False
    """Every attempt failed with a transient provider error (rate limit, timeout, outage)."""


_TRANSIENT = frozenset({"rate_limited", "timeout", "unavailable"})


def escalations_of(attempts: Sequence[Any]) -> tuple[Escalation, ...]:
    steps = []
    for before, after in itertools.pairwise(attempts):
        reason = "judge_rejected" if before.verdict == "reject" else before.error or before.verdict
        steps.append(Escalation(before.tier, after.tier, before.model, after.model, reason))
    return tuple(steps)


def answer_from(result: Any) -> Answer:
    """Read a ``CascadeResult`` (see issue 12's engine API) into an :class:`Answer`."""
    attempts = tuple(result.attempts)
    cache = result.cache
    kind: CacheOutcome = "miss" if cache is None else cache.kind
    accepted = result.accepted_attempt
    if cache is not None:
        usage = (0, 0)
    elif accepted is not None:
        usage = (accepted.usage.input_tokens, accepted.usage.output_tokens)
    else:
        usage = (0, 0)
    cost = result.cost_usd
    baseline = getattr(result, "last_tier_cost_usd", None)
    saved = None if cost is None or baseline is None else baseline - cost
    message = getattr(result, "message", None)
    if message is None and result.answer is not None:
        message = {"role": "assistant", "content": result.answer}
    cache_key = getattr(result, "cache_key", None) or (cache.key if cache is not None else None)
    return Answer(
        success=result.success,
        stop_reason=result.stop_reason,
        message=message,
        model=result.model,
        tier=result.tier,
        input_tokens=usage[0],
        output_tokens=usage[1],
        cache=kind,
        cache_key=cache_key,
        solution_id=result.recorded_id,
        cost_usd=cost,
        saved_usd=saved,
        escalations=escalations_of(attempts),
        attempts=tuple(
            {"tier": a.tier, "model": a.model, "verdict": a.verdict, "error": a.error}
            for a in attempts
        ),
        transient_failure=bool(attempts) and all(a.error in _TRANSIENT for a in attempts),
    )
