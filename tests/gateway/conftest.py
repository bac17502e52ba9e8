"""A real gateway (uvicorn + the FastAPI app) on a free loopback port, in a thread, for the
OpenAI SDK and curl to talk to; upstream tiers on FakeLLMServer."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from ecocascade.gateway import Gateway, create_app, parse_gateway_config
from ecocascade.testing import FakeLLMServer


@dataclass
class RunningGateway:
    gateway: Gateway
    url: str  # http://127.0.0.1:PORT
    clients: list[Any] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def client(self, **kwargs: Any) -> Any:
        import openai

        client = openai.OpenAI(base_url=self.base_url, api_key="test-key", **kwargs)
        self.clients.append(client)
        return client

    def metrics(self) -> str:
        import httpx

        return httpx.get(f"{self.url}/metrics").text


@contextlib.contextmanager
def run_gateway(config: dict[str, Any], **plugins: Any) -> Iterator[RunningGateway]:
    import uvicorn

    gateway = Gateway(parse_gateway_config(config, source="test"), **plugins)
    app = create_app(gateway)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start")
        time.sleep(0.01)
    running = RunningGateway(gateway, f"http://127.0.0.1:{port}")
    try:
        yield running
    finally:
        for client in running.clients:
            client.close()
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@pytest.fixture
def gateway_factory() -> Iterator[Callable[..., RunningGateway]]:
    """Start gateways for a test (stopped after it): ``gateway_factory(config_dict)``."""
    with contextlib.ExitStack() as stack:
        yield lambda config, **plugins: stack.enter_context(run_gateway(config, **plugins))


def tier(server: FakeLLMServer, name: str, **extra: Any) -> dict[str, Any]:
    """A tier spec on the fake server, priced so cost and savings are visible."""
    prices = {"small": (0.1, 0.4), "large": (2.5, 10.0)}
    price_in, price_out = prices.get(name, (1.0, 4.0))
    return {
        "model": f"openai/{name}",
        "api_base": server.api_base,
        "price": {"input_per_mtok": price_in, "output_per_mtok": price_out},
        "retry": {"max_retries": 1, "base_delay_s": 0.01, "max_delay_s": 0.05},
        **extra,
    }
