"""Synthetic recorded data for the replay tests, and a tiny deterministic embedder."""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path

import pytest

from ecocascade.replay.data import RecordedAnswer, RecordedDataset, RecordedItem

MODELS = ("small", "medium", "large")
Serve = Callable[[RecordedDataset], RecordedDataset]
COSTS = {"small": 1e-4, "medium": 1e-3, "large": 1e-2}


class WordsEmbedder:
    """Hashed bag of words, L2-normalised: deterministic, instant, and similar texts get similar
    vectors (shared words) — enough for kNN and a linear judge."""

    name = "test/words-64"

    def __init__(self, dims: int = 64) -> None:
        self.dims = dims

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        out = []
        for text in texts:
            v = [0.0] * self.dims
            for word in re.findall(r"\w+", text.lower()):
                v[int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dims] += 1.0
            norm = math.sqrt(sum(x * x for x in v)) or 1.0
            out.append([x / norm for x in v])
        return out


def synthetic_dataset(n: int = 60, seed: int = 0) -> RecordedDataset:
    """Multiple-choice items; "easy" ones the small model gets right, "hard" ones only the large
    model does; the medium model is right on easy items and on half of the hard ones."""
    rng = random.Random(seed)
    items = []
    for i in range(n):
        easy = i % 2 == 0
        right = "ABCD"[i % 4]
        wrong = "ABCD"[(i + 1) % 4]
        topic = rng.choice(["tides", "magnets", "plants", "rocks"])
        query = (
            f"Item {i} ({'easy' if easy else 'hard'} {topic}): which option? A) x B) y C) z D) w"
        )
        correct = {"small": easy, "medium": easy or i % 4 == 1, "large": True}
        answers = {
            m: RecordedAnswer(right if ok else wrong, ok, COSTS[m]) for m, ok in correct.items()
        }
        items.append(RecordedItem(f"s{i}", query, answers))
    return RecordedDataset("synthetic", MODELS, tuple(items))


def write_routerbench_csv(dataset: RecordedDataset, path: Path) -> Path:
    """The RouterBench layout: list literals for prompts and responses, per-model columns."""
    import csv

    columns = ["", "sample_id", "prompt", "eval_name"]
    for m in dataset.models:
        columns += [m, f"{m}|model_response", f"{m}|total_cost"]
    columns.append("oracle_model_to_route_to")
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for index, item in enumerate(dataset.items):
            row: list[object] = [index, item.id, repr([item.query]), dataset.name]
            for m in dataset.models:
                a = item.answers[m]
                row += [
                    "" if a.correct is None else float(a.correct),
                    repr([a.text]),
                    a.cost_usd,
                ]
            row.append(dataset.models[0])
            writer.writerow(row)
    return path


@pytest.fixture
def dataset() -> RecordedDataset:
    return synthetic_dataset()


@pytest.fixture
def embedder() -> WordsEmbedder:
    return WordsEmbedder()


@pytest.fixture(autouse=True)
def _own_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Embedding caches go to a temp ECOCASCADE_HOME, never the user's."""
    monkeypatch.setenv("ECOCASCADE_HOME", str(tmp_path_factory.mktemp("home")))


@pytest.fixture
def serve() -> Iterator[Serve]:
    """``serve(ds)``: replay tiers answer from ``ds`` until the test ends (then it is unregistered,
    so no test depends on another's registrations)."""
    from ecocascade.replay.provider import registered

    with ExitStack() as stack:
        yield lambda ds: stack.enter_context(registered(ds))
