"""The tuner: from recorded train data only, choose the ladder, judge and router settings that
minimise cost at a target accuracy (or maximise accuracy within a budget), and write a config
the cascade runs as is."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ecocascade.exceptions import ConfigError
from ecocascade.replay.data import RecordedDataset, RecordedItem, read_recorded
from ecocascade.tuning.features import ROUTER_K, Features, dataset_features, make_table
from ecocascade.tuning.simulate import Candidate, Table, candidates_scores
from ecocascade.types import Embedder

__all__ = ["TuneResult", "merge_datasets", "select", "select_mixed", "tune", "tune_files"]

Array = npt.NDArray[np.float64]


def select(
    accuracy: Array,
    cost: Array,
    *,
    target: float | None = None,
    budget: float | None = None,
    allowed: npt.NDArray[np.bool_] | None = None,
) -> int:
    """Index of the chosen candidate. ``target``: the cheapest whose accuracy reaches it (none
    does: the most accurate). ``budget``: the most accurate within it (none fits: the cheapest).
    Ties go to the other criterion."""
    if (target is None) == (budget is None):
        raise ConfigError("give exactly one of a target accuracy or a budget", where="tune")
    mask = np.ones(len(accuracy), dtype=bool) if allowed is None else allowed
    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        raise ConfigError("no candidate configuration to choose from", where="tune")
    acc, cst = accuracy[idx], cost[idx]
    eps = 1e-12
    if target is not None:
        ok = acc >= target - eps
        if ok.any():
            pick = np.lexsort((-acc[ok], cst[ok]))[0]
            return int(idx[ok][pick])
        return int(idx[np.lexsort((cst, -acc))[0]])
    assert budget is not None
    ok = cst <= budget + eps
    if ok.any():
        pick = np.lexsort((cst[ok], -acc[ok]))[0]
        return int(idx[ok][pick])
    return int(idx[np.lexsort((-acc, cst))[0]])


def select_mixed(
    table: Table,
    candidates: Sequence[Candidate],
    accuracy: Array,
    cost: Array,
    budget: float,
    *,
    allowed: npt.NDArray[np.bool_] | None = None,
    last_tiers: npt.NDArray[np.int64] | None = None,
    mixable: npt.NDArray[np.bool_] | None = None,
) -> tuple[Candidate, float, float]:
    """The most accurate way to spend ``budget``: a candidate within it, or a cheaper one whose
    leftover budget sends a random share of queries straight to its last tier (a
    :class:`~ecocascade.routing.RandomShareRouter`), whichever is more accurate on ``table``
    (the mix's accuracy and cost are the expected ones). Candidates with a history router are
    not mixed. Returns (candidate, accuracy, cost)."""
    i = select(accuracy, cost, budget=budget, allowed=allowed)
    chosen, acc, spent = candidates[i], float(accuracy[i]), float(cost[i])
    if spent > budget + 1e-12:
        acc = -1.0  # nothing fits: any mix that fits is better
    last = (
        last_tiers
        if last_tiers is not None
        else np.array([c.ladder[-1] for c in candidates], dtype=np.int64)
    )
    mask = np.ones(len(candidates), dtype=bool) if allowed is None else allowed.copy()
    mask &= (
        mixable
        if mixable is not None
        else np.array([c.skip_below is None for c in candidates], dtype=bool)
    )
    single_acc = (table.answered * table.correct).mean(axis=0)[last]
    single_cost = table.cost.mean(axis=0)[last]
    ok = mask & (cost < budget) & (single_cost > budget) & (single_acc > accuracy)
    if ok.any():
        share = np.where(ok, (budget - cost) / np.where(ok, single_cost - cost, 1.0), 0.0)
        share = np.floor(share * 1000) / 1000
        mixed = np.where(ok, accuracy + share * (single_acc - accuracy), -np.inf)
        j = int(np.argmax(mixed))
        if mixed[j] > acc + 1e-12 and share[j] > 0:
            mixed_cost = float(cost[j] + share[j] * (single_cost[j] - cost[j]))
            return (
                dataclasses.replace(candidates[j], escalate_share=float(share[j])),
                float(mixed[j]),
                mixed_cost,
            )
    return chosen, float(accuracy[i]), spent


def merge_datasets(datasets: Sequence[RecordedDataset]) -> RecordedDataset:
    """One dataset from several: the models every file has, items from all (ids prefixed)."""
    if len(datasets) == 1:
        return datasets[0]
    models = tuple(m for m in datasets[0].models if all(m in d.models for d in datasets[1:]))
    if not models:
        raise ConfigError("the train files share no model", where="--train")
    items = tuple(
        RecordedItem(
            f"{d.name}:{it.id}", it.query, {m: a for m, a in it.answers.items() if m in models}
        )
        for d in datasets
        for it in d.items
    )
    return RecordedDataset("+".join(d.name for d in datasets), models, items)


@dataclass(frozen=True)
class TuneResult:
    candidate: Candidate
    models: tuple[str, ...]
    train_accuracy: float
    train_cost: float
    candidates: int
    config: dict[str, Any]
    unmapped: tuple[str, ...] = ()
    """Live tiers that name a recorded model verbatim (no ``model_map`` entry): edit them."""

    def describe(self) -> str:
        return self.candidate.describe(self.models)


def train_table(features: Features, rows: npt.NDArray[np.int_], seed: int = 0) -> Table:
    """The simulation table of ``rows`` as the tuner sees it: learned scores cross-fitted within
    ``rows``, router rates from the other rows (leave one out)."""
    scores = features.crossfit_scores(rows, seed=seed)
    route = features.route_rates(rows, rows, leave_one_out=True)
    return make_table(features, rows, scores, route, features.reliability(rows, seed=seed))


def tune(
    table: Table, *, target: float | None = None, budget: float | None = None
) -> tuple[Candidate, float, float, int]:
    candidates, accuracy, cost = candidates_scores(table)
    if budget is not None:
        chosen, acc, spent = select_mixed(table, candidates, accuracy, cost, budget)
        return chosen, acc, spent, len(candidates)
    i = select(accuracy, cost, target=target, budget=budget)
    return candidates[i], float(accuracy[i]), float(cost[i]), len(candidates)


async def tune_files(
    paths: Sequence[str | Path],
    embedder: Embedder,
    out: str | Path,
    *,
    target: float | None = None,
    budget: float | None = None,
    replay: bool = True,
    embedder_spec: str = "sentence-transformers",
    model_map: Mapping[str, str] | None = None,
) -> TuneResult:
    """Tune on ``paths`` and write ``out`` (YAML) plus the judge/router files it names.

    ``replay`` tiers replay the recorded answers; else (live) each tier calls
    ``model_map[recorded name]`` and keeps the recorded name as its ``name`` (the learned judge's
    thresholds and the router's history are keyed by it); a recorded model missing from the map
    is written as it is named in the data — see ``TuneResult.unmapped``."""
    if model_map and replay:
        raise ConfigError("a model map is for live tiers only", where="--model-map")
    if target is not None and not 0.0 <= target <= 1.0:
        raise ConfigError(f"must be in [0, 1], got {target}", where="--target-accuracy")
    if budget is not None and (not math.isfinite(budget) or budget < 0):
        raise ConfigError(f"must be a finite number >= 0, got {budget}", where="--budget-per-query")
    dataset = merge_datasets([read_recorded(p) for p in paths])
    features = await dataset_features(dataset, embedder)
    rows = np.arange(len(dataset))
    table = train_table(features, rows)
    candidate, acc, cost, count = tune(table, target=target, budget=budget)
    out = Path(out)
    data = _joined_paths(paths) if replay else None
    config = candidate_config(
        candidate, features, out, data=data, embedder_spec=embedder_spec, model_map=model_map
    )
    unmapped = tuple(
        dict.fromkeys(
            dataset.models[m]
            for m in (*candidate.ladder, *candidate.references)
            if not replay and dataset.models[m] not in (model_map or {})
        )
    )
    import yaml

    out.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"# Tuned by `ecocascade tune` on {', '.join(str(p) for p in paths)}\n"
        f"# {candidate.describe(dataset.models)}\n"
        f"# train accuracy {acc:.4f}, cost per query ${cost:.6g} (of {count} candidates)\n"
        "# judge, router and replay paths are absolute (as on the machine that tuned)\n"
    )
    if unmapped:
        header += (
            f"# EDIT: {', '.join(unmapped)} named as in the recorded data, not as LiteLLM models\n"
        )
    out.write_text(header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return TuneResult(candidate, dataset.models, acc, cost, count, config, unmapped)


def _joined_paths(paths: Sequence[str | Path]) -> str:
    """Absolute paths joined by ``os.pathsep``: a replay tier's ``api_base``."""
    return os.pathsep.join(os.path.abspath(p) for p in paths)


def candidate_config(
    candidate: Candidate,
    features: Features,
    out: Path,
    *,
    data: str | None,
    embedder_spec: str = "sentence-transformers",
    model_map: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The cascade config (as a YAML-ready dict) for ``candidate``; fits and saves the learned
    judge and the router on all of ``features`` when the candidate uses them."""
    models = features.models
    rows = np.arange(len(features.dataset))

    def tier(m: int) -> dict[str, Any]:
        if data:
            return {"model": f"replay/{models[m]}", "api_base": data}
        live = (model_map or {}).get(models[m])
        return {"model": live, "name": models[m]} if live else {"model": models[m]}

    config: dict[str, Any] = {"tiers": [tier(m) for m in candidate.ladder]}
    judges: list[dict[str, Any]] = []
    if candidate.judge in ("learned", "any", "all"):
        judge_path = out.with_suffix(".judge.npz").resolve()
        features.fit_judge(rows).save(judge_path)
        thresholds = dict(
            zip((models[m] for m in candidate.ladder), candidate.thresholds, strict=False)
        )
        thresholds[models[candidate.ladder[-1]]] = 0.0
        judges.append(
            {
                "type": "learned",
                "path": str(judge_path),
                "embedder": embedder_spec,
                "thresholds": thresholds,
            }
        )
    if candidate.judge == "reliability":
        confusion_path = out.with_suffix(".confusion.json").resolve()
        features.fit_confusion(rows).save(confusion_path)
        judges.append(
            {
                "type": "reliability",
                "path": str(confusion_path),
                "references": [tier(r) for r in candidate.references],
                "tau": candidate.thresholds[0],
                "accept_last_tier": True,
            }
        )
    if candidate.judge in ("agreement", "any", "all"):
        judges.append(
            {
                "type": "agreement",
                "references": [tier(r) for r in candidate.references],
                "min_agree": candidate.min_agree,
                "accept_last_tier": True,
            }
        )
    if not judges:  # one tier: accept its answer
        config["judge"] = {"type": "regex", "pattern": "(?s).*"}
    elif len(judges) == 1:
        config["judge"] = judges[0]
    else:
        config["judge"] = {"type": candidate.judge, "judges": judges}
    if candidate.escalate_share > 0:
        config["router"] = {"type": "random_share", "share": candidate.escalate_share}
    if candidate.skip_below is not None:
        from ecocascade.routing import HistoryRouter

        router_path = out.with_suffix(".router.npz").resolve()
        correct, known = features.labels()

        HistoryRouter(
            features.query,
            np.where(known, correct, np.nan),
            models,
            None,
            embedder_name=features.embedder_name,
            k=ROUTER_K,
            skip_below=candidate.skip_below,
        ).save(router_path)
        config["router"] = {
            "type": "history",
            "path": str(router_path),
            "embedder": embedder_spec,
            "k": ROUTER_K,
            "skip_below": candidate.skip_below,
        }
    return config
