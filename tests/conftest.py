from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator

import pytest
import structlog

from ecocascade._env import ensure_offline_defaults
from ecocascade.testing import FakeLLMServer

# Before any test imports LiteLLM: bundled price table and tokenizers, no network.
ensure_offline_defaults()


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    """A scripted OpenAI-compatible server on a free loopback port, stopped after the test."""
    with FakeLLMServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _own_solution_store(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI keeps a solution store and a cache by default: never let a test use the user's."""
    monkeypatch.setenv("ECOCASCADE_SOLUTIONS", str(tmp_path_factory.mktemp("solutions_db")))
    monkeypatch.setenv("ECOCASCADE_CACHE", str(tmp_path_factory.mktemp("cache") / "cache.sqlite3"))


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """The CLI configures structlog globally; put the defaults back so log capture keeps working."""
    yield
    structlog.reset_defaults()


@pytest.fixture(autouse=True)
async def _close_litellm_clients() -> AsyncIterator[None]:
    """Each test has its own event loop: close LiteLLM's clients inside it, as run_sync does."""
    yield
    if "litellm" in sys.modules:
        await sys.modules["litellm"].close_litellm_async_clients()
