"""The gateway's view of one cascade result: what goes into the response, headers and records.

This is the one place that reads :class:`~ecocascade.controller.result.CascadeResult`; the
handlers use :class:`Answer` only.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ecocascade.gateway.records import CacheOutcome, Escalation

if TYPE_CHECKING:
    from ecocascade.controller.cascade import Cascade
    from ecocascade.controller.result import Attempt, CascadeResult
    from ecocascade.types import ChatRequest

__all__ = ["Answer", "answer_from", "escalations_of"]


@dataclass(frozen=True, slots=True)
class Answer:
    """An accepted (or failed) cascade run, as the gateway reports it.

    ``model`` is what the provider says answered (the response's ``model``); ``label`` is the
    tier's model string from the config (headers, records, metrics). ``saved_usd`` is what the
    ladder's last tier alone would have cost for this request and answer length, minus
    ``cost_usd``.
    """

    success: bool
    stop_reason: str
    message: Mapping[str, Any] | None
    model: str | None
    label: str | None
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


def escalations_of(attempts: Sequence[Attempt]) -> tuple[Escalation, ...]:
    steps = []
    for before, after in itertools.pairwise(attempts):
        reason = "judge_rejected" if before.verdict == "reject" else before.error or before.verdict
        steps.append(Escalation(before.tier, after.tier, before.model, after.model, reason))
    return tuple(steps)


def answer_from(result: CascadeResult, cascade: Cascade, request: ChatRequest) -> Answer:
    attempts = result.attempts
    kind: CacheOutcome = "miss" if result.cache is None else result.cache.kind
    usage = result.answer_usage
    cost = result.cost_usd
    saved = None
    if result.success and cost is not None:
        baseline = _baseline(cascade, request, usage.input_tokens, usage.output_tokens)
        saved = None if baseline is None else baseline - cost
    return Answer(
        success=result.success,
        stop_reason=result.stop_reason,
        message=result.message,
        model=result.upstream_model,
        label=result.model,
        tier=result.tier,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache=kind,
        cache_key=result.cache_key,
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


def _baseline(
    cascade: Cascade, request: ChatRequest, input_tokens: int, output_tokens: int
) -> float | None:
    """The last tier's price for the answer's own token counts (no tokenizer on the hot path:
    the same messages went to the tier that answered); counted when the usage is unknown."""
    from ecocascade.models.pricing import known_price

    if input_tokens > 0:
        price = known_price(cascade.tiers[-1])
        return None if price is None else price.cost(input_tokens, output_tokens)
    try:
        return cascade.estimate_cost(request, output_tokens=max(1, output_tokens))
    except Exception:  # a tokenizer problem must not fail an answered request
        return None
