"""Reliability-weighted agreement: a Dawid-Skene confusion model of each model, and a judge that
asks cheap models one at a time until the posterior of the judged answer settles.

:class:`ConfusionModel` is fitted on logged records — per item, each model's extracted answer key
(:func:`~ecocascade.judges.agreement.extract_answer`) and, when known, whether it was correct.
Two shapes of answer, chosen from the data:

- **closed** (multiple choice: a few keys such as ``choice:A`` … cover nearly every answer): per
  model a full confusion matrix ``P(model says x | true answer y)`` over the labels plus
  ``other`` (nothing or something else extracted), and a prior over ``y``. It absorbs a model's
  letter bias (a model that says "A" whenever unsure makes "A" weak evidence). Fitted by EM;
  records with correctness labels pin the truth (a correct model's key is the truth; a wrong
  model's key is not), unlabelled items are filled in by the E-step.
- **open** (numbers, short text, code behaviour signatures): per model ``P(right)``; a wrong
  answer equals another model's wrong answer with a learned collision rate; the truth may be a
  value no model gave (prior: the share of items no model got right).

:class:`ReliabilityJudge` uses it at run time: the judged answer's posterior is computed from the
answering model's own reliability, then cheap reference models are asked **one at a time**, in
the given order (cheapest reliable first), and it stops as soon as the posterior of the judged
answer reaches ``tau`` (accept) or can no longer reach it even if every remaining reference
agreed (reject: escalate early on conflict). The references are real
:class:`~ecocascade.models.client.TierClient` calls, their cost the judge's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ecocascade.exceptions import ConfigError
from ecocascade.judges.agreement import AnswerKind, ask_reference, extract_answer
from ecocascade.models.client import TierClient
from ecocascade.models.tier import Tier
from ecocascade.routing import current_attempt, recorded_model_name
from ecocascade.types import JudgeContext, Usage, Verdict, add_costs

__all__ = ["ConfusionModel", "ReliabilityJudge", "posterior_trajectory"]

Array = npt.NDArray[np.float64]
Mode = Literal["closed", "open"]
_FORMAT = 1
_SMOOTH = 1.0  # Dirichlet pseudo-count per confusion cell
_CLOSED_MIN_SHARE = 0.02
_CLOSED_COVERAGE = 0.9
_MAX_LABELS = 12
_EM_ROUNDS = 30


@dataclass(frozen=True)
class ConfusionModel:
    """Per-model reliabilities. ``closed``: ``confusion[m]`` is (L, L+1) — rows the true label,
    columns what the model says (the last column: anything else); ``prior`` (L,). ``open``:
    ``accuracy[m]`` = P(right | extractable answer), ``collision`` = P(two wrong answers match),
    ``unseen`` = prior P(the truth is none of the answers)."""

    models: tuple[str, ...]
    mode: Mode
    labels: tuple[str, ...] = ()
    confusion: Array | None = None  # (M, L, L+1)
    prior: Array | None = None  # (L,)
    accuracy: Array | None = None  # (M,)
    collision: float = 0.05
    unseen: float = 0.1

    # -- fitting ---------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        models: Sequence[str],
        keys: Sequence[Sequence[str | None]],
        correct: npt.ArrayLike | None = None,
        *,
        mode: Mode | None = None,
    ) -> ConfusionModel:
        """Fit on ``keys[i][m]`` (model ``m``'s extracted answer on item ``i``; ``None``: not
        answered or nothing extractable) and optional ``correct[i][m]`` (1, 0, or NaN unknown)."""
        models = tuple(models)
        n = len(keys)
        if n == 0 or not models:
            raise ConfigError("no records to fit a confusion model on", where="records")
        if any(len(row) != len(models) for row in keys):
            raise ConfigError("every item needs one key per model", where="keys")
        y = (
            np.full((n, len(models)), np.nan)
            if correct is None
            else np.asarray(correct, dtype=np.float64).reshape(n, len(models))
        )
        counts: dict[str, int] = {}
        for row in keys:
            for k in row:
                if k is not None:
                    counts[k] = counts.get(k, 0) + 1
        total = sum(counts.values())
        frequent = sorted(k for k, c in counts.items() if c >= _CLOSED_MIN_SHARE * total)
        covered = sum(counts[k] for k in frequent) / total if total else 0.0
        chosen: Mode = mode or (
            "closed"
            if 2 <= len(frequent) <= _MAX_LABELS and covered >= _CLOSED_COVERAGE
            else "open"
        )
        if chosen == "closed":
            return cls._fit_closed(models, keys, y, tuple(frequent))
        return cls._fit_open(models, keys, y)

    @classmethod
    def _fit_closed(
        cls,
        models: tuple[str, ...],
        keys: Sequence[Sequence[str | None]],
        y: Array,
        labels: tuple[str, ...],
    ) -> ConfusionModel:
        if len(labels) < 2:
            raise ConfigError("a closed answer set needs at least 2 labels", where="labels")
        index = {k: j for j, k in enumerate(labels)}
        n, count, size = len(keys), len(models), len(labels)
        obs = np.array(
            [[-1 if k is None else index.get(k, size) for k in row] for row in keys],
            dtype=np.int64,
        )
        answered = np.array([[k is not None for k in row] for row in keys])
        # truth constraints from correctness labels
        allowed = np.ones((n, size), dtype=bool)
        pinned = np.zeros(n, dtype=bool)
        for i in range(n):
            for m in range(count):
                o = obs[i, m]
                if not answered[i, m] or o >= size or np.isnan(y[i, m]):
                    continue
                if y[i, m] > 0.5:
                    allowed[i] = False
                    allowed[i, o] = True
                    pinned[i] = True
                    break
                allowed[i, o] = False
        allowed[~allowed.any(axis=1)] = True
        # EM, started from the constraints plus a majority vote
        q = allowed.astype(np.float64)
        for m in range(count):
            seen = (obs[:, m] >= 0) & (obs[:, m] < size)
            q[np.flatnonzero(seen), obs[seen, m]] += 0.5 * allowed[seen, obs[seen, m]]
        q = q * allowed
        q /= q.sum(axis=1, keepdims=True)
        confusion = np.zeros((count, size, size + 1))
        prior = np.full(size, 1.0 / size)
        for _ in range(_EM_ROUNDS):
            for m in range(count):
                seen = obs[:, m] >= 0
                onehot = np.zeros((int(seen.sum()), size + 1))
                onehot[np.arange(onehot.shape[0]), obs[seen, m]] = 1.0
                table = q[seen].T @ onehot + _SMOOTH / (size + 1)
                # a little extra mass on the diagonal keeps unseen models from being adversarial
                table[:, :size] += np.eye(size) * _SMOOTH
                confusion[m] = table / table.sum(axis=1, keepdims=True)
            prior = (q.sum(axis=0) + 1.0) / (n + size)
            log_post = np.log(prior)[None, :].repeat(n, axis=0)
            for m in range(count):
                seen = obs[:, m] >= 0
                log_post[seen] += np.log(confusion[m][:, obs[seen, m]].T)
            log_post = np.where(allowed, log_post, -np.inf)
            log_post -= log_post.max(axis=1, keepdims=True)
            new_q = np.exp(log_post)
            new_q /= new_q.sum(axis=1, keepdims=True)
            new_q[pinned] = allowed[pinned] / allowed[pinned].sum(axis=1, keepdims=True)
            if np.max(np.abs(new_q - q)) < 1e-6:
                q = new_q
                break
            q = new_q
        return cls(models, "closed", labels=labels, confusion=confusion, prior=prior)

    @classmethod
    def _fit_open(
        cls, models: tuple[str, ...], keys: Sequence[Sequence[str | None]], y: Array
    ) -> ConfusionModel:
        count = len(models)
        right = np.zeros(count)
        seen = np.zeros(count)
        wrong_pairs = matches = 0
        no_one_right = labelled = 0
        for i, row in enumerate(keys):
            wrong: list[str] = []
            any_label = False
            any_right = False
            for m, k in enumerate(row):
                if k is None or np.isnan(y[i, m]):
                    continue
                any_label = True
                seen[m] += 1
                if y[i, m] > 0.5:
                    right[m] += 1
                    any_right = True
                else:
                    wrong.append(k)
            for a in range(len(wrong)):
                for b in range(a + 1, len(wrong)):
                    wrong_pairs += 1
                    matches += wrong[a] == wrong[b]
            if any_label:
                labelled += 1
                no_one_right += not any_right
        if labelled == 0:
            # unlabelled logs: agreement with the majority stands in for correctness
            for row in keys:
                values = [k for k in row if k is not None]
                if not values:
                    continue
                top = max(set(values), key=values.count)
                for m, k in enumerate(row):
                    if k is not None:
                        seen[m] += 1
                        right[m] += k == top
        accuracy = (right + 1.0) / (seen + 2.0)
        collision = (matches + 1.0) / (wrong_pairs + 10.0)
        unseen = (no_one_right + 1.0) / (labelled + 2.0) if labelled else 0.1
        return cls(
            models,
            "open",
            accuracy=accuracy,
            collision=float(min(max(collision, 1e-4), 0.9)),
            unseen=float(min(max(unseen, 1e-3), 0.9)),
        )

    # -- use -------------------------------------------------------------------------------

    def index(self, model: str) -> int | None:
        if model in self.models:
            return self.models.index(model)
        name = recorded_model_name(model)
        return self.models.index(name) if name in self.models else None

    def model_accuracy(self) -> Array:
        """Each model's expected P(right) under the fitted model (for ordering references)."""
        if self.mode == "open":
            assert self.accuracy is not None
            return self.accuracy
        assert self.confusion is not None and self.prior is not None
        size = len(self.labels)
        diag = self.confusion[:, np.arange(size), np.arange(size)]
        return np.asarray(diag @ self.prior, dtype=np.float64)

    def posterior(self, observations: Mapping[str, str | None], answer: str) -> float:
        """P(``answer`` is right | each model in ``observations`` said its key; ``None``:
        nothing extractable). Models the fit never saw give no evidence."""
        obs = np.full((1, len(self.models)), -2, dtype=np.int64)
        ids: dict[str, int] = {}
        for name, value in observations.items():
            m = self.index(name)
            if m is not None:
                obs[0, m] = self.code(value, ids)
        target = self.code(answer, ids)
        # open answers: a value no known model gave has posterior 0 (an unknown answering
        # model needs a reference to agree)
        return float(_posterior(self, obs, np.array([target]))[0])

    def code(self, value: str | None, ids: dict[str, int] | None = None) -> int:
        """A key as the integer code :func:`_posterior` reads: closed — its label's index, ``L``
        for anything else; open — an id shared through ``ids``; -1 for nothing extractable."""
        if value is None:
            return -1
        if self.mode == "closed":
            return self.labels.index(value) if value in self.labels else len(self.labels)
        table = ids if ids is not None else {}
        return table.setdefault(value, len(table))

    def codes(self, keys: npt.NDArray[np.int64], key_names: Sequence[str]) -> npt.NDArray[np.int64]:
        """Global key codes (``key_names[code]``; -1 none) as this model's codes."""
        if self.mode == "open":
            return keys.copy()
        lookup = np.array([self.code(k) for k in key_names] + [-1], dtype=np.int64)
        return lookup[np.where(keys < 0, len(key_names), keys)]

    # -- persistence -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "models": list(self.models),
            "mode": self.mode,
            "labels": list(self.labels),
            "confusion": None if self.confusion is None else self.confusion.tolist(),
            "prior": None if self.prior is None else self.prior.tolist(),
            "accuracy": None if self.accuracy is None else self.accuracy.tolist(),
            "collision": self.collision,
            "unseen": self.unseen,
        }

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> ConfusionModel:
        path = Path(path).expanduser()
        if not path.is_file():
            raise ConfigError(f"{path}: no such confusion-model file", where="judge.path")
        try:
            data = json.loads(path.read_text())
            if data.get("format") != _FORMAT:
                raise ConfigError(
                    f"{path}: unsupported confusion-model format {data.get('format')!r}",
                    where="judge.path",
                )

            def arr(name: str) -> Array | None:
                v = data.get(name)
                return None if v is None else np.asarray(v, dtype=np.float64)

            return cls(
                tuple(data["models"]),
                data["mode"],
                labels=tuple(data["labels"]),
                confusion=arr("confusion"),
                prior=arr("prior"),
                accuracy=arr("accuracy"),
                collision=float(data["collision"]),
                unseen=float(data["unseen"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ConfigError(
                f"{path}: not a confusion-model file ({error})", where="judge.path"
            ) from None


def _posterior(model: ConfusionModel, obs: npt.NDArray[np.int64], target: Any) -> Array:
    """P(truth == ``target[i]``) per row given ``obs`` (n, M): codes as :meth:`encode` gives,
    -2 for a model not asked; -1 (nothing extractable) carries no evidence in open mode."""
    n = obs.shape[0]
    target = np.asarray(target, dtype=np.int64)
    if model.mode == "closed":
        assert model.confusion is not None and model.prior is not None
        size = len(model.labels)
        log_conf = np.log(model.confusion)  # (M, L, L+1)
        asked = obs >= -1
        col = np.where(obs < 0, size, obs)  # nothing extractable → "other"
        m_idx = np.arange(obs.shape[1])[None, :]
        picked = log_conf[m_idx, :, col]  # (n, M, L)
        log_post = np.log(model.prior)[None, :] + np.where(asked[:, :, None], picked, 0.0).sum(1)
        log_post -= log_post.max(axis=1, keepdims=True)
        post = np.exp(log_post)
        post /= post.sum(axis=1, keepdims=True)
        valid = (target >= 0) & (target < size)
        out = np.zeros(n)
        out[valid] = post[np.flatnonzero(valid), target[valid]]
        return out
    assert model.accuracy is not None
    acc = np.clip(model.accuracy, 1e-4, 1 - 1e-4)
    log_w = np.log(model.collision)
    # each asked model's extractable answer either is the truth or a wrong value
    ext = obs >= 0  # (n, M)
    same = (obs[:, :, None] == obs[:, None, :]) & ext[:, :, None] & ext[:, None, :]  # (n,M,M)
    log_right = np.where(ext, np.log(acc)[None, :], 0.0)
    log_wrong = np.where(ext, np.log(1 - acc)[None, :], 0.0)
    # repeated wrong values: each value shared by k wrong answers adds (k-1)·log w
    sizes = same.sum(axis=2)  # cluster size of each slot's value
    clusters = np.where(ext, 1.0 / np.maximum(sizes, 1), 0.0).sum(axis=1)  # distinct values
    n_ext = ext.sum(axis=1)
    all_wrong = log_wrong.sum(axis=1) + (n_ext - clusters) * log_w  # hypothesis: unseen truth
    # hypothesis "truth = slot s's value"
    lr = np.einsum("ist,it->is", same.astype(np.float64), log_right - log_wrong)
    hyp = all_wrong[:, None] + lr - (sizes - 1) * log_w  # (n, M)
    log_prior_seen = np.log((1 - model.unseen) / np.maximum(clusters, 1))
    scores = np.where(ext, hyp + log_prior_seen[:, None], -np.inf)
    unseen = all_wrong + np.log(model.unseen)
    weight = np.where(ext, 1.0 / np.maximum(sizes, 1), 0.0)  # one vote per distinct value
    top = np.maximum(np.max(np.where(ext, scores, -np.inf), axis=1, initial=-np.inf), unseen)
    denom = (weight * np.exp(np.where(ext, scores - top[:, None], -np.inf))).sum(axis=1) + np.exp(
        unseen - top
    )
    # numerator: the target value's hypothesis (target given as a code among obs, else new)
    match = (obs == target[:, None]) & ext
    has = match.any(axis=1) & (target >= 0)
    first = np.argmax(match, axis=1)
    num_seen = np.exp(scores[np.arange(n), first] - top)
    # a target nobody asked said (not among obs): its own hypothesis would be a new value;
    # callers always include the judged model's answer among obs, so it is seen.
    out = np.where(has, num_seen / denom, 0.0)
    return np.asarray(out, dtype=np.float64)


def posterior_trajectory(
    model: ConfusionModel,
    obs: npt.NDArray[np.int64],
    judged: int,
    references: Sequence[int],
) -> tuple[Array, Array]:
    """For each row: the posterior of model ``judged``'s answer after asking the first ``i``
    ``references`` (i = 0 … k), and the most it could reach if every remaining reference agreed.
    Returns (posterior, ceiling), each (n, k+1). ``obs`` holds every model's code."""
    n = obs.shape[0]
    k = len(references)
    target = obs[:, judged]
    post = np.zeros((n, k + 1))
    ceil = np.zeros((n, k + 1))
    asked = np.full_like(obs, -2)
    asked[:, judged] = target
    for i in range(k + 1):
        if i > 0:
            r = references[i - 1]
            asked[:, r] = obs[:, r]
        post[:, i] = _posterior(model, asked, target)
        hope = asked.copy()
        for r in references[i:]:
            hope[:, r] = np.where(obs[:, r] >= -1, target, -2)
        ceil[:, i] = _posterior(model, hope, target)
    return post, ceil


def sequential_decision(
    post: Array, ceil: Array, ref_costs: Array, extractable: npt.NDArray[np.bool_], tau: float
) -> tuple[npt.NDArray[np.bool_], Array, npt.NDArray[np.int64]]:
    """Accepted, the judge's cost, and how many references were asked, per row, for threshold
    ``tau`` (see :class:`ReliabilityJudge`). ``ref_costs`` (n, k): each reference's cost."""
    n, steps = post.shape
    k = steps - 1
    accept_at = np.where(post >= tau - 1e-12, 0, 1)
    reject_at = np.where(ceil < tau - 1e-12, 0, 1)
    # first step where either happens
    stop_accept = np.where(accept_at.min(axis=1) == 0, np.argmin(accept_at, axis=1), k + 1)
    stop_reject = np.where(reject_at.min(axis=1) == 0, np.argmin(reject_at, axis=1), k + 1)
    stop = np.minimum(np.minimum(stop_accept, stop_reject), k)
    accepted = (stop_accept <= stop_reject) & (stop_accept <= k) & extractable
    asked = np.where(extractable, stop, 0)
    cum = np.concatenate([np.zeros((n, 1)), np.cumsum(ref_costs, axis=1)], axis=1)
    cost = cum[np.arange(n), asked]
    return accepted, cost, asked.astype(np.int64)


class ReliabilityJudge:
    """Accepts an answer when its posterior of being right, under a fitted
    :class:`ConfusionModel`, reaches ``tau``; asks ``references`` one at a time (in the order
    given: put the cheapest reliable first) and stops as soon as the verdict is settled.

    The answering model (from ``context``, else :func:`~ecocascade.routing.current_attempt`) is
    the first witness. A reference that is the
    answering model is skipped; one whose call fails gives no evidence. With ``use_attempts`` the
    earlier attempts in ``context`` count as witnesses too (off by default: the tuner's
    simulation does not model it). With
    ``accept_last_tier`` the ladder's last tier is accepted without asking anyone.
    """

    def __init__(
        self,
        model: ConfusionModel,
        references: Sequence[Tier | str],
        *,
        tau: float = 0.9,
        kind: AnswerKind = "auto",
        accept_last_tier: bool = True,
        use_attempts: bool = False,
        name: str = "reliability",
    ) -> None:
        if not 0.0 < tau <= 1.0:
            raise ConfigError(f"must be in (0, 1], got {tau}", where="tau")
        if isinstance(references, str):
            raise ConfigError("needs a list of reference models", where="references")
        self.model = model
        self.references = tuple(r if isinstance(r, Tier) else Tier(r) for r in references)
        self.tau = tau
        self.kind: AnswerKind = kind
        self.accept_last_tier = accept_last_tier
        self.use_attempts = use_attempts
        self._name = name
        self._clients = tuple(TierClient(t) for t in self.references)

    @property
    def name(self) -> str:
        return self._name

    def key(self, text: str | None) -> str | None:
        if text is None or not text.strip():
            return None
        return extract_answer(text, self.kind)

    async def judge(self, query: str, answer: str, context: JudgeContext | None = None) -> Verdict:
        attempt: Any = context if context is not None else current_attempt()
        if self.accept_last_tier and attempt is not None and attempt.is_last:
            return Verdict(True, "the last tier: nothing left to escalate to", self._name, 0.0)
        key = self.key(answer)
        if key is None:
            return Verdict(False, "no answer could be extracted", self._name, 0.0)
        own = recorded_model_name(attempt.model) if attempt is not None else ""
        seen: dict[str, str | None] = {own: key} if own else {}
        for earlier in (getattr(context, "attempts", ()) or ()) if self.use_attempts else ():
            label = getattr(earlier, "model", None) or getattr(earlier, "tier", None)
            text = getattr(earlier, "answer", None)
            if isinstance(label, str) and self.model.index(label) is not None:
                seen.setdefault(recorded_model_name(label), self.key(text))
        cost: float | None = 0.0
        usage = Usage()
        remaining = [c for c in self._clients if recorded_model_name(c.label) not in seen]
        p = self.model.posterior(seen, key)
        asked = 0
        while True:
            if p >= self.tau:
                verdict, why = True, "reached"
                break
            if not remaining or self._ceiling(seen, key, remaining) < self.tau:
                verdict, why = False, "cannot reach" if remaining else "below"
                break
            client = remaining.pop(0)
            text, reply_cost, reply_usage = await ask_reference(client, query)
            asked += 1
            cost = add_costs(cost, reply_cost)
            usage = usage + reply_usage
            if text is not None:
                seen[recorded_model_name(client.label)] = self.key(text)
            p = self.model.posterior(seen, key)
        reason = (
            f"P(right)={p:.3f} {why} tau={self.tau:g} after {asked} reference(s) "
            f"({len(seen)} witnesses)"
        )
        return Verdict(verdict, reason, self._name, cost, usage)

    def _ceiling(
        self, seen: Mapping[str, str | None], key: str, remaining: Sequence[TierClient]
    ) -> float:
        hope = dict(seen)
        for c in remaining:
            hope[recorded_model_name(c.label)] = key
        return self.model.posterior(hope, key)
