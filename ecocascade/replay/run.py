"""Run a real :class:`~ecocascade.controller.cascade.Cascade` over recorded items and score it
against the recorded correctness (used by ``ecocascade bench replay --config``)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ecocascade.replay.data import RecordedDataset
from ecocascade.routing import recorded_model_name

if TYPE_CHECKING:
    from ecocascade.controller.cascade import Cascade

__all__ = ["ReplayOutcome", "run_cascade_on"]


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    """One item: whether the accepted answer was right, what the run cost, which tier answered."""

    item_id: str
    correct: bool
    cost_usd: float | None
    tier: int | None
    model: str | None


async def run_cascade_on(
    cascade: Cascade,
    dataset: RecordedDataset,
    rows: Sequence[int] | None = None,
    *,
    concurrency: int = 8,
) -> list[ReplayOutcome]:
    """Resolve every item's query through ``cascade`` (no cache, nothing recorded) and judge the
    accepted answer by the dataset's recorded correctness for the model that gave it."""
    indices = list(range(len(dataset))) if rows is None else [int(i) for i in rows]
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> ReplayOutcome:
        item = dataset.items[i]
        async with gate:
            result = await cascade.run(item.query, record=False, use_cache=False)
        model = recorded_model_name(result.model) if result.model else None
        answer = item.answers.get(model) if model else None
        correct = bool(result.success and answer is not None and answer.correct)
        return ReplayOutcome(item.id, correct, result.cost_usd, result.tier, model)

    return list(await asyncio.gather(*(one(i) for i in indices)))
