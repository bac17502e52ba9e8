"""The solution store on Chroma: embedded (a directory) or a Chroma server (a URL), one code path.

Records are keyed by :func:`~ecocascade.store.records.record_id`, embedded by an
:class:`~ecocascade.types.Embedder` we control (Chroma's own default embedding function is never
used: it downloads a model), and searched by cosine similarity within a namespace.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import re
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog

from ecocascade.exceptions import ConfigError, SolutionStoreError, format_validation_error
from ecocascade.store.records import SolutionRecord
from ecocascade.text import MAX_STORED_QUERY_CHARS, mask_secrets, truncate
from ecocascade.types import Demonstration, Embedder

__all__ = ["DEFAULT_LOCATION", "SolutionStore"]

log = structlog.get_logger(__name__)

DEFAULT_LOCATION = "solutions_db"
COLLECTION = "ecocascade-solutions"
_PAGE = 1000
_COLLECTION_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,38}[a-zA-Z0-9]")
# Collections a reindex builds and retires are named <collection><mark>--<namespace part>.
_BUILDING, _RETIRED = ".reindex-new", ".reindex-old"


class SolutionStore:
    """Verified query → solution pairs, retrievable by similarity.

    ``location`` is a directory for the embedded store (``solutions_db/`` by default) or an
    ``http(s)://host:port`` URL of a Chroma server (``chroma run --path DIR --port N``).
    ``max_solution_chars`` caps what one record may hold: larger solutions are not recorded;
    ``max_query_chars`` does the same for queries. A record stored before these caps (or under
    larger ones) is cut to them when :meth:`search` hands it out as a demonstration
    (:func:`~ecocascade.text.truncate`), so it can never blow up a prompt.
    """

    def __init__(
        self,
        location: str | Path = DEFAULT_LOCATION,
        *,
        embedder: Embedder | None = None,
        collection: str = COLLECTION,
        max_solution_chars: int = 20_000,
        max_query_chars: int = MAX_STORED_QUERY_CHARS,
    ) -> None:
        from ecocascade.store.embedders import default_embedder

        if not _COLLECTION_NAME.fullmatch(collection):
            raise ConfigError(
                "3-40 characters from [a-zA-Z0-9._-], starting and ending alphanumeric",
                where="solution store collection",
            )
        self.location = str(location)
        self.embedder: Embedder = embedder or default_embedder()
        self.collection_name = collection
        self.max_solution_chars = max_solution_chars
        self.max_query_chars = max_query_chars
        self._url = _parse_url(self.location)
        self._client_obj: Any = None
        self._collections: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SolutionStore({self.location!r}, embedder={self.embedder.name!r})"

    # -- connection ------------------------------------------------------------------------
    #
    # One Chroma collection per namespace: a metadata filter ("where namespace = ...") makes
    # Chroma scan instead of using its HNSW index (201 ms vs 1.3 ms per query at 100k records).

    def _collection_for(self, namespace: str) -> str:
        digest = hashlib.sha256(namespace.encode()).hexdigest()[:10]
        readable = re.sub(r"[^a-zA-Z0-9._-]", "-", namespace)[:40].strip("-._") or "ns"
        return f"{self.collection_name}--{readable}-{digest}"

    def _client(self) -> Any:
        with self._lock:
            if self._client_obj is None:
                try:
                    self._client_obj = self._make_client()
                    self._finish_interrupted_swap(self._client_obj)
                except Exception as error:
                    raise SolutionStoreError(_describe(error), location=self.location) from error
            return self._client_obj

    def _make_client(self) -> Any:
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False, allow_reset=False)
        if self._url is not None:
            host, port, ssl = self._url
            return chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=settings)
        Path(self.location).mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=self.location, settings=settings)

    def _open(self, namespace: str, *, create: bool = True) -> Any:
        """The namespace's collection (created on first use), or ``None`` if absent and not
        ``create``."""
        with self._lock:
            found = self._collections.get(namespace)
        if found is not None:
            return found
        name = self._collection_for(namespace)
        client = self._client()
        try:
            if create:
                collection = client.get_or_create_collection(
                    name,
                    embedding_function=_ChromaAdapter(self.embedder),
                    configuration={"hnsw": {"space": "cosine"}},
                    metadata={"embedder": self.embedder.name, "namespace": namespace},
                )
            else:
                existing = {c.name for c in client.list_collections()}
                if name not in existing:
                    return None
                collection = client.get_collection(
                    name, embedding_function=_ChromaAdapter(self.embedder)
                )
        except (ConfigError, SolutionStoreError):
            raise
        except Exception as error:  # chromadb raises many types for "cannot use this store"
            raise SolutionStoreError(_describe(error), location=self.location) from error
        self._check_embedder(collection)
        with self._lock:
            self._collections[namespace] = collection
        return collection

    def _check_embedder(self, collection: Any) -> None:
        built_with = (collection.metadata or {}).get("embedder")
        if built_with and built_with != self.embedder.name:
            raise ConfigError(
                f"this store was built with embedder {built_with!r}, not {self.embedder.name!r};"
                " open it with that embedder, or rebuild it: ecocascade solutions reindex",
                where=f"solution store {self.location}",
            )

    def _namespaces(self, *, check_embedder: bool = True) -> dict[str, Any]:
        """Every namespace collection of this store: namespace → collection."""
        client = self._client()
        prefix = f"{self.collection_name}--"
        try:
            listed = [c for c in client.list_collections() if c.name.startswith(prefix)]
            found = {}
            for info in listed:
                collection = client.get_collection(
                    info.name, embedding_function=_ChromaAdapter(self.embedder)
                )
                namespace = (collection.metadata or {}).get("namespace")
                if namespace is not None:
                    found[str(namespace)] = collection
        except Exception as error:
            raise SolutionStoreError(f"list: {_describe(error)}", location=self.location) from error
        if check_embedder:
            for collection in found.values():
                self._check_embedder(collection)
        return found

    def _call(self, what: str, fn: Any, collection: Any) -> Any:
        """Run ``fn(collection)``, turning Chroma's failures into :class:`SolutionStoreError`."""
        try:
            return fn(collection)
        except (ConfigError, SolutionStoreError):
            raise
        except Exception as error:
            raise SolutionStoreError(
                f"{what} failed: {_describe(error)}", location=self.location
            ) from error

    # -- the cascade's side ----------------------------------------------------------------

    async def search(
        self, query: str, *, namespace: str = "default", k: int = 1, threshold: float = 0.0
    ) -> list[Demonstration]:
        """Up to ``k`` records in ``namespace`` whose query has cosine similarity ≥ ``threshold``
        with ``query``, most similar first."""
        if k < 1:
            return []
        (vector,) = await self.embedder.embed([query])
        return await asyncio.to_thread(self._search_vector, vector, namespace, k, threshold)

    def _search_vector(
        self, vector: list[float], namespace: str, k: int, threshold: float
    ) -> list[Demonstration]:
        collection = self._open(namespace, create=False)
        if collection is None:
            return []
        result = self._call(
            "search",
            lambda c: c.query(
                query_embeddings=[vector],
                n_results=k,
                include=["metadatas", "documents", "distances"],
            ),
            collection,
        )
        found = []
        for rid, doc, meta, distance in zip(
            result["ids"][0],
            result["documents"][0],
            result["metadatas"][0],
            result["distances"][0],
            strict=True,
        ):
            # cosine space: distance = 1 - cosine similarity. Rounded before the comparison, so
            # passing a reported similarity back as the threshold includes that record.
            similarity = round(1.0 - float(distance), 6)
            if similarity >= threshold:
                found.append(
                    Demonstration(
                        id=rid,
                        query=truncate(doc, self.max_query_chars),
                        solution=truncate(str(meta.get("solution", "")), self.max_solution_chars),
                        similarity=similarity,
                        model=meta.get("model"),
                    )
                )
        return found

    async def record(self, record: SolutionRecord) -> SolutionRecord | None:
        """Store a verified solution (masked, size-capped). Same query + namespace → update.

        Returns what was stored, or ``None`` if it was too large to keep.
        """
        record = record.model_copy(
            update={
                "query": mask_secrets(record.query),
                "solution": mask_secrets(record.solution),
                "code": mask_secrets(record.code) if record.code else None,
                "judge_reason": mask_secrets(record.judge_reason) if record.judge_reason else None,
            }
        )
        code = record.code or ""
        size = len(record.solution) + (0 if code in record.solution else len(code))
        if size > self.max_solution_chars:
            log.warning(
                "solutions.too_large",
                id=record.id,
                chars=size,
                max_chars=self.max_solution_chars,
            )
            return None
        if len(record.query) > self.max_query_chars:
            log.warning(
                "solutions.query_too_large",
                id=record.id,
                chars=len(record.query),
                max_chars=self.max_query_chars,
            )
            return None
        (vector,) = await self.embedder.embed([record.query])
        return await asyncio.to_thread(self._upsert, record, vector)

    def _upsert(self, record: SolutionRecord, vector: list[float]) -> SolutionRecord:
        collection = self._open(record.namespace)
        existing = self._get_from(collection, record.id)
        if existing is not None:  # keep what the earlier record earned
            record = record.model_copy(
                update={
                    "created_at": existing.created_at,
                    "times_retrieved": existing.times_retrieved,
                    "successes_after_retrieval": existing.successes_after_retrieval,
                    "updated_at": time.time(),
                }
            )
        self._call(
            "record",
            lambda c: c.upsert(
                ids=[record.id],
                embeddings=[vector],
                documents=[record.query],
                metadatas=[_to_metadata(record)],
            ),
            collection,
        )
        return record

    async def mark_used(
        self, ids: Sequence[str], *, namespace: str = "default", succeeded: bool
    ) -> None:
        """Count a retrieval of each record, and a success if the query it guided was accepted."""
        if ids:
            await asyncio.to_thread(self._mark_used, list(ids), namespace, succeeded)

    def _mark_used(self, ids: list[str], namespace: str, succeeded: bool) -> None:
        # Read-modify-write: concurrent writers may lose an increment (counters are statistics,
        # records themselves are never lost).
        collection = self._open(namespace, create=False)
        if collection is None:
            return
        got = self._call(
            "update counters", lambda c: c.get(ids=ids, include=["metadatas"]), collection
        )
        metadatas = []
        for meta in got["metadatas"]:
            meta = dict(meta)
            meta["times_retrieved"] = int(meta.get("times_retrieved", 0)) + 1
            if succeeded:
                meta["successes_after_retrieval"] = (
                    int(meta.get("successes_after_retrieval", 0)) + 1
                )
            metadatas.append(meta)
        if got["ids"]:
            self._call(
                "update counters",
                lambda c: c.update(ids=got["ids"], metadatas=metadatas),
                collection,
            )

    # -- administration (sync: CLI and scripts) ---------------------------------------------

    def _get_from(self, collection: Any, id: str) -> SolutionRecord | None:
        got = self._call(
            "get", lambda c: c.get(ids=[id], include=["metadatas", "documents"]), collection
        )
        if not got["ids"]:
            return None
        return _from_chroma(got["ids"][0], got["documents"][0], got["metadatas"][0])

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

    def _finish_interrupted_swap(self, client: Any) -> None:
        """A reindex killed mid-swap leaves a retired collection behind: renamed back if its
        namespace has no live one (the new one was not swapped in yet), else dropped."""
        prefix = f"{self.collection_name}{_RETIRED}--"
        names = {c.name for c in client.list_collections()}
        for retired in sorted(n for n in names if n.startswith(prefix)):
            live = f"{self.collection_name}{retired.removeprefix(self.collection_name + _RETIRED)}"
            if live in names:
                client.delete_collection(retired)
            else:
                _collection(client, retired).modify(name=live)
                log.warning("solutions.reindex_recovered", collection=live)

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


def _collection(client: Any, name: str) -> Any:
    """An existing collection by name, for renaming (its vectors always come from us)."""
    return client.get_collection(name, embedding_function=_ChromaAdapter(None))


def _embed_now(embedder: Embedder, texts: list[str]) -> list[list[float]]:
    """Embed synchronously, from inside a running event loop or not."""
    embed_sync = getattr(embedder, "embed_sync", None)
    if callable(embed_sync):
        return list(embed_sync(texts))
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, embedder.embed(texts)).result()


def _to_metadata(record: SolutionRecord) -> dict[str, Any]:
    data = record.model_dump(exclude={"id", "query"})
    return {key: value for key, value in data.items() if value is not None}  # Chroma: no None


def _from_chroma(rid: str, document: str, metadata: dict[str, Any] | None) -> SolutionRecord:
    meta = dict(metadata or {})
    known = set(SolutionRecord.model_fields) - {"id", "query"}
    return SolutionRecord(id=rid, query=document, **{k: v for k, v in meta.items() if k in known})


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


def _parse_url(location: str) -> tuple[str, int, bool] | None:
    if "://" not in location:
        return None
    parts = urlsplit(location)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError(
            f"expected a directory or http(s)://host:port, got {location!r}", where="solution store"
        )
    return (
        parts.hostname,
        parts.port or (443 if parts.scheme == "https" else 8000),
        parts.scheme == "https",
    )


def _describe(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {text[:300]}"


class _ChromaAdapter:
    """Our embedder, shaped as the Chroma embedding function the collection requires.

    We always pass vectors explicitly; this only exists so Chroma never falls back to its own
    default (which downloads an ONNX model).
    """

    def __init__(self, embedder: Embedder | None) -> None:
        self._embedder = embedder

    def __call__(self, input: Sequence[str]) -> list[list[float]]:
        if self._embedder is None:
            raise SolutionStoreError(
                "this collection's vectors come from ecocascade; open it with SolutionStore",
                location="chroma",
            )
        return _embed_now(self._embedder, list(input))

    def embed_query(self, input: Sequence[str]) -> list[list[float]]:
        return self(input)

    @staticmethod
    def name() -> str:
        return "ecocascade"

    def is_legacy(self) -> bool:
        return False

    def default_space(self) -> str:
        return "cosine"

    def supported_spaces(self) -> list[str]:
        return ["cosine"]

    def get_config(self) -> dict[str, Any]:
        return {}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> _ChromaAdapter:
        # Chroma rebuilds this from the persisted config when a collection is opened by name;
        # vectors always come from SolutionStore, so the rebuilt one never embeds.
        return _ChromaAdapter(None)

    def validate_config(self, config: dict[str, Any]) -> None:
        return None

    def validate_config_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        return None
