"""Recorded answers of real models: the RouterBench CSV format and ecocascade's own ``tasks.jsonl``.

Both become a :class:`RecordedDataset`: items (a query and what each model answered, whether that
was correct, and what it cost) plus dense numpy views for fast simulation.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import structlog

from ecocascade.exceptions import ConfigError

__all__ = [
    "RecordedAnswer",
    "RecordedDataset",
    "RecordedItem",
    "read_recorded",
    "read_routerbench_csv",
    "read_tasks_jsonl",
]

log = structlog.get_logger(__name__)

_ROUTERBENCH_META = frozenset({"", "sample_id", "prompt", "eval_name", "oracle_model_to_route_to"})


@dataclass(frozen=True, slots=True)
class RecordedAnswer:
    """What one model answered on one item; ``correct``/``cost_usd`` are ``None`` when unknown."""

    text: str
    correct: bool | None
    cost_usd: float | None
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True, slots=True)
class RecordedItem:
    id: str
    query: str
    answers: dict[str, RecordedAnswer] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedDataset:
    """Items with per-model answers. ``models`` keeps the file's model order."""

    name: str
    models: tuple[str, ...]
    items: tuple[RecordedItem, ...]

    def __len__(self) -> int:
        return len(self.items)

    @cached_property
    def correct(self) -> npt.NDArray[np.float64]:
        """``(items, models)``: 1.0 correct, 0.0 wrong, NaN unknown or not answered."""
        return self._matrix(lambda a: math.nan if a.correct is None else float(a.correct))

    @cached_property
    def cost(self) -> npt.NDArray[np.float64]:
        """``(items, models)`` USD per answer; NaN unknown or not answered."""
        return self._matrix(lambda a: math.nan if a.cost_usd is None else a.cost_usd)

    @cached_property
    def answered(self) -> npt.NDArray[np.bool_]:
        return np.array([[m in it.answers for m in self.models] for it in self.items], dtype=bool)

    def _matrix(self, value: Any) -> npt.NDArray[np.float64]:
        out = np.full((len(self.items), len(self.models)), math.nan)
        for i, item in enumerate(self.items):
            for j, model in enumerate(self.models):
                answer = item.answers.get(model)
                if answer is not None:
                    out[i, j] = value(answer)
        return out

    def subset(self, indices: Sequence[int] | npt.NDArray[np.int_]) -> RecordedDataset:
        return RecordedDataset(self.name, self.models, tuple(self.items[int(i)] for i in indices))

    def text(self, i: int, model: str) -> str:
        answer = self.items[i].answers.get(model)
        return "" if answer is None else answer.text

    @cached_property
    def digest(self) -> str:
        """A content hash: same items, answers and models → same digest."""
        h = hashlib.sha256()
        for item in self.items:
            h.update(item.id.encode() + b"\0" + item.query.encode() + b"\0")
            for model in sorted(item.answers):
                a = item.answers[model]
                h.update(f"{model}\0{a.text}\0{a.correct}\0{a.cost_usd}\0".encode())
        return h.hexdigest()[:16]


def read_recorded(path: str | Path) -> RecordedDataset:
    """Read a RouterBench ``.csv`` or an ecocascade eval's ``tasks.jsonl`` (by extension)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return read_routerbench_csv(path)
    if path.suffix.lower() in {".jsonl", ".json"}:
        return read_tasks_jsonl(path)
    raise ConfigError(
        f"{path}: expected a RouterBench .csv or an eval's tasks.jsonl", where="recorded data"
    )


def _literal_text(cell: str) -> str:
    """RouterBench stores prompts and responses as Python-list literals of strings."""
    cell = cell or ""
    if cell.startswith("["):
        try:
            value = ast.literal_eval(cell)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return cell
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return "\n\n".join(value)
    return cell


def _float(cell: str | None) -> float | None:
    if cell is None or not cell.strip():
        return None
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_routerbench_csv(path: str | Path) -> RecordedDataset:
    """One row per item: ``sample_id``, ``prompt``, and per model ``<m>``, ``<m>|model_response``,
    ``<m>|total_cost`` (the RouterBench format)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file", where="recorded data")
    csv.field_size_limit(sys.maxsize)
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        if "prompt" not in columns or "sample_id" not in columns:
            raise ConfigError(
                f"{path}: not a RouterBench CSV (needs sample_id, prompt and model columns)",
                where="recorded data",
            )
        models = tuple(
            c
            for c in columns
            if c not in _ROUTERBENCH_META and "|" not in c and f"{c}|model_response" in columns
        )
        if not models:
            raise ConfigError(f"{path}: no model columns", where="recorded data")
        items: list[RecordedItem] = []
        prompts: dict[str, list[str]] = {}  # sample_id -> the distinct prompts seen under it
        renamed, repeated = [], 0
        for row in reader:
            sample_id = row["sample_id"] or str(len(items))
            prompt = _literal_text(row["prompt"])
            seen = prompts.setdefault(sample_id, [])
            if prompt in seen:  # the same item again: the first row wins
                repeated += 1
                continue
            seen.append(prompt)
            # RouterBench reuses a sample_id for different questions (ARC: 7 rows): keep each
            item_id = sample_id if len(seen) == 1 else f"{sample_id}#{len(seen)}"
            if item_id != sample_id:
                renamed.append(item_id)
            answers: dict[str, RecordedAnswer] = {}
            for m in models:
                response = row.get(f"{m}|model_response")
                if response is None:
                    continue
                score = _float(row.get(m))
                answers[m] = RecordedAnswer(
                    text=_literal_text(response),
                    correct=None if score is None else score >= 0.5,
                    cost_usd=_float(row.get(f"{m}|total_cost")),
                )
            items.append(RecordedItem(item_id, prompt, answers))
    if renamed or repeated:
        log.warning(
            "replay.duplicate_sample_ids",
            path=str(path),
            renamed=renamed,
            skipped_repeated_rows=repeated,
            note="rows with a reused sample_id and another prompt got '#n' ids",
        )
    return RecordedDataset(path.stem, models, tuple(items))


def read_tasks_jsonl(path: str | Path) -> RecordedDataset:
    """An eval's ``tasks.jsonl``: every attempt with a known ``correct`` becomes a recorded
    answer of its model on its task (the first one seen wins when strategies repeat a model)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file", where="recorded data")
    items: dict[str, RecordedItem] = {}
    models: dict[str, None] = {}
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                task_id, query = str(record["task_id"]), str(record["query"])
                attempts = record.get("attempts") or []
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                raise ConfigError(
                    f"{path}:{number}: not a tasks.jsonl record ({error})", where="recorded data"
                ) from None
            item = items.setdefault(task_id, RecordedItem(task_id, query, {}))
            for attempt in attempts:
                correct, model = attempt.get("correct"), attempt.get("model")
                if correct is None or not model or attempt.get("answer") is None:
                    continue
                models.setdefault(model, None)
                if model not in item.answers:
                    cost = attempt.get("cost_usd")
                    item.answers[model] = RecordedAnswer(
                        text=str(attempt["answer"]),
                        correct=bool(correct),
                        cost_usd=None if cost is None else float(cost),
                        input_tokens=int(attempt.get("input_tokens") or 0),
                        output_tokens=int(attempt.get("output_tokens") or 0),
                    )
    kept = tuple(item for item in items.values() if item.answers)
    if not kept:
        raise ConfigError(
            f"{path}: no attempt with a known 'correct' to learn from", where="recorded data"
        )
    stem = path.parent.name if path.stem == "tasks" else path.stem
    return RecordedDataset(stem, tuple(models), kept)
