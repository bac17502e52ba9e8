"""Fit the semantic cache's verifier on the train split of our pair set; report train and dev.

    .venv/bin/python evals/fit_cache_verifier.py [--write] [--max-false-hit 0.005]

Logistic regression (numpy, L2-regularised, near-misses weighted 3 times because a false hit
serves a wrong answer while a miss costs one model call) over the features of
:func:`ecocascade.cache.verifier.features`, for pairs that pass the hard refusals. The decision
threshold is the lowest probability at which the *train* false-hit rate stays ≤ ``--max-false-hit``
(default 0.5%, half the 1% target, for margin on unseen pairs). ``--write`` saves weights, bias,
threshold and the measured rates to ``ecocascade/cache/verifier_params.json``. Dev is never used
for fitting or for the threshold.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np

from ecocascade.cache.align import align, embedding_text
from ecocascade.cache.guards import is_time_sensitive
from ecocascade.cache.verifier import FEATURES, AlignmentVerifier, features, hard_refusal

PAIRS = Path(__file__).parent / "data" / "cache_pairs.jsonl"
PARAMS = Path(__file__).parents[1] / "ecocascade" / "cache" / "verifier_params.json"
CANDIDATE_FLOOR = 0.75  # what ResponseCache retrieves as candidates (semantic_threshold)


def load_pairs(path: Path = PAIRS) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


async def similarities(pairs: list[dict[str, Any]], embedder: Any = None) -> list[float]:
    """Cosine of each pair under the default embedder (all-MiniLM-L6-v2), embedding what the
    cache embeds (:func:`~ecocascade.cache.align.embedding_text`)."""
    if embedder is None:
        from ecocascade.store import SentenceTransformerEmbedder

        embedder = SentenceTransformerEmbedder()
    texts = list(dict.fromkeys([p["cached"] for p in pairs] + [p["query"] for p in pairs]))
    vectors = np.asarray(await embedder.embed([embedding_text(t) for t in texts]), np.float32)
    index = {t: i for i, t in enumerate(texts)}
    return [float(vectors[index[p["cached"]]] @ vectors[index[p["query"]]]) for p in pairs]


def fit_logistic(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float = 1.0, sign: np.ndarray | None = None
) -> np.ndarray:
    """Weighted L2 logistic regression; column 0 is the (unpenalised) bias.

    ``sign`` (+1/-1/0 per column) constrains a weight's sign: a difference between two requests
    can only make "same answer" less likely. A weight that comes out with the wrong sign is
    fixed at 0 and the rest refitted (an active-set method).
    """
    free = np.ones(x.shape[1], dtype=bool)
    while True:
        beta = np.zeros(x.shape[1])
        beta[free] = _newton(x[:, free], y, w, l2)
        if sign is None:
            return beta
        wrong = free & (sign * beta < 0)
        if not wrong.any():
            return beta
        free[np.argmin(np.where(wrong, sign * beta, 0.0))] = False


def _newton(x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float, steps: int = 50) -> np.ndarray:
    beta = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], l2)
    penalty[0] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-x @ beta))
        grad = x.T @ (w * (p - y)) + penalty * beta
        hess = (x.T * (w * p * (1 - p))) @ x + np.diag(penalty) + 1e-9 * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return beta


def rates(served: list[bool], pairs: list[dict[str, Any]]) -> dict[str, float]:
    para = [s for s, p in zip(served, pairs, strict=True) if p["same_answer"]]
    near = [s for s, p in zip(served, pairs, strict=True) if not p["same_answer"]]
    return {
        "paraphrase_hit": round(sum(para) / max(len(para), 1), 3),
        "near_miss_false_hit": round(sum(near) / max(len(near), 1), 3),
        "paraphrases": len(para),
        "near_misses": len(near),
    }


def evaluate(
    verifier: AlignmentVerifier, pairs: list[dict[str, Any]], sims: list[float], floor: float
) -> tuple[dict[str, float], list[str]]:
    served, false_hits = [], []
    for pair, sim in zip(pairs, sims, strict=True):
        ok = sim >= floor and not is_time_sensitive(pair["query"])
        ok = ok and verifier.decide(pair["query"], pair["cached"], sim).same
        served.append(ok)
        if ok and not pair["same_answer"]:
            false_hits.append(f"{pair['cached']} → {pair['query']} ({sim:.3f})")
    return rates(served, pairs), false_hits


async def main_async(args: argparse.Namespace) -> None:
    pairs = load_pairs()
    sims = await similarities(pairs)
    train = [(p, s) for p, s in zip(pairs, sims, strict=True) if p["split"] == "train"]
    dev = [(p, s) for p, s in zip(pairs, sims, strict=True) if p["split"] == "dev"]
    rows, labels, weights = [], [], []
    for pair, sim in train:
        if sim < args.floor or is_time_sensitive(pair["query"]):
            continue
        al = align(pair["query"], pair["cached"])
        if hard_refusal(al) is not None:
            continue
        f = features(al, sim)
        rows.append([1.0] + [f[n] for n in FEATURES])
        labels.append(1.0 if pair["same_answer"] else 0.0)
        weights.append(1.0 if pair["same_answer"] else args.near_miss_weight)
    x, y, w = np.asarray(rows), np.asarray(labels), np.asarray(weights)
    # cosine can only raise the probability, every difference only lower it
    sign = np.asarray([0.0, 1.0] + [-1.0] * (len(FEATURES) - 1))
    beta = fit_logistic(x, y, w, l2=args.l2, sign=sign)
    p = 1.0 / (1.0 + np.exp(-x @ beta))
    # Lowest threshold whose train false-hit rate (over all train near-misses) is within bound.
    n_near_train = sum(not pr["same_answer"] for pr, _ in train)
    threshold = 0.99
    for t in np.arange(0.30, 0.99, 0.01):
        false = int(((p >= t) & (y == 0)).sum())
        if false <= args.max_false_hit * n_near_train:
            threshold = float(round(t, 2))
            break
    verifier = AlignmentVerifier(
        {n: float(b) for n, b in zip(FEATURES, beta[1:], strict=True)}, float(beta[0]), threshold
    )
    train_rates, train_false = evaluate(
        verifier, [p for p, _ in train], [s for _, s in train], args.floor
    )
    dev_rates, dev_false = evaluate(verifier, [p for p, _ in dev], [s for _, s in dev], args.floor)
    result = {
        "weights": {n: round(v, 4) for n, v in verifier.weights.items()},
        "bias": round(verifier.bias, 4),
        "threshold": verifier.threshold,
        "fitted_on": f"{PAIRS.name} train split ({len(train)} pairs, {len(rows)} past the "
        f"candidate floor {args.floor} and the hard refusals)",
        "l2": args.l2,
        "near_miss_weight": args.near_miss_weight,
        "train": train_rates,
        "dev": dev_rates,
    }
    print(json.dumps(result, indent=1, ensure_ascii=False))
    print("dev false hits:", *dev_false, sep="\n  ")
    print("train false hits:", *train_false, sep="\n  ")
    if args.write:
        PARAMS.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", "utf-8")
        print(f"wrote {PARAMS}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--max-false-hit", type=float, default=0.005)
    parser.add_argument("--l2", type=float, default=1.0)
    parser.add_argument("--near-miss-weight", type=float, default=3.0)
    parser.add_argument("--floor", type=float, default=CANDIDATE_FLOOR)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
