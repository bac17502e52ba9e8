"""``ecocascade solutions …``: inspect and maintain the solution store."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from ecocascade.store.chroma import SolutionStore
    from ecocascade.store.records import SolutionRecord

solutions_app = typer.Typer(
    help="The solution store: list, show, search, export/import, delete, prune, stats, reindex.",
    no_args_is_help=True,
)

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Directory or http://host:port. Default: $ECOCASCADE_SOLUTIONS or ./solutions_db.",
    ),
]
EmbedderOpt = Annotated[
    str,
    typer.Option(
        "--embedder",
        help="sentence-transformers[:PATH_OR_ID] or litellm:MODEL (must match the store).",
    ),
]
NamespaceOpt = Annotated[str | None, typer.Option("--namespace", "-n", help="Only this namespace.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _open(location: str | None, embedder: str = "sentence-transformers") -> SolutionStore:
    from ecocascade.store.chroma import SolutionStore
    from ecocascade.store.embedders import embedder_from_spec

    where = location or os.environ.get("ECOCASCADE_SOLUTIONS") or "solutions_db"
    return SolutionStore(where, embedder=embedder_from_spec(embedder))


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def _one_line(text: str, width: int = 70) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _print_table(records: list[SolutionRecord]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "namespace", "query", "model", "used", "updated")
    for r in records:
        table.add_row(
            r.id[:12],
            r.namespace,
            _one_line(r.query, 50),
            r.model or "?",
            f"{r.successes_after_retrieval}/{r.times_retrieved}",
            _when(r.updated_at),
        )
    Console().print(table)


@solutions_app.command("list")
def list_(
    store: StoreOpt = None,
    namespace: NamespaceOpt = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many.")] = 50,
    embedder: EmbedderOpt = "sentence-transformers",
    as_json: JsonOpt = False,
) -> None:
    """List records, most recently updated first."""
    records = sorted(
        _open(store, embedder).iter_records(namespace=namespace), key=lambda r: -r.updated_at
    )[:limit]
    if as_json:
        typer.echo(json.dumps([r.model_dump() for r in records], ensure_ascii=False))
    else:
        _print_table(records)


@solutions_app.command()
def show(
    record_id: Annotated[str, typer.Argument(help="A record id (a unique prefix is enough).")],
    store: StoreOpt = None,
    embedder: EmbedderOpt = "sentence-transformers",
    as_json: JsonOpt = False,
) -> None:
    """Show one record in full."""
    record = _find(_open(store, embedder), record_id)
    if as_json:
        typer.echo(record.model_dump_json())
        return
    for key, value in record.model_dump().items():
        shown = _when(value) if key in {"created_at", "updated_at"} else value
        typer.echo(f"{key}: {shown}")


def _find(opened: SolutionStore, record_id: str) -> SolutionRecord:
    from ecocascade.exceptions import ConfigError

    exact = opened.get(record_id)
    if exact is not None:
        return exact
    matches = [r for r in opened.iter_records() if r.id.startswith(record_id)]
    if len(matches) == 1:
        return matches[0]
    problem = "no record has" if not matches else f"{len(matches)} records have"
    raise ConfigError(f"{problem} an id starting with {record_id!r}", where="solutions")


@solutions_app.command()
def search(
    text: Annotated[str, typer.Argument(help="A query to find similar solved ones for.")],
    store: StoreOpt = None,
    namespace: Annotated[str, typer.Option("--namespace", "-n")] = "default",
    k: Annotated[int, typer.Option("--k", help="How many.")] = 5,
    threshold: Annotated[
        float, typer.Option("--threshold", help="Min cosine similarity (-1 shows all).")
    ] = -1.0,
    embedder: EmbedderOpt = "sentence-transformers",
    as_json: JsonOpt = False,
) -> None:
    """The most similar solved queries, with their cosine similarity."""
    import asyncio

    found = asyncio.run(
        _open(store, embedder).search(text, namespace=namespace, k=k, threshold=threshold)
    )
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {"id": d.id, "similarity": d.similarity, "query": d.query,
                     "solution": d.solution, "model": d.model}
                    for d in found
                ],
                ensure_ascii=False,
            )
        )  # fmt: skip
        return
    for d in found:
        typer.echo(f"{d.similarity:.3f}  {d.id[:12]}  {_one_line(d.query)}")
        typer.echo(f"       → {_one_line(d.solution)}")


@solutions_app.command("export")
def export_(
    file: Annotated[Path, typer.Argument(help="JSONL file to write.")],
    store: StoreOpt = None,
    namespace: NamespaceOpt = None,
    embedder: EmbedderOpt = "sentence-transformers",
) -> None:
    """Write every record (one JSON object per line); `import` rebuilds the store from it."""
    n = _open(store, embedder).export(file, namespace=namespace)
    typer.echo(f"exported {n} records to {file}", err=True)


@solutions_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="JSONL written by `export`.")],
    store: StoreOpt = None,
    embedder: EmbedderOpt = "sentence-transformers",
) -> None:
    """Load records from an export, keeping their ids, counters and times."""
    n = _open(store, embedder).import_(file)
    typer.echo(f"imported {n} records from {file}", err=True)


@solutions_app.command()
def delete(
    ids: Annotated[list[str], typer.Argument(help="Record ids (unique prefixes are enough).")],
    store: StoreOpt = None,
    embedder: EmbedderOpt = "sentence-transformers",
) -> None:
    """Delete records."""
    opened = _open(store, embedder)
    n = opened.delete([_find(opened, i).id for i in ids])
    typer.echo(f"deleted {n} records", err=True)


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _seconds(text: str) -> float:
    from ecocascade.exceptions import ConfigError

    match = _DURATION.match(text.strip())
    if match is None:
        raise ConfigError(
            f"expected a duration like 30d, 12h, 90m; got {text!r}", where="--older-than"
        )
    return float(match.group(1)) * _SECONDS[match.group(2)]


@solutions_app.command()
def prune(
    store: StoreOpt = None,
    older_than: Annotated[
        str | None, typer.Option("--older-than", help="Not updated for this long (30d, 12h…).")
    ] = None,
    unused: Annotated[bool, typer.Option("--unused", help="Never retrieved.")] = False,
    namespace: NamespaceOpt = None,
    embedder: EmbedderOpt = "sentence-transformers",
) -> None:
    """Delete stale records: --older-than and/or --unused (both given: both must hold)."""
    n = _open(store, embedder).prune(
        older_than_s=_seconds(older_than) if older_than else None,
        unused=unused,
        namespace=namespace,
    )
    typer.echo(f"pruned {n} records", err=True)


@solutions_app.command()
def stats(
    store: StoreOpt = None,
    embedder: EmbedderOpt = "sentence-transformers",
    as_json: JsonOpt = False,
) -> None:
    """Records per namespace and model, and how often demonstrations were used."""
    data = _open(store, embedder).stats()
    if as_json:
        typer.echo(json.dumps(data))
        return
    for key, value in data.items():
        typer.echo(f"{key}: {value}")


@solutions_app.command()
def reindex(
    store: StoreOpt = None,
    embedder: EmbedderOpt = "sentence-transformers",
) -> None:
    """Re-embed every record with --embedder (after changing the embedding model).

    Atomic: the new collections replace the old ones only once complete, so an interrupted
    reindex leaves the store as it was (run it again). A backup export is written first
    (solutions-backup-<time>.jsonl in the current directory; `solutions import` reads it).
    """
    import time

    backup = Path(f"solutions-backup-{int(time.time())}.jsonl")
    n = _open(store, embedder).reindex(backup)
    typer.echo(f"backup written to {backup}", err=True)
    typer.echo(f"re-embedded {n} records with {embedder}", err=True)
