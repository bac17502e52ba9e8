"""Oversized queries: refused by the cascade over the hard cap, kept out of the store and the
cache over the stored-query cap, and cut when an old store hands one back as a demonstration."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from ecocascade import Cascade, ContainsJudge, Price, Tier
from ecocascade.cache.cache import ResponseCache
from ecocascade.controller.demos import DemoSettings
from ecocascade.exceptions import ConfigError
from ecocascade.store.chroma import SolutionStore
from ecocascade.store.records import SolutionRecord, record_id
from ecocascade.testing import FakeLLMServer, Reply
from ecocascade.text import MAX_QUERY_CHARS, MAX_STORED_QUERY_CHARS, truncate


class WordHashEmbedder:
    """A real (tiny) embedder: words hashed into 64 dimensions."""

    name = "test/hashed-words-64"

    def embed_sync(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = []
        for text in texts:
            vector = [0.0] * 64
            for word in re.findall(r"\w+", text.lower()[:5000]):
                vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % 64] += 1.0
            norm = math.sqrt(sum(x * x for x in vector)) or 1.0
            vectors.append([x / norm for x in vector])
        return vectors

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return self.embed_sync(texts)


def _tier(server: FakeLLMServer) -> Tier:
    return Tier("openai/small", api_base=server.api_base, price=Price(1.0, 2.0))


def _record(query: str, solution: str = "Paris") -> SolutionRecord:
    return SolutionRecord(
        id=record_id(query, "default"), namespace="default", query=query, solution=solution
    )


def test_the_documented_defaults() -> None:
    """A query may be 100,000 characters; a stored or demonstrated one 20,000."""
    assert (MAX_QUERY_CHARS, MAX_STORED_QUERY_CHARS) == (100_000, 20_000)


def test_truncate_keeps_the_head_and_says_how_much_was_cut() -> None:
    """Text over the limit keeps its first ``limit`` characters and a marker; shorter is kept."""
    assert truncate("abcdef", 10) == "abcdef"
    assert truncate("abcdefghij" * 3, 10) == "abcdefghij… [20 characters cut]"


async def test_a_query_over_the_hard_cap_is_a_config_error(server: FakeLLMServer) -> None:
    """A 10 MB query is refused before any model is called, naming the limit."""
    server.always("small", Reply("Paris"))
    cascade = Cascade([_tier(server)], ContainsJudge("Paris"))
    with pytest.raises(ConfigError, match=r"max_query_chars.*100000|100,000"):
        await cascade.run("x" * 10_000_000)
    assert server.requests_for("small") == []


async def test_the_hard_cap_is_configurable(server: FakeLLMServer) -> None:
    """``max_query_chars`` moves the hard cap; a query at the cap runs."""
    server.always("small", Reply("Paris"))
    cascade = Cascade([_tier(server)], ContainsJudge("Paris"), max_query_chars=50)
    assert (await cascade.run("q" * 50)).success
    with pytest.raises(ConfigError, match="max_query_chars"):
        await cascade.run("q" * 51)
    with pytest.raises(ConfigError, match="max_query_chars"):
        Cascade([_tier(server)], ContainsJudge("Paris"), max_query_chars=0)


async def test_the_store_does_not_record_an_oversized_query(tmp_path: Path) -> None:
    """A verified solution to a query over the stored-query cap is not recorded."""
    store = SolutionStore(tmp_path / "db", embedder=WordHashEmbedder())
    assert await store.record(_record("capital " * 5000)) is None  # 40,000 characters
    assert await store.record(_record("capital of France?")) is not None
    assert store.count() == 1


async def test_an_old_oversized_record_is_cut_as_a_demonstration(
    tmp_path: Path, server: FakeLLMServer
) -> None:
    """A store written before the cap (here: with a raised cap) holds a 10 MB query: retrieved
    as a demonstration it is cut to the cap, so the prompt stays small."""
    huge = "What is the capital of France? " + "padding " * 1_250_000
    old = SolutionStore(tmp_path / "db", embedder=WordHashEmbedder(), max_query_chars=10**8)
    assert await old.record(_record(huge)) is not None
    store = SolutionStore(tmp_path / "db", embedder=WordHashEmbedder())
    (demo,) = await store.search("What is the capital of France?", threshold=0.0)
    assert demo.query == truncate(huge, MAX_STORED_QUERY_CHARS)
    server.always("small", Reply("Paris"))
    cascade = Cascade(
        [_tier(server)], ContainsJudge("Paris"), store=store, demos=DemoSettings(threshold=0.0)
    )
    result = await cascade.run("What is the capital of France?")
    assert result.success and len(result.demonstrations) == 1
    (request,) = server.requests_for("small")
    prompt = "".join(str(m["content"]) for m in request.body["messages"])
    assert len(prompt) < MAX_STORED_QUERY_CHARS + 1_000


async def test_the_cache_does_not_keep_an_oversized_query(tmp_path: Path) -> None:
    """An answer to a query over the stored-query cap is not cached (and so never served)."""
    cache = ResponseCache(str(tmp_path / "cache.sqlite3"))
    query = "capital " * 5000
    try:
        entry = await cache.store(
            query, namespace="default", fingerprint="f", answer="Paris", model="m", tier=0
        )
        hit, _ = await cache.lookup(query, namespace="default", fingerprint="f")
        stats = await cache.stats()
    finally:
        await cache.close()
    assert entry is None and hit is None
    assert stats.entries == 0
