"""Administration of the solution store (sync: the CLI's ``ecocascade solutions ...`` and
scripts): list, show, count, delete, prune, stats, export/import, and the atomic reindex.

:class:`_StoreAdmin` is a mixin of :class:`~ecocascade.store.chroma.SolutionStore`, which
provides the connection (``_client``, ``_open``, ``_namespaces``, ``_call``, ``_get_from``).
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from ecocascade.exceptions import ConfigError, SolutionStoreError, format_validation_error
from ecocascade.store._chroma_common import (
    _BUILDING,
    _RETIRED,
    _ChromaAdapter,
    _collection,
    _describe,
    _embed_now,
    _from_chroma,
    _to_metadata,
)
from ecocascade.store.records import SolutionRecord
from ecocascade.types import Embedder

log = structlog.get_logger("ecocascade.store.chroma")

_PAGE = 1000


class _StoreAdmin:
    """The administrative operations of :class:`~ecocascade.store.chroma.SolutionStore`."""

    location: str
    embedder: Embedder
    collection_name: str
    _collections: dict[str, Any]
    _lock: threading.Lock

    if TYPE_CHECKING:  # provided by SolutionStore (the runtime side)

        def _client(self) -> Any: ...
        def _collection_for(self, namespace: str) -> str: ...
        def _open(self, namespace: str, *, create: bool = True) -> Any: ...
        def _namespaces(self, *, check_embedder: bool = True) -> dict[str, Any]: ...
        def _call(self, what: str, fn: Any, collection: Any) -> Any: ...
        def _get_from(self, collection: Any, id: str) -> SolutionRecord | None: ...

    def get(self, id: str) -> SolutionRecord | None:
        for collection in self._namespaces().values():
            found = self._get_from(collection, id)
            if found is not None:
                return found
        return None

    def iter_records(
        self, *, namespace: str | None = None, check_embedder: bool = True
    ) -> Iterable[SolutionRecord]:
        collections = self._namespaces(check_embedder=check_embedder)
        for name, collection in sorted(collections.items()):
            if namespace is not None and name != namespace:
                continue
            offset = 0
            while True:
                page = self._call(
                    "list",
                    lambda c, o=offset: c.get(
                        limit=_PAGE, offset=o, include=["metadatas", "documents"]
                    ),
                    collection,
                )
                for rid, doc, meta in zip(
                    page["ids"], page["documents"], page["metadatas"], strict=True
                ):
                    yield _from_chroma(rid, doc, meta)
                if len(page["ids"]) < _PAGE:
                    break
                offset += _PAGE

    def count(self) -> int:
        return sum(
            int(self._call("count", lambda c: c.count(), collection))
            for collection in self._namespaces().values()
        )

    def delete(self, ids: Sequence[str]) -> int:
        deleted = 0
        for collection in self._namespaces().values():
            present = self._call("delete", lambda c: c.get(ids=list(ids), include=[]), collection)[
                "ids"
            ]
            if present:
                self._call("delete", lambda c, p=present: c.delete(ids=p), collection)
                deleted += len(present)
        return deleted

    def prune(
        self,
        *,
        older_than_s: float | None = None,
        unused: bool = False,
        namespace: str | None = None,
    ) -> int:
        """Delete records last updated more than ``older_than_s`` ago and/or never retrieved."""
        if older_than_s is None and not unused:
            raise ConfigError("say what to prune: --older-than and/or --unused", where="prune")
        cutoff = time.time() - older_than_s if older_than_s is not None else None
        doomed = [
            r.id
            for r in self.iter_records(namespace=namespace)
            if (cutoff is None or r.updated_at < cutoff) and (not unused or r.times_retrieved == 0)
        ]
        for start in range(0, len(doomed), _PAGE):
            self.delete(doomed[start : start + _PAGE])
        return len(doomed)

    def stats(self) -> dict[str, Any]:
        namespaces: dict[str, int] = {}
        retrieved = successes = 0
        by_model: dict[str, int] = {}
        for r in self.iter_records():
            namespaces[r.namespace] = namespaces.get(r.namespace, 0) + 1
            retrieved += r.times_retrieved
            successes += r.successes_after_retrieval
            by_model[r.model or "?"] = by_model.get(r.model or "?", 0) + 1
        return {
            "location": self.location,
            "embedder": self.embedder.name,
            "records": sum(namespaces.values()),
            "namespaces": namespaces,
            "solved_by_model": by_model,
            "times_retrieved": retrieved,
            "successes_after_retrieval": successes,
        }

    def export(self, path: str | Path, *, namespace: str | None = None) -> int:
        """Write every record as one JSON object per line; returns how many."""
        n = 0
        try:
            out = Path(path).open("w", encoding="utf-8")  # noqa: SIM115 (closed below)
        except OSError as error:  # a directory, a missing parent, no permission
            raise ConfigError(f"cannot write: {error.strerror or error}", where=str(path)) from None
        with out:
            for record in self.iter_records(namespace=namespace):
                out.write(record.model_dump_json() + "\n")
                n += 1
        return n

    def import_(self, path: str | Path) -> int:
        """Load an export (JSONL) as-is — ids, counters and times kept — re-embedding queries
        with this store's embedder. Existing ids are overwritten."""
        records = list(_read_jsonl(Path(path)))
        self._write_all(records, lambda namespace: self._open(namespace))
        return len(records)

    def reindex(self, backup: str | Path | None = None) -> int:
        """Re-embed every record with this store's embedder (after changing embedding model).

        Atomic per namespace, and all-or-nothing until the swap: every namespace's new
        collection is built beside the live one (readers never see it) and checked complete;
        only then is each swapped in (live → ``.old``, new → live, ``.old`` dropped). Killed
        while building, the old store is untouched and the next reindex starts over; killed
        between the two renames of a swap, the next opening of the store renames ``.old`` back.
        A JSONL of every record is written to ``backup`` first (default: a timestamped file in
        the temp directory); ``import_(backup)`` restores it anywhere.
        """
        records = list(self.iter_records(check_embedder=False))
        backup = Path(
            backup or Path(tempfile.gettempdir()) / f"solutions-backup-{int(time.time())}.jsonl"
        )
        with backup.open("w", encoding="utf-8") as out:
            out.writelines(r.model_dump_json() + "\n" for r in records)
        log.info("solutions.reindex_backup", path=str(backup), records=len(records))
        client = self._client()
        namespaces = sorted(
            set(self._namespaces(check_embedder=False)) | {r.namespace for r in records}
        )
        try:
            building = f"{self.collection_name}{_BUILDING}--"
            for info in client.list_collections():
                if info.name.startswith(building):  # half-built by a reindex that was killed
                    client.delete_collection(info.name)
            built = {
                namespace: client.create_collection(
                    self._swap_names(namespace)[1],
                    embedding_function=_ChromaAdapter(self.embedder),
                    configuration={"hnsw": {"space": "cosine"}},
                    metadata={"embedder": self.embedder.name, "namespace": namespace},
                )
                for namespace in namespaces
            }
        except Exception as error:
            raise SolutionStoreError(
                f"reindex: {_describe(error)}", location=self.location
            ) from error
        self._write_all(records, built.__getitem__)
        for namespace, collection in built.items():
            expected = sum(1 for r in records if r.namespace == namespace)
            got = int(self._call("reindex", lambda c: c.count(), collection))
            if got != expected:
                raise SolutionStoreError(
                    f"reindex: namespace {namespace!r} rebuilt with {got} of {expected} records;"
                    " the old collection is kept",
                    location=self.location,
                )
        with self._lock:
            self._collections.clear()
        try:
            existing = {c.name for c in client.list_collections()}
            for namespace in namespaces:
                live, building, retired = self._swap_names(namespace)
                if live in existing:
                    _collection(client, live).modify(name=retired)
                _collection(client, building).modify(name=live)
                if live in existing:
                    client.delete_collection(retired)
        except Exception as error:
            raise SolutionStoreError(
                f"reindex: {_describe(error)}", location=self.location
            ) from error
        log.info("solutions.reindexed", records=len(records), embedder=self.embedder.name)
        return len(records)

    def _swap_names(self, namespace: str) -> tuple[str, str, str]:
        """A namespace's live collection, the one a reindex builds, and the one it retires.
        Only the live name starts with ``<collection>--``, so readers never list the others."""
        live = self._collection_for(namespace)
        rest = live.removeprefix(self.collection_name)
        return (
            live,
            f"{self.collection_name}{_BUILDING}{rest}",
            f"{self.collection_name}{_RETIRED}{rest}",
        )

    def _write_all(
        self, records: Sequence[SolutionRecord], collection_for: Any, batch: int = 256
    ) -> None:
        by_namespace: dict[str, list[SolutionRecord]] = {}
        for record in records:
            by_namespace.setdefault(record.namespace, []).append(record)
        for namespace, group in by_namespace.items():
            collection = collection_for(namespace)
            for start in range(0, len(group), batch):
                chunk = group[start : start + batch]
                vectors = _embed_now(self.embedder, [r.query for r in chunk])
                self._call(
                    "write",
                    lambda c, ch=chunk, v=vectors: c.upsert(
                        ids=[r.id for r in ch],
                        embeddings=v,
                        documents=[r.query for r in ch],
                        metadatas=[_to_metadata(r) for r in ch],
                    ),
                    collection,
                )


def _read_jsonl(path: Path) -> Iterable[SolutionRecord]:
    from pydantic import ValidationError

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ConfigError(f"cannot read: {error.strerror or error}", where=str(path)) from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"not UTF-8 text: {error.reason} at byte {error.start}", where=str(path)
        ) from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield SolutionRecord.model_validate(json.loads(line))
        except json.JSONDecodeError as error:
            raise ConfigError(f"not JSON: {error.msg}", where=f"{path}:{number}") from None
        except ValidationError as error:
            raise ConfigError(format_validation_error(error), where=f"{path}:{number}") from None
