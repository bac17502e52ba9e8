"""`solutions reindex` is atomic: the new collections are built beside the old ones and swapped
in only when complete, so a SIGKILL at any point leaves every record readable (embedded Chroma,
a real child process killed for real)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ecocascade.store import SolutionRecord, SolutionStore, record_id

N = 300
NAMESPACES = ("default", "maths")

# Two tiny real embedders of different vector spaces (16 and 24 dimensions, words hashed),
# shared with the child through this source text. SLOW marks its first batch, then dawdles,
# so the parent can kill it mid-reindex.
EMBEDDERS = textwrap.dedent(
    """
    import hashlib, math, os, re, time
    from pathlib import Path

    class Hashed:
        def __init__(self, dims, marker=None, delay_s=0.0):
            self.dims, self.marker, self.delay_s = dims, marker, delay_s
            self.name = f"test/hashed-{dims}"

        def embed_sync(self, texts):
            if self.marker is not None:
                Path(self.marker).touch()
            time.sleep(self.delay_s)
            out = []
            for text in texts:
                v = [0.0] * self.dims
                for word in re.findall(r"\\w+", text.lower()):
                    v[int(hashlib.sha256(word.encode()).hexdigest(), 16) % self.dims] += 1.0
                norm = math.sqrt(sum(x * x for x in v)) or 1.0
                out.append([x / norm for x in v])
            return out

        async def embed(self, texts):
            return self.embed_sync(texts)
    """
)
namespace: dict[str, object] = {}
exec(EMBEDDERS, namespace)
Hashed = namespace["Hashed"]

CHILD = EMBEDDERS + textwrap.dedent(
    """
    import sys
    from ecocascade.store import SolutionStore

    location, marker, kill_after_rename = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    if kill_after_rename:  # a SIGKILL right after the first rename of the swap (fault injection)
        from chromadb.api.models.Collection import Collection

        real_modify = Collection.modify

        def modify(self, *args, **kwargs):
            real_modify(self, *args, **kwargs)
            os.kill(os.getpid(), 9)

        Collection.modify = modify
    new = Hashed(24, marker=marker, delay_s=0.0 if kill_after_rename else 0.5)
    SolutionStore(location, embedder=new).reindex(Path(location).parent / "backup.jsonl")
    print("finished")
    """
)


def records() -> list[SolutionRecord]:
    out = []
    for i in range(N):
        ns = NAMESPACES[i % 2]
        query = f"question number {i} about topic {i % 7}?"
        out.append(
            SolutionRecord(id=record_id(query, ns), namespace=ns, query=query,
                           solution=f"answer {i}", model="openai/x", times_retrieved=i % 3)
        )  # fmt: skip
    return out


def build_store(tmp_path: Path) -> tuple[str, dict[str, SolutionRecord]]:
    location = str(tmp_path / "db")
    export = tmp_path / "seed.jsonl"
    export.write_text("".join(r.model_dump_json() + "\n" for r in records()))
    old = SolutionStore(location, embedder=Hashed(16))
    assert old.import_(export) == N
    return location, {r.id: r for r in old.iter_records()}


def run_child(location: str, marker: Path, *, kill_after_rename: bool) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, location, str(marker), "1" if kill_after_rename else "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip


def readable(location: str) -> dict[str, SolutionRecord]:
    """Every record, read by whichever embedder the store now says it was built with."""
    for dims in (16, 24):
        store = SolutionStore(location, embedder=Hashed(dims))
        try:
            return {r.id: r for r in store.iter_records()}
        except Exception as error:  # built with the other one
            if "reindex" not in str(error):
                raise
    raise AssertionError("the store opens with neither embedder")


def collection_names(location: str) -> list[str]:
    import chromadb

    return sorted(c.name for c in chromadb.PersistentClient(path=location).list_collections())


@pytest.mark.slow
def test_a_reindex_killed_while_building_leaves_every_record_readable(tmp_path: Path) -> None:
    location, before = build_store(tmp_path)
    marker = tmp_path / "embedding-started"
    child = run_child(location, marker, kill_after_rename=False)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the child never started re-embedding"
        time.sleep(0.02)
    time.sleep(0.3)  # well inside the re-embedding (each batch dawdles 0.5 s)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)

    assert readable(location) == before  # still the old store, whole
    # and a rerun completes, leaving no half-built collection behind
    rerun = SolutionStore(location, embedder=Hashed(24))
    assert rerun.reindex(tmp_path / "backup2.jsonl") == N
    assert {r.id: r for r in rerun.iter_records()} == before
    assert len(collection_names(location)) == len(NAMESPACES)


@pytest.mark.slow
def test_a_reindex_killed_in_the_middle_of_the_swap_leaves_every_record_readable(
    tmp_path: Path,
) -> None:
    location, before = build_store(tmp_path)
    child = run_child(location, tmp_path / "marker", kill_after_rename=True)
    _, err = child.communicate(timeout=120)
    assert child.returncode == -signal.SIGKILL, err

    assert readable(location) == before
    rerun = SolutionStore(location, embedder=Hashed(24))
    assert rerun.reindex(tmp_path / "backup2.jsonl") == N
    assert {r.id: r for r in rerun.iter_records()} == before
    assert len(collection_names(location)) == len(NAMESPACES)
