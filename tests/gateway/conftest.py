from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from ecocascade.testing.services import RedisServer


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A throwaway ``redis-server`` on a free loopback port, killed after the test."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    with RedisServer() as server:
        yield server
