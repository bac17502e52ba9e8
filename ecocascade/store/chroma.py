"""The solution store on Chroma: embedded (a directory) or a Chroma server (a URL), one code path.

Records are keyed by :func:`~ecocascade.store.records.record_id`, embedded by an
:class:`~ecocascade.types.Embedder` we control (Chroma's own default embedding function is never
used: it downloads a model), and searched by cosine similarity within a namespace.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog

from ecocascade.exceptions import ConfigError, SolutionStoreError
from ecocascade.store._chroma_common import (
    _RETIRED,
    _ChromaAdapter,
    _collection,
    _describe,
    _from_chroma,
    _to_metadata,
)
from ecocascade.store.admin import _StoreAdmin
from ecocascade.store.records import SolutionRecord
from ecocascade.text import MAX_STORED_QUERY_CHARS, mask_secrets, truncate
from ecocascade.types import Demonstration, Embedder

__all__ = ["DEFAULT_LOCATION", "SolutionStore"]

log = structlog.get_logger(__name__)

DEFAULT_LOCATION = "solutions_db"
COLLECTION = "ecocascade-solutions"
_COLLECTION_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,38}[a-zA-Z0-9]")


class SolutionStore(_StoreAdmin):
    """Verified query → solution pairs, retrievable by similarity.

    ``location`` is a directory for the embedded store (``solutions_db/`` by default) or an
    ``http(s)://host:port`` URL of a Chroma server (``chroma run --path DIR --port N``).
    ``max_solution_chars`` caps what one record may hold: larger solutions are not recorded;
    ``max_query_chars`` does the same for queries. A record stored before these caps (or under
    larger ones) is cut to them when :meth:`search` hands it out as a demonstration
    (:func:`~ecocascade.text.truncate`), so it can never blow up a prompt.

    This module is the runtime side a cascade uses (connect, search, record, mark_used); the
    administration (list, export/import, prune, stats, reindex) comes from
    :class:`~ecocascade.store.admin._StoreAdmin`.
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

    def _get_from(self, collection: Any, id: str) -> SolutionRecord | None:
        got = self._call(
            "get", lambda c: c.get(ids=[id], include=["metadatas", "documents"]), collection
        )
        if not got["ids"]:
            return None
        return _from_chroma(got["ids"][0], got["documents"][0], got["metadatas"][0])

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
