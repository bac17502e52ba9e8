"""``ecocascade tune`` and ``ecocascade bench replay``: calibrate and measure cascades on recorded
answers. Heavy modules (numpy, the embedder, LiteLLM) are imported inside the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["bench_app", "tune"]

bench_app = typer.Typer(
    help="Measure cascades on recorded answers of real models.", no_args_is_help=True
)

TrainOpt = Annotated[
    list[Path],
    typer.Option(
        "--train",
        help="Recorded data to learn from (RouterBench .csv or an eval's tasks.jsonl); repeat.",
        exists=True,
        dir_okay=False,
    ),
]
LogLevel = Annotated[
    str, typer.Option("--log-level", help="Show log events at this level and above (stderr).")
]
EmbedderOpt = Annotated[
    str,
    typer.Option("--embedder", help="sentence-transformers[:PATH] (default) or litellm:MODEL."),
]


def tune(
    train: TrainOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the cascade YAML.")],
    target_accuracy: Annotated[
        float | None,
        typer.Option("--target-accuracy", help="Cheapest config reaching this train accuracy."),
    ] = None,
    budget_per_query: Annotated[
        float | None,
        typer.Option(
            "--budget-per-query",
            help="Most accurate config whose mean USD per query on the train data is within "
            "this (a mean, not a per-query cap).",
        ),
    ] = None,
    live: Annotated[
        bool,
        typer.Option(
            "--live/--replay",
            help="Tiers call real models (--live; map names with --model-map) or replay the "
            "recorded answers (default).",
        ),
    ] = False,
    model_map: Annotated[
        list[str] | None,
        typer.Option(
            "--model-map",
            help="With --live: RECORDED=LITELLM_MODEL, e.g. "
            "meta/llama-2-70b-chat=together_ai/meta-llama/Llama-2-70b-chat-hf; repeat. "
            "Unmapped models are written as the data names them (edit them).",
        ),
    ] = None,
    embedder: EmbedderOpt = "sentence-transformers",
    log_level: LogLevel = "warning",
) -> None:
    """Choose tiers, judge thresholds and router from train data only; write a runnable config.

    Searches every ladder of up to 3 recorded models (cheapest first), a learned judge's
    per-tier thresholds, agreement judges, and the history router, by simulating the cascade on
    the records (learned scores cross-fitted). Without a target or budget the target is the most
    accurate single model's train accuracy. The YAML names the judge/router files and replayed
    data by absolute path.
    """
    import asyncio
    import time

    from ecocascade.cli.logs import configure_logging
    from ecocascade.exceptions import ConfigError
    from ecocascade.store.embedders import embedder_from_spec
    from ecocascade.tuning.tuner import tune_files

    configure_logging(log_level)
    if target_accuracy is not None and budget_per_query is not None:
        raise ConfigError("give --target-accuracy or --budget-per-query, not both", where="tune")
    mapping: dict[str, str] = {}
    for entry in model_map or []:
        recorded, sep, litellm_model = entry.partition("=")
        if not sep or not recorded.strip() or not litellm_model.strip():
            raise ConfigError(
                f"expected RECORDED=LITELLM_MODEL, got {entry!r}", where="--model-map"
            )
        mapping[recorded.strip()] = litellm_model.strip()
    if mapping and not live:
        raise ConfigError("--model-map maps live tiers: add --live", where="--model-map")
    started = time.perf_counter()
    target = target_accuracy
    if target is None and budget_per_query is None:
        target = _best_single_accuracy(train)
        typer.echo(f"target: the best single model's train accuracy, {target:.4f}")
    result = asyncio.run(
        tune_files(
            train,
            embedder_from_spec(embedder),
            out,
            target=target,
            budget=budget_per_query,
            replay=not live,
            embedder_spec=embedder,
            model_map=mapping,
        )
    )
    typer.echo(f"chose: {result.describe()}")
    if result.unmapped:
        typer.echo(
            f"edit {out}: tiers {', '.join(result.unmapped)} are named as in the recorded data, "
            "not as LiteLLM models (or pass --model-map)",
            err=True,
        )
    typer.echo(
        f"train accuracy {result.train_accuracy:.4f}, ${result.train_cost:.6g} per query "
        f"({result.candidates} candidates, {time.perf_counter() - started:.1f}s)"
    )
    typer.echo(f"wrote {out}")


def _best_single_accuracy(paths: list[Path]) -> float:
    import numpy as np

    from ecocascade.replay.data import read_recorded
    from ecocascade.tuning.bench import single_accuracy
    from ecocascade.tuning.tuner import merge_datasets

    ds = merge_datasets([read_recorded(p) for p in paths])
    return float(single_accuracy(ds, np.arange(len(ds))).max())


@bench_app.command("replay")
def bench_replay(
    train: TrainOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for bench.json/html.")],
    eval_: Annotated[
        list[Path] | None,
        typer.Option(
            "--eval",
            help="Score on these files (one per --train, or one train file for all); "
            "default: cross-validate on each train file.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="Also run this cascade config for real over each eval file."
        ),
    ] = None,
    folds: Annotated[int, typer.Option("--folds", min=2, help="Cross-validation folds.")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Fold assignment seed.")] = 0,
    embedder: EmbedderOpt = "sentence-transformers",
    log_level: LogLevel = "warning",
) -> None:
    """Single models, the oracle, tuned cascades and a kNN router on recorded answers.

    Writes DIR/bench.json (per dataset: single_models, strategies, oracle, aiq, curves) and
    DIR/bench.html (table and cost/accuracy plot), and prints the table.
    """
    import asyncio
    import shlex
    import sys

    from ecocascade.cli.logs import configure_logging
    from ecocascade.exceptions import ConfigError
    from ecocascade.store.embedders import embedder_from_spec

    configure_logging(log_level)
    evals = list(eval_ or [])
    if evals and len(train) not in (1, len(evals)):
        raise ConfigError(
            "give one --train file, or one per --eval file (paired in order)", where="--eval"
        )
    command = "ecocascade " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    results = asyncio.run(_bench(train, evals, config, folds, seed, embedder_from_spec(embedder)))
    from ecocascade.tuning.bench import write_outputs

    write_outputs(results, out, command=command)
    for r in results:
        _print_table(r)
    typer.echo(f"wrote {out / 'bench.json'} and {out / 'bench.html'}")


async def _bench(
    train: list[Path],
    evals: list[Path],
    config: Path | None,
    folds: int,
    seed: int,
    embedder: Any,
) -> list[dict[str, Any]]:
    import numpy as np

    from ecocascade.replay.data import read_recorded
    from ecocascade.tuning.bench import bench_dataset
    from ecocascade.tuning.tuner import merge_datasets

    def say(line: str) -> None:
        typer.echo(line, err=True)

    results = []
    pairs = (
        [(t, None) for t in train]
        if not evals
        else [(train[0] if len(train) == 1 else train[i], e) for i, e in enumerate(evals)]
    )
    for train_path, eval_path in pairs:
        train_ds = read_recorded(train_path)
        if eval_path is None or eval_path.resolve() == train_path.resolve():
            dataset, eval_rows = train_ds, None
        else:
            eval_ds = read_recorded(eval_path)
            dataset = merge_datasets([train_ds, eval_ds])
            dataset = type(dataset)(eval_ds.name, dataset.models, dataset.items)
            eval_rows = np.arange(len(train_ds), len(dataset))
        result = await bench_dataset(
            dataset, embedder, eval_rows=eval_rows, folds=folds, seed=seed, progress=say
        )
        if config is not None:
            result["strategies"].append(
                await _run_config(config, eval_path or train_path, in_sample=eval_path is None)
            )
        results.append(result)
    return results


async def _run_config(config: Path, data: Path, *, in_sample: bool) -> dict[str, Any]:
    """The real Cascade, built from ``config``, over every item of ``data``."""
    import time

    import numpy as np

    from ecocascade.config.loader import load_config
    from ecocascade.replay.data import read_recorded
    from ecocascade.replay.provider import ensure_replay_provider
    from ecocascade.replay.run import run_cascade_on

    ensure_replay_provider()
    dataset = read_recorded(data)
    cascade = load_config(config).build()
    started = time.perf_counter()
    outcomes = await run_cascade_on(cascade, dataset)
    costs = [o.cost_usd for o in outcomes]
    return {
        "name": f"config {config.name} (real Cascade over replay tiers"
        + (", tuned on these items: in-sample)" if in_sample else ")"),
        "accuracy": float(np.mean([o.correct for o in outcomes])),
        "cost_per_query_usd": float(np.mean([c or 0.0 for c in costs])),
        "unknown_costs": sum(c is None for c in costs),
        "seconds": round(time.perf_counter() - started, 1),
        "configs": [str(config)],
    }


def _print_table(result: dict[str, Any]) -> None:
    typer.echo(f"\n{result['dataset']} — {result['items']} items, {result['protocol']}")
    target = result["target"]
    typer.echo(
        f"{'strategy':58s} {'accuracy':>8s} {'$/query':>10s} {'cost':>5s} {'random esc.':>11s}"
    )
    for s in result["single_models"]:
        typer.echo(f"{'  ' + s['name']:58s} {s['accuracy']:8.3f} {s['cost_per_query_usd']:10.2e}")
    o = result["oracle"]
    typer.echo(f"{'oracle':58s} {o['accuracy']:8.3f} {o['cost_per_query_usd']:10.2e}")
    for s in result["strategies"]:
        share = s["cost_per_query_usd"] / target["cost_per_query_usd"]
        typer.echo(
            f"{s['name'][:58]:58s} {s['accuracy']:8.3f} {s['cost_per_query_usd']:10.2e}"
            f" {share:5.0%} {_versus(s)}"
        )
    sweep = result.get("budget_sweep", [])
    if sweep:
        typer.echo("budget sweep (cost share: accuracy vs random escalation at that cost):")
        typer.echo(
            "  "
            + "; ".join(
                f"{p['cost_per_query_usd'] / target['cost_per_query_usd']:.0%}: "
                f"{p['accuracy']:.3f} {_versus(p)}"
                for p in sweep
            )
        )
        behind = [p for p in sweep if p["beats_random_escalation"] is False]
        typer.echo(
            f"  {len(behind)} of {len(sweep)} sweep points do NOT beat random escalation"
            if behind
            else "  every sweep point with a baseline beats random escalation"
        )
    aiq = result["aiq"]
    typer.echo(
        f"AIQ: cascade {aiq['cascade']:.4f}, knn router {aiq['knn_router']:.4f}, "
        f"single models {aiq['single_models']:.4f}; with the single models added: "
        f"cascade {aiq['cascade_with_singles']:.4f}, "
        f"knn router {aiq['knn_router_with_singles']:.4f}"
    )
    aucs = result.get("judge_auc", {})
    if aucs:
        typer.echo("judge AUC per model (out of fold): " + ", ".join(aucs))
        for model in result["models"]:
            values = "  ".join(
                f"{judge} {'–' if v is None else f'{v:.3f}'}"
                for judge, per in aucs.items()
                for v in [per.get(model)]
            )
            typer.echo(f"  {model[:40]:40s} {values}")


def _versus(point: dict[str, Any]) -> str:
    base = point.get("random_escalation_accuracy")
    if base is None:
        return f"{'–':>6s} (below every cheap model's cost)"
    mark = "beats" if point.get("beats_random_escalation") else "does NOT beat"
    return f"{base:6.3f} ({mark} random escalation)"
