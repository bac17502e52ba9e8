"""Where a query starts on the ladder.

A :class:`Router` lets the cascade skip cheap tiers that are likely to fail for a query (saving
the cost of doomed attempts). ``current_attempt`` and ``AttemptContext`` are re-exported from
:mod:`ecocascade.judging` / :mod:`ecocascade.types` for judges written when they lived here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ecocascade.judging import current_attempt, reset_attempt, set_attempt
from ecocascade.types import JudgeContext

if TYPE_CHECKING:
    from ecocascade.models.tier import Tier

__all__ = [
    "AttemptContext",
    "HistoryRouter",
    "Router",
    "SolutionStoreRouter",
    "current_attempt",
    "recorded_model_name",
    "reset_attempt",
    "set_attempt",
]


@runtime_checkable
class Router(Protocol):
    """Chooses the tier a query starts at: an index into ``tiers`` (0 = cheapest)."""

    async def start_tier(self, query: str, tiers: Sequence[Tier]) -> int: ...


AttemptContext = JudgeContext
"""Kept for judges written against it: the attempt context is now
:class:`~ecocascade.types.JudgeContext`, and :func:`current_attempt` lives in
:mod:`ecocascade.judging` (re-exported here)."""


def recorded_model_name(label: str) -> str:
    """A tier label as recorded data names the model: ``replay/gpt-4`` → ``gpt-4``."""
    return label.removeprefix("replay/")


class HistoryRouter:
    """Starts a query at the cheapest tier that solved its nearest neighbours in the history.

    The history is a set of past queries with, per model, whether that model's answer was
    correct (a recorded dataset, an eval's ``tasks.jsonl``). For a new query the ``k`` most
    similar past queries (cosine of embeddings) vote: a tier whose model solved fewer than
    ``skip_below`` of them is skipped — the cascade does not pay for an attempt that is likely to
    fail. A tier whose model has no history is never skipped, and the last tier is always kept.
    Fit with :meth:`fit`, keep with :meth:`save` / :meth:`load`.
    """

    def __init__(
        self,
        vectors: Any,
        correct: Any,
        models: Sequence[str],
        embedder: Any,
        *,
        k: int = 10,
        skip_below: float = 0.4,
        embedder_name: str | None = None,
    ) -> None:
        """``embedder`` embeds new queries; ``None`` (with ``embedder_name``, the name of the one
        that embedded ``vectors``) builds a router that can only be saved."""
        import numpy as np

        from ecocascade.exceptions import ConfigError

        if k < 1:
            raise ConfigError(f"must be >= 1, got {k}", where="router.k")
        if not 0.0 <= skip_below <= 1.0:
            raise ConfigError(f"must be in [0, 1], got {skip_below}", where="router.skip_below")
        self._vectors = np.asarray(vectors, dtype=np.float32)
        self._correct = np.asarray(correct, dtype=np.float64)
        shape_ok = self._correct.ndim == 2 and self._correct.shape[1] == len(models)
        if not shape_ok or self._vectors.shape[0] != self._correct.shape[0]:
            raise ConfigError("vectors, correct and models do not line up", where="router")
        self.models = tuple(models)
        if embedder is None and embedder_name is None:
            raise ConfigError("give an embedder or its name", where="router.embedder")
        self.embedder_name = embedder_name or str(embedder.name)
        self.k = k
        self.skip_below = skip_below
        self._embedder = embedder

    @classmethod
    async def fit(
        cls,
        queries: Sequence[str],
        correct: Any,
        models: Sequence[str],
        embedder: Any,
        *,
        k: int = 10,
        skip_below: float = 0.4,
    ) -> HistoryRouter:
        """``correct`` is ``(len(queries), len(models))``: 1 solved, 0 failed, NaN unknown."""
        from ecocascade.store.embedders import QUERY_TAIL_CHARS, embed_cached

        texts = [q.strip()[-QUERY_TAIL_CHARS:] for q in queries]
        vectors = await embed_cached(embedder, texts)
        return cls(vectors, correct, models, embedder, k=k, skip_below=skip_below)

    def success_rates(self, vector: Any) -> Any:
        """Per history model: the share of the ``k`` nearest past queries it solved (NaN when
        none of them has a record for that model)."""
        import numpy as np

        sims = self._vectors @ np.asarray(vector, dtype=np.float32)
        k = min(self.k, len(sims))
        if k == 0:
            return np.full(len(self.models), np.nan)
        rows = self._correct[np.argpartition(-sims, k - 1)[:k]]
        known = (~np.isnan(rows)).sum(axis=0)
        solved = np.nansum(rows, axis=0)
        return np.where(known > 0, solved / np.maximum(known, 1), np.nan)

    async def start_tier(self, query: str, tiers: Sequence[Tier]) -> int:
        import numpy as np

        from ecocascade.exceptions import ConfigError
        from ecocascade.store.embedders import QUERY_TAIL_CHARS

        if self._embedder is None:
            raise ConfigError("this router has no embedder (built to be saved)", where="router")
        [vector] = await self._embedder.embed([query.strip()[-QUERY_TAIL_CHARS:]])
        rates = self.success_rates(vector)
        column = {m: j for j, m in enumerate(self.models)}
        for index, tier in enumerate(tiers[:-1]):
            j = column.get(tier.label, column.get(recorded_model_name(tier.label)))
            if j is None or np.isnan(rates[j]) or rates[j] >= self.skip_below:
                return index
        return len(tiers) - 1

    def save(self, path: str | Path) -> None:
        import json

        import numpy as np

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"embedder": self.embedder_name, "models": list(self.models)}
        with path.open("wb") as f:
            np.savez(
                f, meta=np.array(json.dumps(meta)), vectors=self._vectors, correct=self._correct
            )

    @classmethod
    def load(
        cls, path: str | Path, embedder: Any, *, k: int = 10, skip_below: float = 0.4
    ) -> HistoryRouter:
        import json

        import numpy as np

        from ecocascade.exceptions import ConfigError

        path = Path(path).expanduser()
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                vectors, correct = data["vectors"], data["correct"]
        except (OSError, ValueError, KeyError) as error:
            raise ConfigError(f"{path}: not a router file ({error})", where="router.path") from None
        if meta["embedder"] != embedder.name:
            raise ConfigError(
                f"the router was fitted with embedder {meta['embedder']!r}, got {embedder.name!r}",
                where="router.embedder",
            )
        return cls(vectors, correct, meta["models"], embedder, k=k, skip_below=skip_below)


class SolutionStoreRouter:
    """Starts at the cheapest tier whose model solved one of the query's nearest neighbours in
    the solution store (whose records carry the model that answered them).

    The ``k`` most similar stored solutions with cosine similarity ≥ ``threshold`` vote; the
    start is the lowest ladder index among their models (matched by tier label, or by recorded
    name for ``replay/`` tiers). No neighbour, or none solved by a model on this ladder: tier 0.
    A neighbour only solved by the top tier sends the query straight there.
    """

    def __init__(
        self, store: Any, *, namespace: str = "default", k: int = 3, threshold: float = 0.8
    ) -> None:
        from ecocascade.exceptions import ConfigError

        if k < 1:
            raise ConfigError(f"must be >= 1, got {k}", where="router.k")
        self.store = store
        self.namespace = namespace
        self.k = k
        self.threshold = threshold

    async def start_tier(self, query: str, tiers: Sequence[Tier]) -> int:
        found = await self.store.search(
            query, namespace=self.namespace, k=self.k, threshold=self.threshold
        )
        index = {t.label: i for i, t in enumerate(tiers)}
        index.update({recorded_model_name(t.label): i for i, t in enumerate(tiers)})
        solved = [index[d.model] for d in found if d.model in index]
        return min(solved) if solved else 0
