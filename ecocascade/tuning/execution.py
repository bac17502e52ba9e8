"""Execution features of a recorded dataset's code answers, for the tuner and the bench.

Per item, every model's answer is analysed (:func:`~ecocascade.judges.behaviour.analyse_code`),
the inputs of all answers' examples form the item's shared pool, and each main function runs
in the sandbox on its own examples and on the pool inputs of its arity (results cached on disk
by content, so a rerun executes nothing). Items where no answer holds code cost nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ecocascade.judges.behaviour import (
    analyse_code,
    behaviour_key,
    harvest_inputs,
    inputs_for,
    run_code,
)
from ecocascade.replay.data import RecordedDataset

__all__ = ["ExecutionFeatures", "execution_features"]

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ExecutionFeatures:
    """Per item and model: behaviour key (``None``: none), own examples and passes, whether the
    code parses and defines a function."""

    keys: list[list[str | None]]
    examples: Array
    passed: Array
    parses: Array
    has_function: Array
    code_items: int  # items where at least one answer holds code

    def matrix(self) -> Array:
        """(n, M, 5) features: parses, defines a function, has examples, pass rate (0.5 when it
        has none), all examples pass."""
        rate = np.where(self.examples > 0, self.passed / np.maximum(self.examples, 1), 0.5)
        return np.stack(
            [
                self.parses,
                self.has_function,
                (self.examples > 0).astype(float),
                rate,
                ((self.examples > 0) & (self.passed == self.examples)).astype(float),
            ],
            axis=-1,
        )


async def execution_features(
    dataset: RecordedDataset, *, progress: Callable[[str], None] | None = None
) -> ExecutionFeatures:
    n, count = len(dataset), len(dataset.models)
    keys: list[list[str | None]] = [[None] * count for _ in range(n)]
    examples = np.zeros((n, count))
    passed = np.zeros((n, count))
    parses = np.zeros((n, count))
    has_function = np.zeros((n, count))
    code_items = 0

    async def item(i: int) -> None:
        nonlocal code_items
        analyses = [
            analyse_code(dataset.text(i, m)) if dataset.answered[i, j] else None
            for j, m in enumerate(dataset.models)
        ]
        if all(a is None for a in analyses):
            return
        code_items += 1
        pool = harvest_inputs(analyses)
        runs = await asyncio.gather(
            *(run_code(a, inputs_for(a, pool)) if a is not None else _none() for a in analyses)
        )
        for j, (a, run) in enumerate(zip(analyses, runs, strict=True)):
            if a is None:
                continue
            parses[i, j] = float(a.parses)
            has_function[i, j] = float(a.has_function)
            if run is not None:
                examples[i, j], passed[i, j] = run.examples, run.passed
                keys[i][j] = behaviour_key(inputs_for(a, pool), run)

    done = 0
    for start in range(0, n, 16):
        await asyncio.gather(*(item(i) for i in range(start, min(n, start + 16))))
        done = min(n, start + 16)
        if progress is not None and code_items:
            progress(f"{dataset.name}: executed code of {done}/{n} items")
    return ExecutionFeatures(keys, examples, passed, parses, has_function, code_items)


async def _none() -> None:
    return None
