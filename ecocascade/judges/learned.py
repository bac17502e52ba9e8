"""A judge learned from logs: predicts P(answer correct) and accepts above a threshold.

FrugalGPT's idea with our own parts: features are the embedder's vectors of the query (its last
part, where the question is) and of the answer (its first part), reduced by PCA, plus cheap
answer features (length, whether an answer could be extracted, whether it holds code); one
L2-regularised logistic regression per model (the model that answered is known from
:func:`~ecocascade.judging.current_attempt`), and a pooled one for models never seen. Numpy only;
fitting on a thousand records takes milliseconds once the texts are embedded.

Train it on logged records — an eval's ``tasks.jsonl``, production feedback, a recorded dataset's
train split — with :meth:`LearnedJudge.fit`, save it with :meth:`LearnedJudge.save`, and load it
in a cascade config (``judge: {type: learned, path: judge.npz, thresholds: {...}}``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ecocascade.exceptions import ConfigError, JudgeError
from ecocascade.judges.agreement import extract_answer
from ecocascade.judging import current_attempt
from ecocascade.routing import recorded_model_name
from ecocascade.store.embedders import QUERY_TAIL_CHARS, embed_cached
from ecocascade.text import extract_python_code
from ecocascade.types import Embedder, JudgeContext, Verdict

__all__ = [
    "LearnedJudge",
    "LearnedModel",
    "Record",
    "cheap_features",
    "embedding_texts",
]

Array = npt.NDArray[np.float64]

ANSWER_HEAD_CHARS = 1000
PCA_DIMS = 32
L2 = 5.0
_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Record:
    """One logged attempt: the query, what a model answered, and whether it was correct."""

    query: str
    answer: str
    model: str
    correct: bool


def embedding_texts(query: str, answer: str) -> tuple[str, str]:
    """What gets embedded: the query's end (few-shot prompts put the question last) and the
    answer's start (the embedder truncates long inputs anyway)."""
    return query.strip()[-QUERY_TAIL_CHARS:], answer.strip()[:ANSWER_HEAD_CHARS]


def cheap_features(answer: str) -> list[float]:
    """Answer length (log), an extractable answer (choice, number or code), a code block."""
    stripped = answer.strip()
    key = extract_answer(stripped) if stripped else None
    return [
        float(np.log1p(len(stripped))),
        0.0 if key is None or key.startswith("text:") else 1.0,
        0.0 if extract_python_code(stripped) is None else 1.0,
    ]


def _sigmoid(z: Array) -> Array:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -30, 30))), dtype=np.float64)


def _fit_logistic(x: Array, y: Array, l2: float, iterations: int = 30) -> Array:
    """Newton's method on the L2-penalised log loss; the last column (bias) is not penalised."""
    d = x.shape[1]
    w = np.zeros(d)
    penalty = np.full(d, l2)
    penalty[-1] = 1e-6
    for _ in range(iterations):
        p = _sigmoid(x @ w)
        gradient = x.T @ (p - y) + penalty * w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if float(np.max(np.abs(step))) < 1e-6:
            break
    return w


class LearnedModel:
    """The numeric part of the learned judge: PCA, standardisation, per-model logistic weights."""

    def __init__(
        self,
        *,
        embedder_name: str,
        q_mean: Array,
        q_components: Array,
        a_mean: Array,
        a_components: Array,
        x_mean: Array,
        x_std: Array,
        weights: Mapping[str, Array],
        pooled: Array,
    ) -> None:
        self.embedder_name = embedder_name
        self.q_mean, self.q_components = q_mean, q_components
        self.a_mean, self.a_components = a_mean, a_components
        self.x_mean, self.x_std = x_mean, x_std
        self.weights = dict(weights)
        self.pooled = pooled

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self.weights)

    @classmethod
    def fit(
        cls,
        query_vectors: npt.NDArray[Any],
        answer_vectors: npt.NDArray[Any],
        cheap: npt.NDArray[Any],
        models: Sequence[str],
        correct: npt.NDArray[Any],
        *,
        embedder_name: str,
        pca_dims: int = PCA_DIMS,
        l2: float = L2,
    ) -> LearnedModel:
        """Fit on row-aligned arrays: one row per (query, answer, model) record."""
        y = np.asarray(correct, dtype=np.float64)
        if len(y) == 0:
            raise ConfigError("no records to learn from", where="records")
        q_mean, q_comp = _pca(np.asarray(query_vectors, dtype=np.float64), pca_dims)
        a_mean, a_comp = _pca(np.asarray(answer_vectors, dtype=np.float64), pca_dims)
        raw = np.hstack(
            [
                (query_vectors - q_mean) @ q_comp.T,
                (answer_vectors - a_mean) @ a_comp.T,
                np.asarray(cheap, dtype=np.float64),
            ]
        )
        x_mean, x_std = raw.mean(axis=0), raw.std(axis=0) + 1e-6
        x = np.hstack([(raw - x_mean) / x_std, np.ones((len(y), 1))])
        names = np.asarray(models)
        weights = {
            m: _fit_logistic(x[names == m], y[names == m], l2) for m in dict.fromkeys(models)
        }
        return cls(
            embedder_name=embedder_name,
            q_mean=q_mean,
            q_components=q_comp,
            a_mean=a_mean,
            a_components=a_comp,
            x_mean=x_mean,
            x_std=x_std,
            weights=weights,
            pooled=_fit_logistic(x, y, l2),
        )

    def predict(
        self,
        query_vectors: npt.NDArray[Any],
        answer_vectors: npt.NDArray[Any],
        cheap: npt.NDArray[Any],
        models: Sequence[str],
    ) -> Array:
        """P(correct) per row."""
        raw = np.hstack(
            [
                (np.asarray(query_vectors, dtype=np.float64) - self.q_mean) @ self.q_components.T,
                (np.asarray(answer_vectors, dtype=np.float64) - self.a_mean) @ self.a_components.T,
                np.asarray(cheap, dtype=np.float64).reshape(len(models), -1),
            ]
        )
        x = np.hstack([(raw - self.x_mean) / self.x_std, np.ones((len(models), 1))])
        w = np.stack([self.weights.get(m, self.pooled) for m in models]) if models else self.pooled
        return _sigmoid(np.einsum("ij,ij->i", x, np.atleast_2d(w)))

    def save(self, path: str | Path) -> None:
        path = Path(path)
        names = list(self.weights)
        meta = {"format": _FORMAT, "embedder": self.embedder_name, "models": names}
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            np.savez(
                f,
                meta=np.array(json.dumps(meta)),
                q_mean=self.q_mean,
                q_components=self.q_components,
                a_mean=self.a_mean,
                a_components=self.a_components,
                x_mean=self.x_mean,
                x_std=self.x_std,
                weights=np.stack([self.weights[m] for m in names])
                if names
                else np.zeros((0, len(self.pooled))),
                pooled=self.pooled,
            )

    @classmethod
    def load(cls, path: str | Path) -> LearnedModel:
        path = Path(path).expanduser()
        if not path.is_file():
            raise ConfigError(f"{path}: no such learned-judge file", where="judge.path")
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                if meta.get("format") != _FORMAT:
                    raise ConfigError(
                        f"{path}: unsupported learned-judge format {meta.get('format')!r}",
                        where="judge.path",
                    )
                weights = data["weights"]
                return cls(
                    embedder_name=str(meta["embedder"]),
                    q_mean=data["q_mean"],
                    q_components=data["q_components"],
                    a_mean=data["a_mean"],
                    a_components=data["a_components"],
                    x_mean=data["x_mean"],
                    x_std=data["x_std"],
                    weights={m: weights[i] for i, m in enumerate(meta["models"])},
                    pooled=data["pooled"],
                )
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as error:
            raise ConfigError(
                f"{path}: not a learned-judge file ({error})", where="judge.path"
            ) from None


def _pca(x: Array, dims: int) -> tuple[Array, Array]:
    """Mean and top principal directions, from the distinct rows (a query repeats once per
    model); an eigendecomposition of the covariance, far cheaper than an SVD of the rows."""
    first = {row.tobytes(): i for i, row in reversed(list(enumerate(x)))}
    distinct = x[sorted(first.values())]
    mean = distinct.mean(axis=0)
    centred = distinct - mean
    dims = max(1, min(dims, x.shape[1]))
    values, vectors = np.linalg.eigh(centred.T @ centred)
    order = np.argsort(values)[::-1][:dims]
    return mean, np.ascontiguousarray(vectors[:, order].T)


class LearnedJudge:
    """Accepts when the learned P(correct) of (query, answer, answering model) ≥ its threshold.

    ``thresholds`` maps a model (a tier label, or the recorded model name of a ``replay/`` tier)
    to its threshold; other models use ``threshold``. Outside a cascade the pooled classifier and
    ``threshold`` apply. Costs nothing per verdict beyond two local embeddings.
    """

    def __init__(
        self,
        model: LearnedModel,
        embedder: Embedder,
        *,
        threshold: float = 0.5,
        thresholds: Mapping[str, float] | None = None,
        name: str = "learned",
    ) -> None:
        if embedder.name != model.embedder_name:
            raise ConfigError(
                f"the judge was trained with embedder {model.embedder_name!r}, "
                f"got {embedder.name!r}",
                where="embedder",
            )
        for key, value in {"threshold": threshold, **(thresholds or {})}.items():
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"must be in [0, 1], got {value}", where=f"thresholds.{key}")
        self.model = model
        self.threshold = threshold
        self.thresholds = dict(thresholds or {})
        self._embedder = embedder
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @classmethod
    def load(
        cls,
        path: str | Path,
        embedder: Embedder,
        *,
        threshold: float = 0.5,
        thresholds: Mapping[str, float] | None = None,
    ) -> LearnedJudge:
        return cls(LearnedModel.load(path), embedder, threshold=threshold, thresholds=thresholds)

    def save(self, path: str | Path) -> None:
        self.model.save(path)

    @classmethod
    async def fit(
        cls,
        records: Sequence[Record],
        embedder: Embedder,
        *,
        threshold: float = 0.5,
        thresholds: Mapping[str, float] | None = None,
        cache_dir: Path | None = None,
    ) -> LearnedJudge:
        """Learn P(correct) from logged records (at least one of each outcome helps)."""
        if not records:
            raise ConfigError("no records to learn from", where="records")
        texts = [embedding_texts(r.query, r.answer) for r in records]
        q = await embed_cached(embedder, [t[0] for t in texts], cache_dir=cache_dir)
        a = await embed_cached(embedder, [t[1] for t in texts], cache_dir=cache_dir)
        cheap = np.array([cheap_features(r.answer) for r in records])
        model = LearnedModel.fit(
            q,
            a,
            cheap,
            [r.model for r in records],
            np.array([r.correct for r in records], dtype=float),
            embedder_name=embedder.name,
        )
        return cls(model, embedder, threshold=threshold, thresholds=thresholds)

    def model_key(self, label: str | None) -> str | None:
        if label is None:
            return None
        if label in self.model.weights or label in self.thresholds:
            return label
        return recorded_model_name(label)

    async def probability(self, query: str, answer: str, model: str | None = None) -> float:
        q_text, a_text = embedding_texts(query, answer)
        vectors = await self._embedder.embed([q_text, a_text])
        key = self.model_key(model) or ""
        p = self.model.predict(
            np.asarray(vectors[:1]),
            np.asarray(vectors[1:]),
            np.asarray([cheap_features(answer)]),
            [key],
        )
        return float(p[0])

    async def judge(self, query: str, answer: str, context: JudgeContext | None = None) -> Verdict:
        attempt = context if context is not None else current_attempt()
        key = self.model_key(attempt.model if attempt is not None else None)
        try:
            p = await self.probability(query, answer, key)
        except (OSError, RuntimeError, ValueError) as error:
            raise JudgeError(f"could not score the answer: {error}", judge=self._name) from error
        threshold = self.thresholds.get(key, self.threshold) if key else self.threshold
        accepted = p >= threshold
        sign = "≥" if accepted else "<"
        return Verdict(
            accepted, f"P(correct)={p:.3f} {sign} {threshold:.3f} ({key or 'pooled'})", self._name
        )
