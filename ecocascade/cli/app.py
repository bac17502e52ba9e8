"""Commands. Heavy modules are imported inside the commands so ``--help`` stays fast."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from ecocascade.config.schema import CascadeConfig

app = typer.Typer(
    name="ecocascade",
    help="Cheapest model first, judge, escalate — and remember what worked.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

LogLevel = Annotated[
    str, typer.Option("--log-level", help="Show log events at this level and above (stderr).")
]
LogJson = Annotated[bool, typer.Option("--log-json", help="Log events as JSON lines.")]


@app.command()
def run(
    question: Annotated[str, typer.Argument(help="The query to resolve.")],
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Cascade config file (YAML).")
    ] = None,
    tier: Annotated[
        list[str] | None,
        typer.Option("--tier", "-t", help="A LiteLLM model, cheapest first; repeat for a ladder."),
    ] = None,
    api_base: Annotated[
        str | None, typer.Option("--api-base", help="api_base for the --tier models and llm judge.")
    ] = None,
    judge: Annotated[
        str | None,
        typer.Option(
            "--judge",
            "-j",
            help="contains:TEXT, regex:PATTERN, llm:MODEL, exec or human. "
            "Default: the config's judge, else the last tier as an LLM judge.",
        ),
    ] = None,
    budget: Annotated[
        float | None, typer.Option("--budget", help="Max USD to spend on this query.")
    ] = None,
    system: Annotated[str | None, typer.Option("--system", help="System prompt.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    log_level: LogLevel = "warning",
    log_json: LogJson = False,
) -> int:
    """Resolve one question through the cascade and show every attempt and its cost."""
    from ecocascade.cli.logs import configure_logging
    from ecocascade.cli.render import print_result

    configure_logging(log_level, json=log_json)
    cfg = _assemble_config(config, tier, api_base, judge, budget, system)
    cascade = cfg.build()
    _preflight(cascade.judge)
    result = cascade.run_sync(question)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        print_result(result)
    return 0 if result.success else 1


@app.command()
def demo(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON lines, one per query.")
    ] = False,
    log_level: LogLevel = "warning",
    log_json: LogJson = False,
) -> int:
    """Offline tour of the controller against built-in *scripted* models (no network, no key).

    Starts ecocascade's fake OpenAI-compatible server on loopback, scripts a cheap model that is
    right on some questions and a strong one that is right on all, and runs the real cascade
    (LiteLLM, judge, retries, costs) over it.
    """
    from ecocascade.cli.demo import run_demo
    from ecocascade.cli.logs import configure_logging

    configure_logging(log_level, json=log_json)
    results = run_demo()
    if as_json:
        for result in results:
            typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        from ecocascade.cli.render import print_demo

        print_demo(results)
    return 0 if all(r.success for r in results) else 1


@app.command()
def version() -> None:
    """Print ecocascade's version."""
    from ecocascade import __version__

    typer.echo(__version__)


def _assemble_config(
    config: Path | None,
    tiers: list[str] | None,
    api_base: str | None,
    judge: str | None,
    budget: float | None,
    system: str | None,
) -> CascadeConfig:
    from ecocascade.config.loader import load_config, parse_config, parse_judge_spec
    from ecocascade.exceptions import ConfigError

    data: dict[str, Any]
    if config is not None:
        data = load_config(config).model_dump(exclude_none=True)
    elif not tiers:
        raise ConfigError("give --config FILE or at least one --tier MODEL", where="run")
    else:
        data = {}
    if tiers:
        data["tiers"] = [{"model": t, "api_base": api_base} for t in tiers]
    if judge is not None:
        data["judge"] = parse_judge_spec(judge, api_base=api_base).model_dump(exclude_none=True)
    elif "judge" not in data:
        strongest = data["tiers"][-1]
        data["judge"] = {"type": "llm", **{k: v for k, v in strongest.items() if v is not None}}
    if budget is not None:
        data["budget_usd"] = budget
    if system is not None:
        data["system_prompt"] = system
    return parse_config(data, source=str(config) if config else "command line")


def _preflight(judge: Any) -> None:
    """Fail before spending anything if a judge cannot work here (e.g. human without a TTY)."""
    check = getattr(judge, "check_available", None)
    if callable(check):
        check()
    for inner in getattr(judge, "judges", ()):
        _preflight(inner)
