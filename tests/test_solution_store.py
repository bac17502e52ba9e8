"""The solution store on real parts: embedded Chroma in a temp dir, a `chroma run` server started
here, the real default embedder, and cascades talking to the scripted loopback LLM server."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from structlog.testing import capture_logs

from ecocascade import Cascade, ConfigError, ContainsJudge, RetryPolicy, Tier
from ecocascade.cli import main
from ecocascade.controller.demos import DemoSettings
from ecocascade.exceptions import SolutionStoreError
from ecocascade.store import SentenceTransformerEmbedder, SolutionRecord, SolutionStore, record_id
from ecocascade.testing import FakeLLMServer, Fault

FRANCE = "What is the capital of France?"
FRANCE_PARAPHRASE = "Which city is the capital of France?"
NO_RETRY = RetryPolicy(max_retries=0, base_delay_s=0.0)


# -- real parts ------------------------------------------------------------------------------


class HashingEmbedder:
    """A real (tiny) embedder of another vector space: words hashed into 64 dimensions."""

    name = "test/hashed-bag-of-words-64"

    def embed_sync(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = []
        for text in texts:
            vector = [0.0] * 64
            for word in re.findall(r"\w+", text.lower()):
                vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % 64] += 1.0
            norm = math.sqrt(sum(x * x for x in vector)) or 1.0
            vectors.append([x / norm for x in vector])
        return vectors

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return self.embed_sync(texts)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout_s}s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    """The real default embedder, loaded once for the module."""
    model = SentenceTransformerEmbedder()
    model.embed_sync(["warm up"])
    return model


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`chroma run` on a free loopback port, with its data in a temp dir; yields its URL."""
    root = tmp_path_factory.mktemp("chroma-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(Path(sys.executable).parent / "chroma"), "run", "--path", str(root / "db"),
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    with (root / "server.log").open("wb") as log_file:
        proc = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)

    def answers() -> bool:
        if proc.poll() is not None:
            log = (root / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"chroma run exited with {proc.returncode}:\n{log}")
        try:
            with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    try:
        wait_until(answers, timeout_s=30, what=f"the Chroma server at {url}")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def make_store(
    request: pytest.FixtureRequest, tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> Callable[..., SolutionStore]:
    """Fresh, empty stores on the backend named by ``kind``: a new directory or collection."""

    def make(kind: str, **options: Any) -> SolutionStore:
        options.setdefault("embedder", embedder)
        if kind == "embedded":
            return SolutionStore(tmp_path / f"store-{uuid.uuid4().hex[:8]}", **options)
        url = request.getfixturevalue("chroma_server")
        return SolutionStore(url, collection=f"test-{uuid.uuid4().hex[:12]}", **options)

    return make


@pytest.fixture(params=["embedded", "server"])
def store(
    request: pytest.FixtureRequest, make_store: Callable[..., SolutionStore]
) -> SolutionStore:
    """An empty store, once embedded in a temp dir and once on the Chroma server."""
    return make_store(request.param)


@pytest.fixture
def embedded(make_store: Callable[..., SolutionStore]) -> SolutionStore:
    return make_store("embedded")


async def remember(
    store: SolutionStore,
    query: str,
    solution: str = "Paris",
    *,
    namespace: str = "default",
    **fields: Any,
) -> SolutionRecord:
    stored = await store.record(
        SolutionRecord(
            id=record_id(query, namespace),
            namespace=namespace,
            query=query,
            solution=solution,
            **fields,
        )
    )
    assert stored is not None
    return stored


def cascade(
    server: FakeLLMServer, store: SolutionStore | None, *, judge: str = "Paris", **demos: Any
) -> Cascade:
    tiers = [
        Tier("openai/small", api_base=server.api_base, retry=NO_RETRY),
        Tier("openai/large", api_base=server.api_base, retry=NO_RETRY),
    ]
    return Cascade(tiers, ContainsJudge(judge), store=store, demos=DemoSettings(**demos))


def prompt_text(server: FakeLLMServer, model: str, index: int = 0) -> str:
    """The prompt's text: demonstrations come as prior turns, the query last."""
    return "\n".join(str(m["content"]) for m in server.requests_for(model)[index].messages)


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


def run_python(code: str, *args: str) -> str:
    """Run ``code`` in a fresh interpreter (a separate process); its stdout."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


# Records [query, solution] pairs; with a go-file, says it is ready and waits for the go first.
WRITER = """
import asyncio, json, pathlib, sys, time
from ecocascade.store import SolutionRecord, SolutionStore, record_id
location, collection, ready, go, pairs = sys.argv[1:6]
store = SolutionStore(location, collection=collection)
store.embedder.embed_sync(["warm up"])
store.count()
if go != "-":
    pathlib.Path(ready).touch()
    while not pathlib.Path(go).exists():
        time.sleep(0.01)
async def write():
    for query, solution in json.loads(pairs):
        await store.record(SolutionRecord(
            id=record_id(query, "default"), namespace="default", query=query, solution=solution))
asyncio.run(write())
"""

# Prints what a search for a query finds, and the record with that query's id.
READER = """
import asyncio, json, sys
from ecocascade.store import SolutionStore, record_id
location, query = sys.argv[1:3]
store = SolutionStore(location)
found = asyncio.run(store.search(query, k=5, threshold=-1))
got = store.get(record_id(query, "default"))
print(json.dumps({"found": [[d.query, d.solution] for d in found],
                  "got": got.solution if got else None, "count": store.count()}))
"""


def record_at_once(location: str, collection: str, work: dict[str, Any], tmp_path: Path) -> None:
    """One writer process per entry of ``work``; all record together once all have loaded."""
    go = tmp_path / "go"
    logs = {who: tmp_path / f"{who}.log" for who in work}
    writers = []
    for who, pairs in work.items():
        with logs[who].open("w") as log:
            writers.append(subprocess.Popen(
                [sys.executable, "-c", WRITER, location, collection, str(tmp_path / who),
                 str(go), json.dumps(pairs)],
                stdout=log, stderr=subprocess.STDOUT,
            ))  # fmt: skip

    def ready() -> bool:
        for who, writer in zip(work, writers, strict=True):
            assert writer.poll() is None, logs[who].read_text()[-3000:]
        return all((tmp_path / who).exists() for who in work)

    try:
        wait_until(ready, timeout_s=90, what="both writers to load the embedder")
        go.touch()  # now both record at once
        for who, writer in zip(work, writers, strict=True):
            assert writer.wait(timeout=90) == 0, logs[who].read_text()[-3000:]
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.wait()


# -- recording only what a judge accepted ------------------------------------------------------


async def test_a_rejected_run_records_nothing(server: FakeLLMServer, store: SolutionStore) -> None:
    server.script("small", "Lyon")
    server.script("large", "Marseille")
    result = await cascade(server, store).run(FRANCE)

    assert not result.success and result.recorded_id is None
    assert store.count() == 0


async def test_a_run_where_every_tier_errored_records_nothing(
    server: FakeLLMServer, embedded: SolutionStore
) -> None:
    server.always("small", Fault.server_error(500))
    server.always("large", Fault.server_error(503))
    result = await cascade(server, embedded).run(FRANCE)

    assert [a.verdict for a in result.attempts] == ["error", "error"]
    assert result.recorded_id is None and embedded.count() == 0


async def test_an_accepted_run_records_who_solved_it_how_it_was_judged_and_the_run(
    server: FakeLLMServer, store: SolutionStore
) -> None:
    server.script("small", "Lyon")
    server.script("large", "Paris")
    result = await cascade(server, store, namespace="geo").run(FRANCE)

    assert result.recorded_id == record_id(FRANCE, "geo")
    assert store.count() == 1
    stored = store.get(result.recorded_id)
    assert stored is not None
    assert (stored.query, stored.solution, stored.namespace) == (FRANCE, "Paris", "geo")
    assert (stored.model, stored.tier) == ("openai/large", 1)
    assert (stored.judge, stored.judge_reason) == ("contains:Paris", "answer contains 'Paris'")
    assert stored.run_id == result.run_id
    assert (stored.times_retrieved, stored.successes_after_retrieval) == (0, 0)


# -- one record per query ----------------------------------------------------------------------


async def test_the_same_query_solved_again_updates_its_one_record_and_keeps_its_history(
    server: FakeLLMServer, store: SolutionStore
) -> None:
    server.script("small", "Paris", "It is Paris.")
    first = await cascade(server, store).run(FRANCE)
    before = store.get(record_id(FRANCE, "default"))
    assert before is not None
    # Differs only in case, spacing and the trailing "?": the same query, so the same record —
    # which this run also retrieved as its demonstration (the counters record that).
    second = await cascade(server, store).run("  what is the CAPITAL of   france ")

    assert second.recorded_id == first.recorded_id and store.count() == 1
    assert [d.id for d in second.demonstrations] == [first.recorded_id]
    after = store.get(record_id(FRANCE, "default"))
    assert after is not None
    assert after.solution == "It is Paris." and after.run_id == second.run_id
    assert after.created_at == before.created_at and after.updated_at > before.updated_at
    assert (after.times_retrieved, after.successes_after_retrieval) == (1, 1)


# -- choosing demonstrations -------------------------------------------------------------------


async def test_a_threshold_above_the_best_similarity_retrieves_nothing(
    store: SolutionStore,
) -> None:
    await remember(store, FRANCE)
    (best,) = await store.search(FRANCE_PARAPHRASE, threshold=-1.0)

    assert 0.6 < best.similarity < 0.99
    assert await store.search(FRANCE_PARAPHRASE, threshold=best.similarity + 0.001) == []
    assert await store.search(FRANCE_PARAPHRASE, threshold=best.similarity - 0.001) == [best]


async def test_a_threshold_equal_to_a_reported_similarity_includes_that_record(
    embedded: SolutionStore,
) -> None:
    await remember(embedded, FRANCE)
    probes = [
        "capital of France",
        "France capital city?",
        "Which city is the capital of France",
        "Tell me France capital",
        "What is the capital of Italy?",
        "capital city of Spain",
        "What is the capital of Germany?",
        "How tall is Everest?",
    ]
    excluded = []
    for probe in probes:
        (reported,) = await embedded.search(probe, threshold=-1.0)
        if await embedded.search(probe, threshold=reported.similarity) != [reported]:
            excluded.append((probe, reported.similarity))
    assert excluded == []


async def test_k_limits_how_many_are_retrieved_most_similar_first(store: SolutionStore) -> None:
    for query in [
        FRANCE,
        "What is the capital of Germany?",
        "How many legs does a spider have?",
        "What is the capital city of Italy?",
    ]:
        await remember(store, query)

    two = await store.search("What is the capital of Spain?", k=2, threshold=-1.0)
    every = await store.search("What is the capital of Spain?", k=10, threshold=-1.0)

    assert len(two) == 2 and len(every) == 4
    similarities = [d.similarity for d in every]
    assert similarities == sorted(similarities, reverse=True)
    assert two == every[:2]
    assert every[-1].query == "How many legs does a spider have?"
    assert await store.search(FRANCE, k=0, threshold=-1.0) == []


@pytest.mark.parametrize("settings", [{"k": 0}, {"retrieve": False}], ids=["k=0", "retrieve=False"])
async def test_with_retrieval_off_the_cascade_never_searches(
    server: FakeLLMServer, embedded: SolutionStore, settings: dict[str, Any]
) -> None:
    stored = await remember(embedded, FRANCE)
    server.script("small", "Paris")
    with capture_logs() as logs:
        result = await cascade(server, embedded, **settings).run(FRANCE_PARAPHRASE)

    assert result.success and result.demonstrations == ()
    assert events(logs, "demos.retrieved") == []
    assert prompt_text(server, "small") == FRANCE_PARAPHRASE
    again = embedded.get(stored.id)
    assert again is not None and again.times_retrieved == 0


@pytest.mark.parametrize(
    "settings",
    [{"threshold": 1.5}, {"threshold": -1.01}, {"threshold": math.nan}, {"k": -1},
     {"namespace": ""}],
    ids=["threshold=1.5", "threshold=-1.01", "threshold=nan", "k=-1", "empty-namespace"],
)  # fmt: skip
def test_invalid_demo_settings_are_config_errors(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"demos\."):
        DemoSettings(**settings)


# -- namespaces --------------------------------------------------------------------------------


async def test_a_record_in_one_namespace_is_never_retrieved_from_another(
    store: SolutionStore,
) -> None:
    await remember(store, FRANCE, namespace="a")

    assert await store.search(FRANCE, namespace="b", k=5, threshold=-1.0) == []
    assert [d.query for d in await store.search(FRANCE, namespace="a", threshold=-1.0)] == [FRANCE]


async def test_the_same_query_in_two_namespaces_is_two_records(store: SolutionStore) -> None:
    a = await remember(store, FRANCE, "Paris", namespace="a")
    b = await remember(store, FRANCE, "Paris, France", namespace="b")

    assert a.id != b.id and store.count() == 2
    assert {(r.namespace, r.solution) for r in store.iter_records()} == {
        ("a", "Paris"),
        ("b", "Paris, France"),
    }


# -- demonstrations in the prompt --------------------------------------------------------------


async def test_a_paraphrase_of_a_solved_query_gets_it_as_a_demonstration_in_tier_0s_prompt(
    server: FakeLLMServer, store: SolutionStore
) -> None:
    server.script("small", "Lyon", "Paris.")
    server.script("large", "Paris, on the Seine")
    solved = await cascade(server, store).run(FRANCE)
    assert solved.tier == 1

    guided = await cascade(server, store).run(FRANCE_PARAPHRASE)

    assert guided.success and guided.tier == 0
    # The demonstration is a prior exchange, right before the query.
    messages = server.requests_for("small")[1].messages
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"] == FRANCE
    assert "Paris, on the Seine" in messages[1]["content"]
    assert messages[2]["content"] == FRANCE_PARAPHRASE
    (demo,) = guided.demonstrations
    assert demo.id == solved.recorded_id and demo.model == "openai/large"
    assert 0.6 <= demo.similarity < 1.0
    used = store.get(demo.id)
    assert used is not None
    assert (used.times_retrieved, used.successes_after_retrieval) == (1, 1)


async def test_a_guided_query_that_fails_counts_a_retrieval_but_not_a_success(
    server: FakeLLMServer, embedded: SolutionStore
) -> None:
    stored = await remember(embedded, FRANCE)
    server.script("small", "Lyon")
    server.script("large", "Marseille")
    result = await cascade(server, embedded).run(FRANCE_PARAPHRASE)

    assert not result.success and [d.id for d in result.demonstrations] == [stored.id]
    used = embedded.get(stored.id)
    assert used is not None
    assert (used.times_retrieved, used.successes_after_retrieval) == (1, 0)


async def test_every_tier_the_query_escalates_to_gets_the_demonstration(
    server: FakeLLMServer, embedded: SolutionStore
) -> None:
    await remember(embedded, FRANCE, "The capital is Paris.")
    server.script("small", "Lyon")
    server.script("large", "Paris")
    result = await cascade(server, embedded).run(FRANCE_PARAPHRASE)

    assert result.tier == 1
    for model in ("small", "large"):
        prompt = prompt_text(server, model)
        assert prompt.count("The capital is Paris.") == 1, model
        assert FRANCE in prompt and prompt.rstrip().endswith(FRANCE_PARAPHRASE), model


# -- across processes --------------------------------------------------------------------------


async def test_a_record_written_by_another_process_is_found_here(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    location = tmp_path / "shared"
    run_python(
        WRITER, str(location), "ecocascade-solutions", "-", "-", json.dumps([[FRANCE, "Paris"]])
    )

    store = SolutionStore(location, embedder=embedder)
    assert store.count() == 1
    (found,) = await store.search(FRANCE_PARAPHRASE)
    assert (found.query, found.solution) == (FRANCE, "Paris")


async def test_a_record_written_here_is_found_by_another_process(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    location = tmp_path / "shared"
    await remember(SolutionStore(location, embedder=embedder), FRANCE, "Paris")

    seen = json.loads(run_python(READER, str(location), FRANCE))
    assert seen == {"found": [[FRANCE, "Paris"]], "got": "Paris", "count": 1}


@pytest.mark.xfail(
    raises=(AssertionError, SolutionStoreError),
    strict=True,
    reason="Chroma's embedded PersistentClient is not process-safe: a process that already has"
    " the vector index loaded does not see another process's writes in similarity search (stale"
    " results, or 'Error finding id') until it writes itself (chroma-core/chroma#3792)",
)
async def test_a_process_with_the_embedded_store_open_finds_what_another_process_wrote(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    location = tmp_path / "shared"
    here = SolutionStore(location, embedder=embedder)
    await remember(here, "How tall is Mount Everest?", "8849 m")
    assert len(await here.search("Everest height")) == 1  # loads the vector index here

    run_python(
        WRITER, str(location), "ecocascade-solutions", "-", "-", json.dumps([[FRANCE, "Paris"]])
    )

    assert here.count() == 2  # the records themselves are shared at once...
    assert [d.query for d in await here.search(FRANCE_PARAPHRASE)] == [FRANCE]  # ...the index not


async def test_two_processes_recording_at_once_through_a_server_lose_and_duplicate_nothing(
    tmp_path: Path, chroma_server: str, embedder: SentenceTransformerEmbedder
) -> None:
    collection = f"test-{uuid.uuid4().hex[:12]}"
    shared = [f"Shared question number {i}: what is {i} squared?" for i in range(5)]
    work = {
        who: [
            [f"Question {i} asked only by {who}: what is {i} plus {who}?", who] for i in range(20)
        ]
        + [[q, who] for q in shared]
        for who in ("alpha", "beta")
    }
    record_at_once(chroma_server, collection, work, tmp_path)

    store = SolutionStore(chroma_server, embedder=embedder, collection=collection)
    expected = {record_id(query, "default") for pairs in work.values() for query, _ in pairs}
    records = list(store.iter_records())
    assert len(expected) == 45 and store.count() == 45
    assert sorted(r.id for r in records) == sorted(expected)
    for record in records:  # each one is retrievable by similarity, not only listed
        (top,) = await store.search(record.query, threshold=0.99)
        assert top.id == record.id
    solutions = {r.query: r.solution for r in records}
    assert all(solutions[q] in {"alpha", "beta"} for q in shared)


# -- export / import ---------------------------------------------------------------------------


async def test_export_then_import_into_a_fresh_store_reproduces_every_record_exactly(
    request: pytest.FixtureRequest,
    store: SolutionStore,
    make_store: Callable[..., SolutionStore],
    tmp_path: Path,
) -> None:
    france = await remember(store, FRANCE, "Paris", model="openai/large", tier=1, run_id="r1")
    await remember(store, "Who wrote Hamlet?", "Shakespeare", namespace="books")
    await remember(
        store, "Print 2+2 in Python", "```python\nprint(2 + 2)\n```", code="print(2 + 2)"
    )
    await store.mark_used([france.id], succeeded=True)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"

    assert store.export(first) == 3
    fresh = make_store(request.node.callspec.params["store"])
    assert fresh.import_(first) == 3
    assert fresh.export(second) == 3

    lines = sorted(first.read_text().splitlines())
    assert lines == sorted(second.read_text().splitlines())
    exported = {json.loads(line)["query"]: json.loads(line) for line in lines}
    assert exported[FRANCE]["times_retrieved"] == 1
    assert exported[FRANCE]["created_at"] == pytest.approx(france.created_at, abs=1e-3)
    assert [d.id for d in await fresh.search(FRANCE_PARAPHRASE)] == [france.id]


@pytest.mark.parametrize(
    ("bad_line", "expected"),
    [("{not json", "not JSON"), ('{"id": "x", "namespace": "default"}', "query")],
    ids=["not-json", "missing-fields"],
)
def test_a_malformed_export_line_is_a_config_error_naming_file_and_line(
    embedded: SolutionStore, tmp_path: Path, bad_line: str, expected: str
) -> None:
    good = SolutionRecord(id=record_id(FRANCE, "default"), namespace="default", query=FRANCE,
                          solution="Paris")  # fmt: skip
    path = tmp_path / "export.jsonl"
    path.write_text(f"{good.model_dump_json()}\n\n{bad_line}\n")

    with pytest.raises(ConfigError, match=re.escape(f"{path}:3")) as raised:
        embedded.import_(path)
    assert expected in str(raised.value)
    assert embedded.count() == 0


# -- what never goes in ------------------------------------------------------------------------


async def test_an_environment_secret_in_a_solution_is_stored_as_its_placeholder(
    store: SolutionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_SERVICE_API_KEY", "s3cr3t-v4lue-0123")
    stored = await remember(
        store,
        "How do I call my service?",
        "curl -H 'X-Key: s3cr3t-v4lue-0123' https://my.service/",
        code="requests.get(url, headers={'X-Key': 's3cr3t-v4lue-0123'})",
    )

    again = store.get(stored.id)
    assert again is not None
    assert again.solution == "curl -H 'X-Key: <MY_SERVICE_API_KEY>' https://my.service/"
    assert again.code == "requests.get(url, headers={'X-Key': '<MY_SERVICE_API_KEY>'})"
    (demo,) = await store.search("How do I call my service?")
    assert "s3cr3t" not in demo.solution


async def test_a_key_shaped_secret_in_a_solution_is_stored_redacted(store: SolutionStore) -> None:
    key = "sk-proj-" + "Ab3dE6gH9jK2mN5pQ8sT"
    stored = await remember(store, "How do I set my OpenAI key?", f"export OPENAI_API_KEY={key}")

    again = store.get(stored.id)
    assert again is not None and again.solution == "export OPENAI_API_KEY=<REDACTED>"


async def test_an_environment_secret_in_a_query_is_stored_as_its_placeholder(
    embedded: SolutionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_SERVICE_API_KEY", "s3cr3t-v4lue-0123")
    await remember(embedded, "Why does my key s3cr3t-v4lue-0123 get a 401?", "It expired.")

    (demo,) = await embedded.search("Why does my key get a 401?", threshold=-1.0)
    assert "s3cr3t-v4lue-0123" not in demo.query


async def test_a_solution_over_the_size_cap_is_not_recorded_but_the_query_is_answered(
    server: FakeLLMServer, make_store: Callable[..., SolutionStore]
) -> None:
    capped = make_store("embedded", max_solution_chars=100)
    server.script("small", "Paris" + "!" * 200)
    with capture_logs() as logs:
        result = await cascade(server, capped).run(FRANCE)

    assert result.success and result.answer == "Paris" + "!" * 200
    assert result.recorded_id is None and capped.count() == 0
    (too_large,) = events(logs, "solutions.too_large")
    assert (too_large["chars"], too_large["max_chars"]) == (205, 100)


async def test_run_with_record_false_keeps_that_answer_out_of_the_store(
    server: FakeLLMServer, embedded: SolutionStore
) -> None:
    server.script("small", "Paris", "Paris")
    skipped = await cascade(server, embedded).run(FRANCE, record=False)
    assert skipped.success and skipped.recorded_id is None and embedded.count() == 0

    kept = await cascade(server, embedded).run(FRANCE)
    assert kept.recorded_id is not None and embedded.count() == 1


# -- a store that cannot be used ---------------------------------------------------------------


def garbage_store(tmp_path: Path) -> Path:
    location = tmp_path / "garbage"
    location.mkdir()
    (location / "chroma.sqlite3").write_bytes(b"this is not a database, just junk\n" * 200)
    return location


@pytest.fixture(params=["unreachable-server", "garbage-sqlite"])
def broken_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "unreachable-server":
        return f"http://127.0.0.1:{free_port()}"  # bound then closed: nothing listens
    return str(garbage_store(tmp_path))


async def test_an_unusable_store_never_fails_a_query(
    server: FakeLLMServer, broken_location: str, embedder: SentenceTransformerEmbedder
) -> None:
    server.script("small", "Paris")
    broken = SolutionStore(broken_location, embedder=embedder)
    with capture_logs() as logs:
        result = await cascade(server, broken).run(FRANCE)

    assert result.success and result.answer == "Paris"
    assert result.demonstrations == () and result.recorded_id is None
    unavailable = events(logs, "solutions.unavailable")
    assert [e["during"] for e in unavailable] == ["search", "record"]
    assert all(e["log_level"] == "warning" and broken_location in e["error"] for e in unavailable)


def test_the_admin_api_on_an_unusable_store_raises_a_store_error_naming_it(
    broken_location: str, embedder: SentenceTransformerEmbedder
) -> None:
    with pytest.raises(SolutionStoreError, match=re.escape(broken_location)) as raised:
        SolutionStore(broken_location, embedder=embedder).count()
    assert raised.value.location == broken_location


def test_solutions_stats_on_a_garbage_store_is_one_error_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    location = garbage_store(tmp_path)
    code, out, err = invoke(capsys, "solutions", "stats", "--store", str(location))

    assert code == 1 and out == ""
    assert err.startswith(f"error: solution store {location}:") and err.count("\n") == 1
    assert "Traceback" not in err


# -- the embedder a store was built with ------------------------------------------------------


@pytest.mark.parametrize("kind", ["embedded", "server"])
async def test_opening_a_store_with_another_embedder_is_a_config_error_that_says_reindex(
    make_store: Callable[..., SolutionStore], kind: str
) -> None:
    built = make_store(kind)
    await remember(built, FRANCE)
    other = SolutionStore(built.location, embedder=HashingEmbedder(),
                          collection=built.collection_name)  # fmt: skip

    with pytest.raises(ConfigError, match="reindex") as raised:
        other.count()
    assert "sentence-transformers/all-MiniLM-L6-v2" in str(raised.value)
    assert HashingEmbedder.name in str(raised.value)


@pytest.mark.parametrize("kind", ["embedded", "server"])
async def test_reindex_reembeds_every_record_with_the_new_embedder(
    make_store: Callable[..., SolutionStore], kind: str, embedder: SentenceTransformerEmbedder
) -> None:
    built = make_store(kind)
    queries = [FRANCE, "Who wrote Hamlet?", "How many legs does a spider have?"]
    for query in queries:
        await remember(built, query, f"answer to {query}")
    await built.mark_used([record_id(FRANCE, "default")], succeeded=True)
    before = {r.id: r for r in built.iter_records()}

    rebuilt = SolutionStore(built.location, embedder=HashingEmbedder(),
                            collection=built.collection_name)  # fmt: skip
    assert rebuilt.reindex() == 3

    assert rebuilt.count() == 3
    assert {r.id: r for r in rebuilt.iter_records()} == before
    for query in queries:
        (top,) = await rebuilt.search(query, threshold=0.99)
        assert top.id == record_id(query, "default")
    assert rebuilt.stats()["embedder"] == HashingEmbedder.name
    with pytest.raises(ConfigError, match="reindex"):  # now the old embedder is the stranger
        SolutionStore(built.location, embedder=embedder, collection=built.collection_name).count()


# -- the command line --------------------------------------------------------------------------


def invoke(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


@pytest.fixture
def cli_store(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> SolutionStore:
    """An embedded store holding three records; the one about France was retrieved once."""
    opened = SolutionStore(tmp_path / "cli-store", embedder=embedder)

    async def fill() -> None:
        france = await remember(opened, FRANCE, "Paris", model="openai/large")
        await remember(opened, "Who wrote Hamlet?", "Shakespeare", model="openai/small")
        await remember(opened, "What is 12 squared?", "144", namespace="maths")
        await opened.mark_used([france.id], succeeded=True)

    asyncio.run(fill())
    return opened


def write_config(tmp_path: Path, server: FakeLLMServer) -> Path:
    config = {
        "tiers": [
            {"model": "openai/small", "api_base": server.api_base, "retry": {"max_retries": 0}},
            {"model": "openai/large", "api_base": server.api_base, "retry": {"max_retries": 0}},
        ],
        "judge": {"type": "contains", "text": "Paris"},
    }
    path = tmp_path / "cascade.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_cli_run_json_lists_the_demonstrations_it_used(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, server: FakeLLMServer,
    cli_store: SolutionStore,
) -> None:  # fmt: skip
    server.script("small", "Paris")
    code, out, err = invoke(capsys, "run", "-c", str(write_config(tmp_path, server)),
                            "--store", cli_store.location, "--json", FRANCE_PARAPHRASE)  # fmt: skip

    assert code == 0, err
    data = json.loads(out)
    (demo,) = data["demonstrations"]
    assert (demo["id"], demo["query"], demo["model"]) == (
        record_id(FRANCE, "default"), FRANCE, "openai/large",
    )  # fmt: skip
    assert 0.6 <= demo["similarity"] < 1.0
    assert FRANCE in prompt_text(server, "small")
    assert data["recorded_id"] == record_id(FRANCE_PARAPHRASE, "default")
    assert cli_store.count() == 4


def test_cli_run_with_no_record_keeps_the_answer_out_of_the_store(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, server: FakeLLMServer,
    cli_store: SolutionStore,
) -> None:  # fmt: skip
    server.script("small", "Paris")
    code, out, err = invoke(capsys, "run", "-c", str(write_config(tmp_path, server)),
                            "--store", cli_store.location, "--no-record", "--json",
                            "Name the capital of France, please.")  # fmt: skip

    assert code == 0, err
    assert json.loads(out)["recorded_id"] is None and cli_store.count() == 3


def test_solutions_list_shows_the_records_most_recently_updated_first(
    capsys: pytest.CaptureFixture[str], cli_store: SolutionStore
) -> None:
    code, out, _ = invoke(capsys, "solutions", "list", "--store", cli_store.location, "--json")

    assert code == 0
    assert [r["query"] for r in json.loads(out)] == [
        "What is 12 squared?", "Who wrote Hamlet?", FRANCE,
    ]  # fmt: skip


def test_solutions_show_finds_a_record_by_a_unique_id_prefix(
    capsys: pytest.CaptureFixture[str], cli_store: SolutionStore
) -> None:
    prefix = record_id(FRANCE, "default")[:8]
    code, out, _ = invoke(capsys, "solutions", "show", prefix, "--store", cli_store.location)

    assert code == 0
    assert f"query: {FRANCE}" in out and "solution: Paris" in out
    assert "times_retrieved: 1" in out and "model: openai/large" in out


def test_solutions_search_ranks_similar_solved_queries(
    capsys: pytest.CaptureFixture[str], cli_store: SolutionStore
) -> None:
    code, out, _ = invoke(capsys, "solutions", "search", "What is the capital of Spain?",
                          "--store", cli_store.location, "--json")  # fmt: skip

    found = json.loads(out)
    assert code == 0
    assert [d["query"] for d in found] == [FRANCE, "Who wrote Hamlet?"]  # "default" only
    assert found[0]["solution"] == "Paris" and found[0]["similarity"] > found[1]["similarity"]


def test_solutions_export_and_import_carry_every_record_to_another_store(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cli_store: SolutionStore
) -> None:
    dump, target = tmp_path / "dump.jsonl", tmp_path / "target"
    code, _, err = invoke(capsys, "solutions", "export", str(dump), "--store", cli_store.location)
    assert code == 0 and err == f"exported 3 records to {dump}\n"

    code, _, err = invoke(capsys, "solutions", "import", str(dump), "--store", str(target))
    assert code == 0 and err == f"imported 3 records from {dump}\n"
    copy = SolutionStore(target, embedder=cli_store.embedder)
    assert sorted(r.model_dump_json() for r in copy.iter_records()) == sorted(
        r.model_dump_json() for r in cli_store.iter_records()
    )


def test_solutions_delete_removes_the_record_named_by_a_prefix(
    capsys: pytest.CaptureFixture[str], cli_store: SolutionStore
) -> None:
    doomed = record_id("Who wrote Hamlet?", "default")
    code, _, err = invoke(capsys, "solutions", "delete", doomed[:10], "--store", cli_store.location)

    assert code == 0 and err == "deleted 1 records\n"
    assert cli_store.get(doomed) is None and cli_store.count() == 2


def test_solutions_prune_unused_removes_only_never_retrieved_records(
    capsys: pytest.CaptureFixture[str], cli_store: SolutionStore
) -> None:
    code, _, err = invoke(capsys, "solutions", "prune", "--unused", "--store", cli_store.location)

    assert code == 0 and err == "pruned 2 records\n"
    assert [r.query for r in cli_store.iter_records()] == [FRANCE]


def test_solutions_prune_older_than_removes_only_stale_records(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cli_store: SolutionStore
) -> None:
    long_ago = time.time() - 3 * 86400
    stale = SolutionRecord(id=record_id("Who was king in 1066?", "default"), namespace="default",
                           query="Who was king in 1066?", solution="Harold, then William",
                           created_at=long_ago, updated_at=long_ago)  # fmt: skip
    (tmp_path / "stale.jsonl").write_text(stale.model_dump_json() + "\n")
    cli_store.import_(tmp_path / "stale.jsonl")

    code, _, err = invoke(capsys, "solutions", "prune", "--older-than", "2d",
                          "--store", cli_store.location)  # fmt: skip

    assert code == 0 and err == "pruned 1 records\n"
    assert cli_store.get(stale.id) is None and cli_store.count() == 3


def test_solutions_stats_counts_records_per_namespace_and_model_and_their_use(
    capsys: pytest.CaptureFixture[str], cli_store: SolutionStore
) -> None:
    code, out, _ = invoke(capsys, "solutions", "stats", "--store", cli_store.location, "--json")

    assert code == 0
    assert json.loads(out) == {
        "location": cli_store.location,
        "embedder": "sentence-transformers/all-MiniLM-L6-v2",
        "records": 3,
        "namespaces": {"default": 2, "maths": 1},
        "solved_by_model": {"openai/large": 1, "openai/small": 1, "?": 1},
        "times_retrieved": 1,
        "successes_after_retrieval": 1,
    }


def test_a_bad_prune_duration_is_exit_2_and_names_the_flag(
    capsys: pytest.CaptureFixture[str], cli_store: SolutionStore
) -> None:
    code, _, err = invoke(capsys, "solutions", "prune", "--older-than", "soon",
                          "--store", cli_store.location)  # fmt: skip
    assert code == 2 and err.startswith("error: --older-than:") and cli_store.count() == 3


def test_solutions_export_chat_jsonl_writes_filtered_verified_pairs_as_chat_examples(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cli_store: SolutionStore
) -> None:
    dump = tmp_path / "train.jsonl"
    code, _, err = invoke(capsys, "solutions", "export", str(dump), "--store", cli_store.location,
                          "--format", "chat-jsonl", "--model", "openai/large",
                          "--system", "Answer briefly.")  # fmt: skip

    assert code == 0 and err == f"exported 1 chat examples to {dump}\n"
    (line,) = dump.read_text().splitlines()
    assert json.loads(line) == {"messages": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": FRANCE},
        {"role": "assistant", "content": "Paris"},
    ]}  # fmt: skip
