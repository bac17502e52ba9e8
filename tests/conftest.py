from __future__ import annotations

from collections.abc import Iterator

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
def _fresh_structlog() -> Iterator[None]:
    """The CLI configures structlog globally; put the defaults back so log capture keeps working."""
    yield
    structlog.reset_defaults()
