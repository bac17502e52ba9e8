"""What the solution store's runtime (:mod:`ecocascade.store.chroma`) and its administration
(:mod:`ecocascade.store.admin`) share: record ↔ Chroma conversion, synchronous embedding, the
embedding-function adapter, and the names a reindex gives the collections it builds and retires."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Sequence
from typing import Any

from ecocascade.exceptions import SolutionStoreError
from ecocascade.store.records import SolutionRecord
from ecocascade.types import Embedder

# Collections a reindex builds and retires are named <collection><mark>--<namespace part>.
_BUILDING, _RETIRED = ".reindex-new", ".reindex-old"


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
