"""The second stage of semantic reuse: do these two requests have the same answer?

Embedding retrieval (stage one) finds cached requests *about the same thing*; it cannot tell
"from my phone to my laptop" from "from my laptop to my phone" (cosine 0.99). The verifier looks
at an alignment of the two requests (:mod:`ecocascade.cache.align`) and decides:

1. **Hard refusals**, each with its reason: different numbers (after number words became digits),
   opposite negation ("can" / "can not", "legal" / "illegal"). These change the answer by
   definition.
2. **A calibrated decision** for the rest: logistic regression over a handful of features — the
   embedding cosine, content words substituted and added, aligned words in the opposite order,
   role changes of aligned words ("in 2011" / "since 2011"), quantity / scope / exclusion /
   comparison classes only one side has, a different question word — with weights fitted on the
   train split of ``evals/data/cache_pairs.jsonl`` (``evals/fit_cache_verifier.py``) and shipped as
   ``verifier_params.json`` beside this module. The decision threshold is set for few false hits
   (a false hit serves a wrong answer; a miss costs one model call).

Every refusal says why (``cache.miss`` ``refused=...``).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Protocol, runtime_checkable

from ecocascade.cache.align import Alignment, align
from ecocascade.exceptions import ConfigError

__all__ = [
    "FEATURES",
    "AlignmentVerifier",
    "PairDecision",
    "PairVerifier",
    "features",
    "hard_refusal",
]

FEATURES = (
    "cosine",
    "substituted",
    "added",
    "added_information",
    "swapped",
    "reordered",
    "role_changes",
    "class_diff",
    "question_differs",
)


@dataclass(frozen=True, slots=True)
class PairDecision:
    """Whether a cached request's answer serves a new one, how sure, and why not."""

    same: bool
    probability: float
    reason: str | None = None


@runtime_checkable
class PairVerifier(Protocol):
    """Decides whether ``cached_query``'s answer also answers ``query``."""

    async def verify(self, query: str, cached_query: str, similarity: float) -> PairDecision: ...


def hard_refusal(al: Alignment) -> str | None:
    """A difference that changes the answer whatever else the requests share."""
    if Counter(al.numbers_a) != Counter(al.numbers_b):
        return f"numbers differ: {list(al.numbers_a)} vs {list(al.numbers_b)}"
    if al.negation_differs:
        return "negation differs"
    if al.prefix_negation is not None:
        word, negated = al.prefix_negation
        return f"negation differs: {word!r} vs {negated!r}"
    return None


def features(al: Alignment, similarity: float) -> dict[str, float]:
    """The verifier's inputs, small counts capped so one odd pair cannot dominate."""
    return {
        "cosine": 10.0 * (similarity - 0.9),  # on the scale of the counts
        "substituted": min(al.substitutions, 3),
        "added": min(al.additions, 3),
        "added_information": min(al.added_information, 6.0) / 2,
        "swapped": float(al.swapped),
        "reordered": 0.0 if al.swapped else min(len(al.inversions), 3),
        "role_changes": min(len(al.role_changes), 2),
        "class_diff": min(len(al.class_diff), 2),
        "question_differs": float(al.question_conflict),
    }


def _explain(al: Alignment) -> str:
    parts = []
    if al.only_a or al.only_b:
        parts.append(f"words {list(al.only_a)} vs {list(al.only_b)}")
    if al.inversions:
        parts.append("order swapped: " + ", ".join(f"{x}/{y}" for x, y in al.inversions[:3]))
    if al.role_changes:
        parts.append(
            "roles changed: "
            + ", ".join(f"{w} {r1[2:]}→{r2[2:]}" for w, r1, r2 in al.role_changes[:3])
        )
    if al.class_diff:
        parts.append(f"only one says {[c[2:] for c in al.class_diff]}")
    if al.question_differs:
        parts.append(f"asks {(al.question_a or '')[2:]} vs {(al.question_b or '')[2:]}")
    return "; ".join(parts) or "low similarity"


class AlignmentVerifier:
    """Alignment features + logistic regression (see the module docstring)."""

    def __init__(self, weights: Mapping[str, float], bias: float, threshold: float) -> None:
        unknown = set(weights) - set(FEATURES)
        if unknown:
            raise ConfigError(f"unknown verifier features {sorted(unknown)}", where="verifier")
        if not 0.0 < threshold < 1.0:
            raise ConfigError(f"a probability in (0, 1), got {threshold}", where="verifier")
        self.weights = {name: float(weights.get(name, 0.0)) for name in FEATURES}
        self.bias = float(bias)
        self.threshold = float(threshold)

    @classmethod
    def from_file(cls, path: str | Path) -> AlignmentVerifier:
        try:
            params = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(params["weights"], params["bias"], params["threshold"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ConfigError(
                f"cannot read verifier parameters: {error}", where=str(path)
            ) from error

    @classmethod
    def default(cls) -> AlignmentVerifier:
        """The shipped parameters (``verifier_params.json``)."""
        with resources.as_file(resources.files(__package__) / "verifier_params.json") as path:
            return cls.from_file(path)

    def probability(self, feats: Mapping[str, float]) -> float:
        z = self.bias + sum(self.weights[n] * feats[n] for n in FEATURES)
        return 1.0 / (1.0 + math.exp(-z))

    def decide(self, query: str, cached_query: str, similarity: float) -> PairDecision:
        al = align(query, cached_query)
        refusal = hard_refusal(al)
        if refusal is not None:
            return PairDecision(False, 0.0, refusal)
        p = self.probability(features(al, similarity))
        if p >= self.threshold:
            return PairDecision(True, p)
        return PairDecision(False, p, f"verifier p={p:.2f} < {self.threshold:.2f}: {_explain(al)}")

    async def verify(self, query: str, cached_query: str, similarity: float) -> PairDecision:
        return self.decide(query, cached_query, similarity)
