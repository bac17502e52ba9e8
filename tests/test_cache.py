"""The response cache over real parts: SQLite files, all-MiniLM-L6-v2 and LiteLLM calls to the
scripted loopback server (Redis has its own tests in test_cache_redis.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from ecocascade import (
    Cascade,
    ContainsJudge,
    DemoSettings,
    LLMJudge,
    Price,
    RetryPolicy,
    SentenceTransformerEmbedder,
    Tier,
)
from ecocascade.cache import CacheEntry, ResponseCache
from ecocascade.cache.align import embedding_text
from ecocascade.cache.guards import guard_mismatch, is_time_sensitive
from ecocascade.cache.sqlite_backend import SQLiteBackend
from ecocascade.cli import main
from ecocascade.testing import FakeLLMServer, Reply

FAST = RetryPolicy(max_retries=0, base_delay_s=0.01)
CHEAP = Price(input_per_mtok=1.0, output_per_mtok=2.0)
QUESTION = "What is the capital of France?"
# Measured with all-MiniLM-L6-v2: cosine 0.9461, and the verifier finds nothing to tell them apart
# ("tell me" only asks for the answer).
PARAPHRASE = "Tell me the capital of France."
PARAPHRASE_SIMILARITY = 0.9461
EMBEDDER = SentenceTransformerEmbedder()  # the model is loaded once per process, on first use


def similarity(a: str, b: str) -> float:
    """Cosine of what the cache embeds for ``a`` and ``b`` (number words as digits)."""
    va, vb = EMBEDDER.embed_sync([embedding_text(a), embedding_text(b)])
    return sum(x * y for x, y in zip(va, vb, strict=True))


def small(server: FakeLLMServer, **params: Any) -> Tier:
    return Tier("openai/small", api_base=server.api_base, price=CHEAP, retry=FAST, params=params)


def large(server: FakeLLMServer) -> Tier:
    return Tier("openai/large", api_base=server.api_base, price=CHEAP, retry=FAST)


def paris_cascade(server: FakeLLMServer, cache: ResponseCache, **kwargs: Any) -> Cascade:
    return Cascade([small(server)], ContainsJudge("Paris"), cache=cache, **kwargs)


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@pytest.fixture
def cache_path(tmp_path: Path) -> Path:
    return tmp_path / "cache.sqlite3"


@pytest.fixture
async def make_cache(cache_path: Path) -> AsyncIterator[Callable[..., ResponseCache]]:
    """ResponseCaches on this test's SQLite file (unless given another), closed afterwards."""
    made: list[ResponseCache] = []

    def make(location: str | Path = cache_path, **kwargs: Any) -> ResponseCache:
        kwargs.setdefault("embedder", EMBEDDER)
        made.append(ResponseCache(location, **kwargs))
        return made[-1]

    yield make
    for cache in made:
        with contextlib.suppress(Exception):  # a deliberately broken cache has nothing to close
            await cache.close()


def invoke(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


# -- exact hits through the cascade ---------------------------------------------------------


@pytest.mark.parametrize(
    "repeat",
    [QUESTION, "  What is the capital of \t  France?\n", "What is the capital of France?"],
    ids=["same", "whitespace", "nfc"],
)
async def test_a_repeated_query_is_served_from_the_cache_for_free_without_calling_a_model(
    server: FakeLLMServer, make_cache: Callable[..., ResponseCache], repeat: str
) -> None:
    server.script("small", Reply("Paris", prompt_tokens=20, completion_tokens=2))
    cascade = paris_cascade(server, make_cache())
    first = await cascade.run(QUESTION)
    assert first.stop_reason == "accepted" and first.cost_usd and first.cost_usd > 0

    with capture_logs() as events:
        again = await cascade.run(repeat)

    assert again.cache_hit and again.cache is not None and again.cache.kind == "exact"
    assert again.stop_reason == "cached" and again.success
    assert again.cost_usd == 0.0 and again.attempts == ()
    assert (again.answer, again.model, again.tier) == ("Paris", "openai/small", 0)
    assert again.cache.cached_query == QUESTION
    assert len(server.requests) == 1
    hits = [e for e in events if e["event"] == "cache.hit"]
    assert len(hits) == 1 and hits[0]["kind"] == "exact" and hits[0]["model"] == "openai/small"
    assert hits[0]["log_level"] == "info"
    assert not any(e["event"].startswith("cascade.") for e in events)


@pytest.mark.parametrize(
    ("cached", "query"),
    [
        ("Compute 5!", "Compute 5"),
        ("What is the capital of France?", "What is the capital of France"),
        ("Is it a US issue?", "Is it a us issue?"),
        ("Who is Bill Gates?", "Who is bill gates?"),
        ("WHAT IS NaN?", "what is nan?"),
        ("Apple stock split", "apple stock split"),
    ],
)
async def test_case_and_punctuation_are_meaning_so_they_get_separate_exact_entries(
    make_cache: Callable[..., ResponseCache], cached: str, query: str
) -> None:
    cache = make_cache()
    await cache.store(cached, namespace="n", fingerprint="fp", answer="A1", model="m", tier=0)
    await cache.store(query, namespace="n", fingerprint="fp", answer="A2", model="m", tier=0)
    one, _ = await cache.lookup(cached, namespace="n", fingerprint="fp")
    two, _ = await cache.lookup(query, namespace="n", fingerprint="fp")
    assert one is not None and two is not None
    assert (one.answer, two.answer) == ("A1", "A2")
    assert cache.key(cached, "n", "fp") != cache.key(query, "n", "fp")


async def test_twenty_case_only_variants_never_get_each_others_answers(
    make_cache: Callable[..., ResponseCache],
) -> None:
    cache = make_cache()
    base = "what is the capital of france"
    one_upper = [base[:i] + base[i].upper() + base[i + 1 :] for i, c in enumerate(base) if c != " "]
    variants = [base, base.upper(), base.title(), *one_upper[:17]]
    assert len(set(variants)) == 20
    for i, v in enumerate(variants):
        await cache.store(v, namespace="n", fingerprint="fp", answer=str(i), model=None, tier=0)
    for i, v in enumerate(variants):
        hit, _ = await cache.lookup(v, namespace="n", fingerprint="fp")
        assert hit is not None and hit.answer == str(i) and hit.kind == "exact"


async def test_unicode_composition_and_whitespace_do_not_change_the_exact_key(
    make_cache: Callable[..., ResponseCache],
) -> None:
    cache = make_cache()
    composed, decomposed = "Où est le café ?", "Ou\u0300 est le cafe\u0301 ?"
    assert composed != decomposed
    await cache.store(composed, namespace="n", fingerprint="fp", answer="A", model=None, tier=0)
    hit, _ = await cache.lookup(f"  {decomposed}\n", namespace="n", fingerprint="fp")
    assert hit is not None and hit.kind == "exact" and hit.answer == "A"


async def test_an_unresolved_query_is_not_cached_and_the_next_run_asks_the_models_again(
    server: FakeLLMServer, make_cache: Callable[..., ResponseCache]
) -> None:
    server.always("small", "Lyon")
    server.always("large", "Marseille")
    cache = make_cache()
    cascade = Cascade([small(server), large(server)], ContainsJudge("Paris"), cache=cache)

    first = await cascade.run(QUESTION)
    assert first.stop_reason == "exhausted" and not first.cache_hit
    assert (await cache.stats()).entries == 0
    second = await cascade.run(QUESTION)
    assert not second.cache_hit and len(second.attempts) == 2
    assert len(server.requests) == 4


async def test_use_cache_false_neither_reads_nor_writes_the_cache(
    server: FakeLLMServer, make_cache: Callable[..., ResponseCache]
) -> None:
    server.always("small", "Paris")
    cache = make_cache()
    cascade = paris_cascade(server, cache)

    bypassed = await cascade.run(QUESTION, use_cache=False)
    assert bypassed.stop_reason == "accepted" and (await cache.stats()).entries == 0
    await cascade.run(QUESTION)  # now it is cached …
    assert (await cache.stats()).entries == 1
    again = await cascade.run(QUESTION, use_cache=False)  # … and still not read
    assert not again.cache_hit and again.stop_reason == "accepted"
    assert len(server.requests) == 3
    assert (await cache.stats()).hits == 0


# -- TTLs -------------------------------------------------------------------------------------


async def test_an_entry_is_served_until_its_ttl_and_never_after(
    server: FakeLLMServer, make_cache: Callable[..., ResponseCache]
) -> None:
    server.always("small", "Paris")
    cache = make_cache(ttl_s=0.3)
    cascade = paris_cascade(server, cache)
    await cascade.run(QUESTION)
    assert (await cascade.run(QUESTION)).cache_hit

    async def expired() -> bool:
        hit, _ = await cache.lookup(QUESTION, namespace="default", fingerprint=cascade.fingerprint)
        return hit is None

    await eventually(expired)
    after = await cascade.run(QUESTION)
    assert not after.cache_hit and after.stop_reason == "accepted"
    assert len(server.requests) == 2


async def test_a_namespace_ttl_applies_only_to_that_namespace(
    server: FakeLLMServer, make_cache: Callable[..., ResponseCache]
) -> None:
    server.always("small", "Paris")
    cache = make_cache(namespace_ttl_s={"short": 0.3})
    short = paris_cascade(server, cache, demos=DemoSettings(namespace="short"))
    default = paris_cascade(server, cache)
    await short.run(QUESTION)
    await default.run(QUESTION)
    assert (await cache.stats()).namespaces == {"short": 1, "default": 1}

    async def short_expired() -> bool:
        return (await cache.stats()).namespaces.get("short") is None

    await eventually(short_expired)
    assert not (await short.run(QUESTION)).cache_hit
    assert (await default.run(QUESTION)).cache_hit


@pytest.mark.parametrize(
    ("query", "override", "short_ttl"),
    [
        ("What's the weather in Paris today?", None, True),
        (QUESTION, True, True),  # --time-sensitive
        ("What's the weather in Paris today?", False, False),  # --not-time-sensitive
    ],
    ids=["heuristic", "forced-on", "forced-off"],
)
async def test_a_time_sensitive_answer_is_kept_at_most_time_sensitive_ttl_s(
    server: FakeLLMServer,
    make_cache: Callable[..., ResponseCache],
    query: str,
    override: bool | None,
    short_ttl: bool,
) -> None:
    server.always("small", "Sunny in Paris")
    cache = make_cache(ttl_s=86_400.0, time_sensitive_ttl_s=60.0)
    cascade = paris_cascade(server, cache)
    with capture_logs() as events:
        await cascade.run(query, time_sensitive=override)

    key = cache.key(query, "default", cascade.fingerprint)
    entry = await cache.backend.get(key)
    assert entry is not None
    ttl = entry.expires_at - entry.created_at
    assert ttl == pytest.approx(60.0 if short_ttl else 86_400.0)
    stored = [e for e in events if e["event"] == "cache.stored"]
    assert [e["ttl_s"] for e in stored] == [60 if short_ttl else 86_400]


# -- fingerprints -----------------------------------------------------------------------------


def _variants(server: FakeLLMServer) -> dict[str, dict[str, Any]]:
    return {
        "params": {"tiers": [small(server, temperature=0.7)]},
        "judge": {"judge": ContainsJudge("France")},
        "system-prompt": {"system_prompt": "Answer in one word."},
        "ladder": {"tiers": [small(server), large(server)]},
    }


@pytest.mark.parametrize("change", ["params", "judge", "system-prompt", "ladder"])
async def test_changing_what_shapes_the_answer_changes_the_fingerprint_and_misses(
    server: FakeLLMServer, make_cache: Callable[..., ResponseCache], change: str
) -> None:
    server.always("small", "Paris, France")
    cache = make_cache()
    base: dict[str, Any] = {"tiers": [small(server)], "judge": ContainsJudge("Paris")}
    original = Cascade(base["tiers"], base["judge"], cache=cache)
    await original.run(QUESTION)
    same = Cascade([small(server)], ContainsJudge("Paris"), cache=make_cache())
    assert same.fingerprint == original.fingerprint and (await same.run(QUESTION)).cache_hit

    changed = {**base, **_variants(server)[change]}
    variant = Cascade(changed.pop("tiers"), changed.pop("judge"), cache=make_cache(), **changed)
    assert variant.fingerprint != original.fingerprint
    result = await variant.run(QUESTION)
    assert not result.cache_hit and result.stop_reason == "accepted"
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (LLMJudge("openai/judge"), LLMJudge("openai/judge", prompt="Be strict. {query} {answer}")),
        (ContainsJudge("Paris"), ContainsJudge("Paris", case_sensitive=True)),
    ],
    ids=["llm-judge-prompt", "contains-case-sensitive"],
)
def test_a_differently_configured_judge_of_the_same_name_changes_the_fingerprint(
    before: Any, after: Any
) -> None:
    assert Cascade(["openai/x"], before).fingerprint != Cascade(["openai/x"], after).fingerprint


# -- semantic reuse -----------------------------------------------------------------------------


def test_the_paraphrase_pair_really_is_similar_enough_and_guard_clean() -> None:
    """Documents the pair the semantic tests rely on, as all-MiniLM-L6-v2 scores it."""
    assert similarity(QUESTION, PARAPHRASE) == pytest.approx(PARAPHRASE_SIMILARITY, abs=0.005)
    assert guard_mismatch(PARAPHRASE, QUESTION) is None
    assert not is_time_sensitive(QUESTION) and not is_time_sensitive(PARAPHRASE)


async def test_a_paraphrase_is_a_semantic_hit_in_an_opted_in_namespace(
    server: FakeLLMServer, make_cache: Callable[..., ResponseCache]
) -> None:
    server.always("small", "Paris")
    cascade = paris_cascade(server, make_cache(semantic_namespaces={"default"}))
    await cascade.run(QUESTION)
    with capture_logs() as events:
        result = await cascade.run(PARAPHRASE)

    assert result.cache_hit and result.cache is not None and result.cache.kind == "semantic"
    assert result.cache.similarity >= 0.75
    assert result.cache.similarity == pytest.approx(PARAPHRASE_SIMILARITY, abs=0.005)
    assert result.cache.cached_query == QUESTION and result.answer == "Paris"
    assert result.cost_usd == 0.0 and len(server.requests) == 1
    assert [e["kind"] for e in events if e["event"] == "cache.hit"] == ["semantic"]


async def test_a_refused_candidate_is_logged_as_cache_miss_with_the_verifiers_reason(
    server: FakeLLMServer, make_cache: Callable[..., ResponseCache]
) -> None:
    server.always("small", "Paris")
    cascade = paris_cascade(server, make_cache(semantic_namespaces={"default"}))
    await cascade.run("How do I copy photos from my camera to my laptop?")
    with capture_logs() as events:
        result = await cascade.run("How do I copy photos from my laptop to my camera?")

    assert not result.cache_hit and len(server.requests) == 2
    (miss,) = [e for e in events if e["event"] == "cache.miss"]
    assert miss["refused"].startswith("similar (") and "roles changed" in miss["refused"]


async def test_without_the_opt_in_a_paraphrase_is_a_miss(
    server: FakeLLMServer, make_cache: Callable[..., ResponseCache]
) -> None:
    server.always("small", "Paris")
    cache = make_cache(semantic_namespaces={"other"})
    cascade = paris_cascade(server, cache)
    await cascade.run(QUESTION)
    result = await cascade.run(PARAPHRASE)
    assert not result.cache_hit and len(server.requests) == 2
    assert await cache.backend.candidates("default", cascade.fingerprint) == []  # no vectors


# (cached query, new query, time_sensitive override, what the refusal must name).
# Similarities measured with all-MiniLM-L6-v2 are in the comments.
NEAR_MISSES = [
    ("What is the weather in Paris?", "What is the weather in London?", None, "time-sensitive"),
    ("What is the weather in Paris?", "What is the weather in London?", False,
     "words ['london'] vs ['paris']"),  # .729
    ("What is the capital of Austria?", "What is the capital of Australia?", None,
     "words ['australia'] vs ['austria']"),
    ("Can I deduct home office expenses?", "Can I not deduct home office expenses?", None,
     "negation differs"),  # .979
    ("Can I deduct home office expenses?", "Can't I deduct home office expenses?", None,
     "negation differs"),  # .973
    ("What is 15% of 200?", "What is 25% of 200?", None, "numbers differ"),  # .813
    ("Who was the president of France in 1990?", "Who was the president of France in 1995?",
     None, "numbers differ"),  # .875
    ("How many days are in 3 weeks?", "How many days are in four weeks?", None,
     "numbers differ: ['4'] vs ['3']"),
    ("What's the weather in Paris today?", "What is the weather in Paris today?", None,
     "time-sensitive"),  # .990
    (QUESTION, "What is the capital of France today?", None, "time-sensitive"),  # .942
    ("What is the price of bitcoin today?", "What is the price of bitcoin?", None,
     "time-sensitive"),  # .930
    # Reversals: the same words, so only order and roles tell them apart.
    ("Convert 10 USD to EUR", "Convert 10 EUR to USD", None, "roles changed"),  # .979
    ("Flights from Paris to London", "Flights from London to Paris", None, "roles changed"),
    ("Is a whale a mammal?", "Is a mammal a whale?", None, "order swapped"),
    ("Who did Brazil beat in the final?", "Who beat Brazil in the final?", None, "roles changed"),
    ("Which teams won the cup in 2011?", "Which teams have won the cup since 2011?", None,
     "roles changed: 2011 since→in"),
    ("Sort a list of numbers in ascending order", "Sort a list of numbers in descending order",
     None, "words ['descend'] vs ['ascend']"),
    ("List the planets of the solar system.", "List the planets of the solar system except Earth.",
     None, "only one says ['except']"),
    ("Give me a synonym for happy.", "Give me several synonyms for happy.", None,
     "only one says ['several']"),
]  # fmt: skip


@pytest.mark.parametrize("threshold", [0.75, 0.5], ids=["default-floor", "permissive"])
@pytest.mark.parametrize(("cached", "query", "time_sensitive", "reason"), NEAR_MISSES)
async def test_a_near_miss_gets_no_semantic_hit_and_the_refusal_says_why(
    make_cache: Callable[..., ResponseCache],
    cached: str,
    query: str,
    time_sensitive: bool | None,
    reason: str,
    threshold: float,
) -> None:
    cache = make_cache(semantic_namespaces={"default"}, semantic_threshold=threshold)
    await cache.store(
        cached, namespace="default", fingerprint="fp", answer="A", model="m", tier=0,
        time_sensitive=False,
    )  # fmt: skip
    hit, refused = await cache.lookup(
        query, namespace="default", fingerprint="fp", time_sensitive=time_sensitive
    )

    assert hit is None
    if reason == "time-sensitive":
        assert refused == "time-sensitive query: no semantic reuse"
    elif similarity(cached, query) >= threshold:
        assert refused is not None and refused.startswith("similar (")
        assert reason in refused
    else:
        assert refused is None  # not similar enough to be a candidate


@pytest.mark.parametrize(
    ("cached", "query"),
    [
        (
            "Is it safe to take ibuprofen with alcohol?",
            "Is it unsafe to take ibuprofen with alcohol?",
        ),
        ("Is it legal to record a phone call?", "Is it illegal to record a phone call?"),  # .978
        ("Is it possible to divide by zero?", "Is it impossible to divide by zero?"),  # .973
    ],
    ids=["unsafe", "illegal", "impossible"],
)
async def test_a_negating_prefix_is_not_a_semantic_hit(
    make_cache: Callable[..., ResponseCache], cached: str, query: str
) -> None:
    cache = make_cache(semantic_namespaces={"default"})
    await cache.store(cached, namespace="default", fingerprint="fp", answer="A", model=None, tier=0)
    hit, _ = await cache.lookup(query, namespace="default", fingerprint="fp")
    assert hit is None


@pytest.mark.parametrize(
    ("query", "cached", "expected"),
    [
        ("What is the weather in London?", "What is the weather in Paris?", "words"),
        ("Can I not deduct it?", "Can I deduct it?", "negation differs"),
        ("What is 25% of 200?", "What is 15% of 200?", "numbers differ"),
        ("Tell me the capital of France.", "What is the capital of France?", None),
        ("how do i reverse a list?", "How can I reverse a list?", None),
        ("capital of japan?", "What is the capital of Japan?", None),
        ("I'm curious: how tall is the Eiffel Tower?", "How tall is the Eiffel Tower?", None),
        ("What is forty-two divided by six?", "What is 42 divided by 6?", None),
    ],
)
def test_guard_mismatch_names_what_differs_or_lets_a_true_paraphrase_through(
    query: str, cached: str, expected: str | None
) -> None:
    mismatch = guard_mismatch(query, cached, similarity(query, cached))
    assert mismatch is None if expected is None else expected in (mismatch or "")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("What's the weather in Paris today?", True),
        ("What is the latest version of Python?", True),
        ("Who won last night?", True),
        ("What is the AAPL share price right now?", True),
        ("What is the capital of France?", False),
        ("How do I reverse a list in Python?", False),
        ("Who was the president of France in 1990?", False),
    ],
)
def test_is_time_sensitive_spots_answers_that_depend_on_when_they_are_asked(
    query: str, expected: bool
) -> None:
    assert is_time_sensitive(query) is expected


# -- invalidation and the cache commands ----------------------------------------------------


async def _fill(cache: ResponseCache, *items: tuple[str, str]) -> None:
    for query, namespace in items:
        await cache.store(
            query, namespace=namespace, fingerprint="fp", answer="A", model="m", tier=0
        )


async def test_invalidating_a_query_drops_only_its_entry(
    make_cache: Callable[..., ResponseCache],
) -> None:
    cache = make_cache()
    await _fill(cache, ("q1", "a"), ("q2", "a"), ("q1", "b"))
    assert await cache.invalidate(" q1\n", namespace="a", fingerprint="fp") == 1
    assert await cache.invalidate("q1", namespace="a", fingerprint="other") == 0
    assert (await cache.lookup("q1", namespace="a", fingerprint="fp"))[0] is None
    assert (await cache.lookup("q2", namespace="a", fingerprint="fp"))[0] is not None
    assert (await cache.lookup("q1", namespace="b", fingerprint="fp"))[0] is not None


async def test_invalidating_a_namespace_drops_only_that_namespace(
    make_cache: Callable[..., ResponseCache],
) -> None:
    cache = make_cache()
    await _fill(cache, ("q1", "a"), ("q2", "a"), ("q1", "b"))
    assert await cache.invalidate(namespace="a") == 2
    assert (await cache.stats()).namespaces == {"b": 1}
    assert await cache.invalidate() == 1
    assert (await cache.stats()).entries == 0


def test_the_cache_commands_report_stats_clear_a_namespace_and_purge_expired_entries(
    capsys: pytest.CaptureFixture[str], cache_path: Path
) -> None:
    async def setup() -> None:
        cache = ResponseCache(cache_path, namespace_ttl_s={"old": 0.05})
        await _fill(cache, ("q1", "a"), ("q2", "a"), ("q1", "b"), ("q1", "old"))
        await cache.lookup("q1", namespace="a", fingerprint="fp")
        await cache.lookup("q1", namespace="a", fingerprint="fp")
        deadline = time.monotonic() + 5
        while (await cache.stats()).expired == 0:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        await cache.close()

    asyncio.run(setup())
    loc = str(cache_path)
    code, out, _ = invoke(capsys, "cache", "stats", "--cache", loc, "--json")
    assert code == 0
    assert json.loads(out) == {
        "entries": 3,
        "expired": 1,
        "namespaces": {"a": 2, "b": 1},
        "hits": 2,
    }

    code, _, err = invoke(capsys, "cache", "purge-expired", "--cache", loc)
    assert code == 0 and "purged 1 expired entries" in err
    code, _, err = invoke(capsys, "cache", "clear", "--cache", loc, "--namespace", "a")
    assert code == 0 and "cleared 2 entries" in err
    code, out, _ = invoke(capsys, "cache", "stats", "--cache", loc, "--json")
    assert json.loads(out) == {"entries": 1, "expired": 0, "namespaces": {"b": 1}, "hits": 0}


# -- concurrency and failure ------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import asyncio, pathlib, sys, time
    from ecocascade.cache.base import CacheEntry
    from ecocascade.cache.sqlite_backend import SQLiteBackend

    path, prefix, go = sys.argv[1:4]
    print("ready", flush=True)
    while not pathlib.Path(go).exists():
        time.sleep(0.002)

    async def main():
        backend = SQLiteBackend(path)
        expires = time.time() + 600
        await asyncio.gather(*(
            backend.put(CacheEntry(f"{prefix}-{i}", "ns", "fp", f"q {prefix} {i}", "a", None, 0,
                                   expires, vector=[0.5, 0.5]))
            for i in range(100)
        ))
        await backend.close()

    asyncio.run(main())
    """
)


async def test_concurrent_writers_in_three_processes_lose_nothing_and_never_see_a_lock_error(
    tmp_path: Path, cache_path: Path
) -> None:
    go = tmp_path / "go"
    writers = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", WRITER, str(cache_path), prefix, str(go),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        for prefix in ("p1", "p2")
    ]  # fmt: skip
    try:
        for writer in writers:
            assert writer.stdout is not None
            assert await asyncio.wait_for(writer.stdout.readline(), 30) == b"ready\n"
        go.touch()  # all start writing to the fresh file at once
        backend = SQLiteBackend(cache_path)
        expires = time.time() + 600
        await asyncio.gather(
            *(
                backend.put(CacheEntry(f"me-{i}", "ns", "fp", f"q me {i}", "a", None, 0, expires))
                for i in range(50)
            )
        )
        outcomes = [await asyncio.wait_for(w.communicate(), 30) for w in writers]
    finally:
        for writer in writers:
            if writer.returncode is None:
                writer.kill()
                await writer.wait()
    for writer, (_, err) in zip(writers, outcomes, strict=True):
        assert writer.returncode == 0, err.decode()
        assert b"locked" not in err
    stats = await backend.stats()
    assert (stats.entries, stats.namespaces) == (250, {"ns": 250})
    assert len(await backend.candidates("ns", "fp")) == 200  # the writers' vectors survived
    await backend.close()


@pytest.mark.parametrize("broken", ["a-directory", "under-a-file", "corrupt-file"])
async def test_a_broken_cache_never_fails_a_query_and_warns_cache_unavailable(
    server: FakeLLMServer, tmp_path: Path, make_cache: Callable[..., ResponseCache], broken: str
) -> None:
    if broken == "a-directory":
        location = tmp_path / "cache-dir"
        location.mkdir()
    elif broken == "under-a-file":
        (tmp_path / "plain-file").write_text("not a directory")
        location = tmp_path / "plain-file" / "cache.sqlite3"
    else:
        location = tmp_path / "corrupt.sqlite3"
        location.write_bytes(b"this is not a SQLite database, just junk \x00\xff" * 200)
    server.always("small", "Paris")
    cascade = paris_cascade(server, make_cache(location))

    with capture_logs() as events:
        result = await cascade.run(QUESTION)

    assert result.success and result.answer == "Paris" and not result.cache_hit
    warnings = [e for e in events if e["event"] == "cache.unavailable"]
    assert [(w["during"], w["log_level"]) for w in warnings] == [
        ("lookup", "warning"),
        ("store", "warning"),
    ]
    assert all(w["error"] for w in warnings)


# -- the command line ---------------------------------------------------------------------------


def _run_argv(server: FakeLLMServer, *extra: str) -> list[str]:
    return [
        "run", "-t", "openai/small", "--api-base", server.api_base, "-j", "contains:Paris",
        "--no-store", "--json", *extra, QUESTION,
    ]  # fmt: skip


def test_the_second_identical_run_is_a_free_cache_hit_and_no_cache_bypasses_it(
    capsys: pytest.CaptureFixture[str], server: FakeLLMServer
) -> None:
    server.always("small", "Paris")
    first = json.loads(invoke(capsys, *_run_argv(server))[1])
    code, out, _ = invoke(capsys, *_run_argv(server))
    second = json.loads(out)
    assert code == 0 and not first["cache_hit"]
    assert second["cache_hit"] is True and second["cost_usd"] == 0.0
    assert second["stop_reason"] == "cached" and second["answer"] == "Paris"
    assert second["cache"]["kind"] == "exact" and len(server.requests) == 1

    code, out, _ = invoke(capsys, *_run_argv(server, "--no-cache"))
    assert code == 0 and json.loads(out)["cache_hit"] is False and len(server.requests) == 2


def test_two_processes_sharing_one_sqlite_file_share_the_cache(
    server: FakeLLMServer, cache_path: Path
) -> None:
    server.always("small", "Paris")
    argv = [sys.executable, "-m", "ecocascade", *_run_argv(server, "--cache", str(cache_path))]
    outputs = []
    for _ in range(2):
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        outputs.append(json.loads(proc.stdout))
    assert [o["cache_hit"] for o in outputs] == [False, True]
    assert outputs[1]["answer"] == "Paris" and outputs[1]["cost_usd"] == 0.0
    assert len(server.requests) == 1


def test_a_different_demonstration_template_changes_the_fingerprint() -> None:
    from ecocascade import ChatSolver, DemoTemplate

    custom = ChatSolver(DemoTemplate(text="Examples:\n{examples}\nQ: {query}"))
    assert (
        Cascade(["openai/x"], ContainsJudge("x")).fingerprint
        != Cascade(["openai/x"], ContainsJudge("x"), solver=custom).fingerprint
    )


def test_a_possessive_and_into_do_not_block_a_true_paraphrase() -> None:
    assert guard_mismatch("What is France's capital?", "What is the capital of France?") is None
    assert guard_mismatch("Translate it into Spanish", "Translate it to Spanish") is None


async def test_closing_the_sqlite_backend_closes_every_threads_connection(tmp_path: Path) -> None:
    from ecocascade.cache.sqlite_backend import SQLiteBackend

    backend = SQLiteBackend(tmp_path / "c.sqlite3")
    cache = ResponseCache(backend)
    await cache.store("q", namespace="n", fingerprint="f", answer="a", model=None, tier=0)
    assert (await cache.lookup("q", namespace="n", fingerprint="f"))[0] is not None
    await cache.close()
    assert not [f for f in _open_files() if "c.sqlite3" in f]


def _open_files() -> list[str]:
    files = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is already gone
            files.append(os.readlink(f"/proc/self/fd/{fd}"))
    return files
