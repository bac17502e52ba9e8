"""From a recorded dataset to the arrays the simulation needs: embeddings, learned scores
(cross-fitted, so a judge is never scored on records it was trained on), extracted answers, and
the history router's neighbour success rates."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ecocascade.judges.agreement import extract_answer
from ecocascade.judges.learned import LearnedModel, cheap_features, embedding_texts
from ecocascade.replay.data import RecordedDataset
from ecocascade.store.embedders import embed_cached
from ecocascade.tuning.simulate import Table
from ecocascade.types import Embedder

__all__ = ["ROUTER_K", "Features", "dataset_features", "make_table"]

ROUTER_K = 10
INNER_FOLDS = 5

Rows = npt.NDArray[np.int_]
Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Features:
    """Per item: the query vector; per item and model: answer vector, cheap features, answer key."""

    dataset: RecordedDataset
    embedder_name: str
    query: npt.NDArray[np.float32]  # (n, d)
    answer: npt.NDArray[np.float32]  # (n, M, d)
    cheap: Array  # (n, M, c)
    keys: npt.NDArray[np.int64]  # (n, M)

    @property
    def models(self) -> tuple[str, ...]:
        return self.dataset.models

    def labels(self) -> tuple[Array, npt.NDArray[np.bool_]]:
        correct = self.dataset.correct
        known = ~np.isnan(correct) & self.dataset.answered
        return np.nan_to_num(correct), known

    def fit_judge(self, rows: Rows) -> LearnedModel:
        """The learned judge fitted on every known (item, model) record of ``rows``."""
        correct, known = self.labels()
        r, m = np.nonzero(known[rows])
        items = rows[r]
        return LearnedModel.fit(
            self.query[items],
            self.answer[items, m],
            self.cheap[items, m],
            [self.models[j] for j in m],
            correct[items, m],
            embedder_name=self.embedder_name,
        )

    def predict(self, judge: LearnedModel, rows: Rows) -> Array:
        n, count = len(rows), len(self.models)
        if n == 0:
            return np.zeros((0, count))
        items = np.repeat(rows, count)
        models = np.tile(np.arange(count), n)
        p = judge.predict(
            self.query[items],
            self.answer[items, models],
            self.cheap[items, models],
            [self.models[j] for j in models],
        )
        return np.asarray(p.reshape(n, count), dtype=np.float64)

    def crossfit_scores(self, rows: Rows, seed: int = 0) -> Array:
        """Out-of-fold P(correct) for ``rows``: each fold scored by a judge fitted on the rest."""
        out = np.zeros((len(rows), len(self.models)))
        order = np.random.default_rng(seed).permutation(len(rows))
        for fold in np.array_split(order, min(INNER_FOLDS, len(rows))):
            rest = np.setdiff1d(order, fold)
            if len(rest) == 0:
                continue
            out[fold] = self.predict(self.fit_judge(rows[rest]), rows[fold])
        return out

    def route_rates(self, rows: Rows, history: Rows, *, leave_one_out: bool) -> Array:
        """Per row and model: the share of its ``ROUTER_K`` nearest history queries that model
        solved (NaN when none has a record). ``leave_one_out`` drops the query itself."""
        correct, known = self.labels()
        values = np.where(known, correct, np.nan)[history]
        sims = self.query[rows] @ self.query[history].T
        if leave_one_out:
            same = rows[:, None] == history[None, :]
            sims = np.where(same, -np.inf, sims)
        k = min(ROUTER_K, len(history) - (1 if leave_one_out else 0))
        if k <= 0:
            return np.full((len(rows), len(self.models)), np.nan)
        nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        picked = values[nearest]  # (rows, k, M)
        count = (~np.isnan(picked)).sum(axis=1)
        solved = np.nansum(picked, axis=1)
        return np.where(count > 0, solved / np.maximum(count, 1), np.nan)


async def dataset_features(dataset: RecordedDataset, embedder: Embedder) -> Features:
    """Embed the dataset (cached on disk by content) and extract every answer."""
    n, count = len(dataset.items), len(dataset.models)
    pairs = [
        embedding_texts(item.query, dataset.text(i, m))
        for i, item in enumerate(dataset.items)
        for m in dataset.models
    ]
    queries = [embedding_texts(item.query, "")[0] for item in dataset.items]
    q = await embed_cached(embedder, queries)
    a = await embed_cached(embedder, [p[1] for p in pairs])
    codes: dict[str, int] = {}
    keys = np.full((n, count), -1, dtype=np.int64)
    cheap = np.zeros((n, count, 3))
    for i in range(n):
        for j, model in enumerate(dataset.models):
            text = dataset.text(i, model)
            cheap[i, j] = cheap_features(text)
            key = extract_answer(text) if text.strip() else None
            if key is not None:
                keys[i, j] = codes.setdefault(key, len(codes))
    return Features(dataset, embedder.name, q, a.reshape(n, count, -1), cheap, keys)


def make_table(features: Features, rows: Rows, scores: Array, route: Array) -> Table:
    ds = features.dataset
    return Table(
        models=ds.models,
        correct=np.nan_to_num(ds.correct[rows]),
        cost=np.nan_to_num(ds.cost[rows]),
        answered=ds.answered[rows],
        score=scores,
        keys=features.keys[rows],
        route=route,
    )
