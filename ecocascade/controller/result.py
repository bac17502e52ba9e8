"""What a cascade run returns: every attempt, which tier answered, and what it all cost."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ecocascade.exceptions import CascadeFailedError
from ecocascade.text import mask_secrets, mask_secrets_in
from ecocascade.types import ChatRequest, Demonstration, Usage, add_costs

if TYPE_CHECKING:
    from ecocascade.cache.base import CacheHit

__all__ = ["Attempt", "CascadeResult", "StopReason", "VerdictKind"]

VerdictKind = Literal["accept", "reject", "error"]
StopReason = Literal["accepted", "cached", "exhausted", "budget"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One tier's try at the query.

    ``verdict`` is ``"error"`` when the model call failed for good (``error`` holds the kind, e.g.
    ``rate_limited``) or when the judge could not decide (``error == "judge_error"``).
    ``cost_usd`` is the model's; ``judge_cost_usd`` the judge's. Either is ``None`` when unknown.
    """

    tier: int
    model: str
    verdict: VerdictKind
    answer: str | None = None
    reason: str = ""
    judge: str | None = None
    error: str | None = None
    error_message: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = 0.0
    judge_cost_usd: float | None = 0.0
    latency_s: float = 0.0
    judge_latency_s: float = 0.0
    retries: int = 0
    local: bool = False
    message: Mapping[str, Any] | None = None
    """The assistant message the tier produced (OpenAI shape, tool calls included), if any."""
    upstream_model: str | None = None
    """The model the provider says answered (``model`` is the tier's label)."""

    def __post_init__(self) -> None:
        # Diagnostics quote providers and judges: keep no key in them (the answer is masked
        # where it is kept or shown: the cache, the store, to_dict).
        object.__setattr__(self, "reason", mask_secrets(self.reason))
        if self.error_message is not None:
            object.__setattr__(self, "error_message", mask_secrets(self.error_message))

    @property
    def accepted(self) -> bool:
        return self.verdict == "accept"

    @property
    def total_cost_usd(self) -> float | None:
        return add_costs(self.cost_usd, self.judge_cost_usd)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, secrets masked (:func:`~ecocascade.text.mask_secrets_in`)."""
        return mask_secrets_in(self._fields())

    def _fields(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "model": self.model,
            "verdict": self.verdict,
            "answer": self.answer,
            "reason": self.reason,
            "judge": self.judge,
            "error": self.error,
            "error_message": self.error_message,
            "input_tokens": self.usage.input_tokens,
            "output_tokens": self.usage.output_tokens,
            "cost_usd": self.cost_usd,
            "judge_cost_usd": self.judge_cost_usd,
            "latency_s": round(self.latency_s, 4),
            "judge_latency_s": round(self.judge_latency_s, 4),
            "retries": self.retries,
            "local": self.local,
        }


@dataclass(frozen=True, slots=True)
class CascadeResult:
    """The outcome of one query.

    ``answer`` is set only when a judge accepted it: an unverified answer is never presented as
    the result (the rejected ones are still in ``attempts``).
    """

    query: str
    run_id: str
    attempts: tuple[Attempt, ...]
    stop_reason: StopReason
    budget_usd: float | None = None
    demonstrations: tuple[Demonstration, ...] = ()
    recorded_id: str | None = None
    cache: CacheHit | None = None
    request: ChatRequest | None = None
    cache_key: str | None = None
    """The request's exact cache key (looked up, and stored under when accepted); ``None``
    when no cache was used or the request is not cacheable (it ends in a tool result)."""

    @property
    def success(self) -> bool:
        return self.stop_reason in ("accepted", "cached")

    @property
    def cache_hit(self) -> bool:
        return self.cache is not None

    @property
    def accepted_attempt(self) -> Attempt | None:
        return self.attempts[-1] if self.stop_reason == "accepted" else None

    @property
    def answer(self) -> str | None:
        if self.cache is not None:
            return self.cache.answer
        accepted = self.accepted_attempt
        return accepted.answer if accepted else None

    @property
    def message(self) -> dict[str, Any] | None:
        """The accepted assistant message in OpenAI shape (``role``, ``content`` and/or
        ``tool_calls``), from the answering attempt or the cache; ``None`` when not accepted."""
        if self.cache is not None:
            cached = (self.cache.reply or {}).get("message")
            if cached:
                return dict(cached)
            return {"role": "assistant", "content": self.cache.answer}
        accepted = self.accepted_attempt
        if accepted is None:
            return None
        if accepted.message is not None:
            return dict(accepted.message)
        return {"role": "assistant", "content": accepted.answer or ""}

    @property
    def answer_usage(self) -> Usage:
        """The tokens of the answering call alone (for a cache hit: the original call's)."""
        if self.cache is not None:
            tokens = (self.cache.reply or {}).get("usage") or (0, 0)
            return Usage(int(tokens[0]), int(tokens[1]))
        accepted = self.accepted_attempt
        return accepted.usage if accepted is not None else Usage()

    @property
    def upstream_model(self) -> str | None:
        """The model the provider says answered (falls back to the tier's label)."""
        if self.cache is not None:
            return (self.cache.reply or {}).get("upstream_model") or self.cache.model
        accepted = self.accepted_attempt
        if accepted is None:
            return None
        return accepted.upstream_model or accepted.model

    @property
    def tier(self) -> int | None:
        """The tier that produced the answer (for a cache hit: the one that originally did)."""
        if self.cache is not None:
            return self.cache.tier
        accepted = self.accepted_attempt
        return accepted.tier if accepted else None

    @property
    def model(self) -> str | None:
        if self.cache is not None:
            return self.cache.model
        accepted = self.accepted_attempt
        return accepted.model if accepted else None

    @property
    def cost_usd(self) -> float | None:
        """Total of models and judges, or ``None`` if any part's price is unknown."""
        return add_costs(*(a.total_cost_usd for a in self.attempts))

    @property
    def known_cost_usd(self) -> float:
        """The sum of every part whose price is known: a lower bound when ``cost_usd`` is None."""
        return sum(c for a in self.attempts for c in (a.cost_usd, a.judge_cost_usd) if c)

    @property
    def unpriced(self) -> tuple[str, ...]:
        """Models (and judges) whose cost is unknown, in the order they ran."""
        names: list[str] = []
        for a in self.attempts:
            if a.cost_usd is None and a.model not in names:
                names.append(a.model)
            if a.judge_cost_usd is None and a.judge and f"judge:{a.judge}" not in names:
                names.append(f"judge:{a.judge}")
        return tuple(names)

    @property
    def usage(self) -> Usage:
        total = Usage()
        for a in self.attempts:
            total = total + a.usage
        return total

    @property
    def latency_s(self) -> float:
        return sum(a.latency_s + a.judge_latency_s for a in self.attempts)

    def raise_for_failure(self) -> CascadeResult:
        """Return self if accepted, else raise :class:`CascadeFailedError` carrying this result."""
        if not self.success:
            raise CascadeFailedError(self)
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, secrets masked (:func:`~ecocascade.text.mask_secrets_in`)."""
        return mask_secrets_in(self._fields())

    def _fields(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "answer": self.answer,
            "success": self.success,
            "tier": self.tier,
            "model": self.model,
            "cost_usd": self.cost_usd,
            "known_cost_usd": self.known_cost_usd,
            "unpriced": list(self.unpriced),
            "stop_reason": self.stop_reason,
            "budget_usd": self.budget_usd,
            "input_tokens": self.usage.input_tokens,
            "output_tokens": self.usage.output_tokens,
            "latency_s": round(self.latency_s, 4),
            "run_id": self.run_id,
            "demonstrations": [
                {"id": d.id, "similarity": d.similarity, "query": d.query, "model": d.model}
                for d in self.demonstrations
            ],
            "recorded_id": self.recorded_id,
            "cache_hit": self.cache_hit,
            "cache": None
            if self.cache is None
            else {
                "kind": self.cache.kind,
                "key": self.cache.key,
                "similarity": self.cache.similarity,
                "cached_query": self.cache.cached_query,
                "age_s": self.cache.age_s,
            },
            "attempts": [a.to_dict() for a in self.attempts],
        }
