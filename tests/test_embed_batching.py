"""The embedding micro-batcher: concurrent embed calls share encoder calls, results unchanged."""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
from collections.abc import Sequence

import pytest

from ecocascade.exceptions import ConfigError
from ecocascade.store.embedders import BatchingEmbedder, default_embedder, embedder_from_spec


class CountingEmbedder:
    """A real (tiny) embedder — words hashed into 32 dimensions — that keeps its batch sizes."""

    name = "test/hashed-32"

    def __init__(self, fail_on: str | None = None) -> None:
        self.batches: list[int] = []
        self.fail_on = fail_on

    def embed_sync(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = []
        for text in texts:
            vector = [0.0] * 32
            for word in re.findall(r"\w+", text.lower()):
                vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % 32] += 1.0
            norm = math.sqrt(sum(x * x for x in vector)) or 1.0
            vectors.append([x / norm for x in vector])
        return vectors

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.batches.append(len(texts))
        await asyncio.sleep(0.01)  # an encoder takes time: calls arriving meanwhile queue up
        if self.fail_on is not None and any(self.fail_on in t for t in texts):
            raise RuntimeError("encoder failed")
        return self.embed_sync(texts)


TEXTS = [f"what is the weather in town number {i}" for i in range(20)]


async def test_concurrent_calls_share_encoder_calls_and_each_gets_its_own_vectors() -> None:
    inner = CountingEmbedder()
    batching = BatchingEmbedder(inner, window_ms=5)

    results = await asyncio.gather(*(batching.embed([t]) for t in TEXTS))

    assert [r[0] for r in results] == inner.embed_sync(TEXTS)
    assert sum(inner.batches) == 20 and len(inner.batches) <= 2
    assert batching.stats()["calls"] == 20


async def test_no_batch_is_larger_than_max_batch() -> None:
    inner = CountingEmbedder()
    batching = BatchingEmbedder(inner, window_ms=5, max_batch=8)

    results = await asyncio.gather(*(batching.embed([t, t + "!"]) for t in TEXTS))

    assert max(inner.batches) <= 8 and sum(inner.batches) == 40
    assert results[3] == inner.embed_sync([TEXTS[3], TEXTS[3] + "!"])


async def test_a_zero_window_passes_every_call_straight_through() -> None:
    inner = CountingEmbedder()
    batching = BatchingEmbedder(inner, window_ms=0)

    await asyncio.gather(*(batching.embed([t]) for t in TEXTS[:5]))

    assert inner.batches == [1, 1, 1, 1, 1]


async def test_a_failed_batch_fails_its_callers_and_the_next_batch_still_works() -> None:
    inner = CountingEmbedder(fail_on="poison")
    batching = BatchingEmbedder(inner, window_ms=5)

    outcomes = await asyncio.gather(
        batching.embed(["poison pill"]), batching.embed(["innocent"]), return_exceptions=True
    )

    assert [type(o) for o in outcomes] == [RuntimeError, RuntimeError]
    assert await batching.embed(["innocent"]) == inner.embed_sync(["innocent"])


def test_the_default_sentence_transformers_embedder_is_micro_batched_unless_told_not_to() -> None:
    default = default_embedder()
    assert isinstance(default, BatchingEmbedder) and default.window_s > 0
    assert default.name == "sentence-transformers/all-MiniLM-L6-v2"
    plain = embedder_from_spec("sentence-transformers+nobatch")
    assert isinstance(plain, BatchingEmbedder) and plain.window_s == 0
    with pytest.raises(ConfigError, match=r"\+nobatch"):
        embedder_from_spec("sentence-transformers+turbo")


async def test_a_query_is_encoded_once_across_two_instances_of_the_same_model() -> None:
    """The cache and the solution store each build their own default embedder; one request's
    query (cache lookup, demonstration search, record, cache put) still costs one encoder pass."""
    first, second = default_embedder(), default_embedder()  # the cache's, the store's
    query = "which tram goes to the castle, and how often does it run on sundays?"

    (a,) = await first.embed([query])
    (b,) = await second.embed([query])
    (c,) = await first.embed([query])

    assert a == b == c
    encoders = [first.inner, second.inner]
    assert [e.encoded for e in encoders] == [1, 0]  # type: ignore[attr-defined]
