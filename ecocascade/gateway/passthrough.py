"""Models that are not ``cascade/<name>``: sent through LiteLLM as they came, answered as-is.

A name listed under ``models:`` in the gateway config goes to that tier (its model string,
``api_base``, key variable, params and timeout); any other name goes to LiteLLM unchanged when
``passthrough: any`` (LiteLLM then finds the provider's key in the environment as usual). The
body is forwarded whole; the response is LiteLLM's OpenAI-shaped one. Provider errors keep their
HTTP status and become OpenAI error bodies.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ecocascade._env import import_litellm
from ecocascade.gateway.errors import GatewayError
from ecocascade.models.errors import retry_after_seconds
from ecocascade.models.pricing import call_cost
from ecocascade.models.tier import Tier

__all__ = ["Route", "complete", "embed", "stream"]

_NO_KEY = "no-key"  # sent to a custom api_base that names no key variable (never a real key)


@dataclass(frozen=True, slots=True)
class Route:
    """Where a pass-through model name goes."""

    model: str
    api_base: str | None = None
    api_key_env: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    timeout_s: float = 600.0
    tier: Tier | None = None

    @classmethod
    def from_tier(cls, tier: Tier) -> Route:
        return cls(
            model=tier.model,
            api_base=tier.api_base,
            api_key_env=tier.api_key_env,
            params=dict(tier.params),
            timeout_s=tier.timeout_s,
            tier=tier,
        )

    def kwargs(self, body: Mapping[str, Any]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {**self.params, **body, "model": self.model}
        kwargs.update(timeout=self.timeout_s, num_retries=0, max_retries=0)
        if self.api_base is not None:
            kwargs["api_base"] = self.api_base
        if self.api_key_env is not None:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise GatewayError(
                    500, f"the gateway's {self.api_key_env} is not set", code="upstream_key_missing"
                )
            kwargs["api_key"] = key
        elif self.api_base is not None:
            kwargs["api_key"] = _NO_KEY
        if kwargs.get("tools") and not any(
            isinstance(t, dict) and t.get("type") == "mcp" for t in kwargs["tools"]
        ):
            kwargs["_skip_mcp_handler"] = True  # plain function tools never need LiteLLM's MCP
        return kwargs

    def cost(self, usage: Mapping[str, Any] | None) -> float | None:
        if self.tier is None or not usage:
            return None
        return call_cost(
            self.tier,
            int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or 0),
        )


def upstream_error(error: BaseException, model: str) -> GatewayError:
    """A LiteLLM/provider exception as the HTTP error the client gets (its status kept)."""
    status = getattr(error, "status_code", None)
    if not isinstance(status, int) or not 400 <= status < 600:
        status = 502
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    headers = {}
    retry_after = retry_after_seconds(error)
    if retry_after is not None:
        headers["Retry-After"] = f"{retry_after:g}"

    return GatewayError(
        status,
        f"{model}: {' '.join(str(message).split())[:500]}",
        code="upstream_error",
        headers=headers,
    )


async def complete(route: Route, body: Mapping[str, Any]) -> dict[str, Any]:
    litellm = import_litellm()
    try:
        response = await litellm.acompletion(**route.kwargs(body))
    except GatewayError:
        raise
    except Exception as error:
        raise upstream_error(error, str(body.get("model"))) from error
    data: dict[str, Any] = response.model_dump(exclude_none=False)
    data.pop("_hidden_params", None)
    return data


async def stream(route: Route, body: Mapping[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """The chunks of a streamed completion (the first one is awaited before this returns,
    so a failing call raises here, before any byte has gone to the client)."""
    litellm = import_litellm()
    try:
        response = await litellm.acompletion(**route.kwargs({**body, "stream": True}))
        iterator = response.__aiter__()
        first = await iterator.__anext__()
    except StopAsyncIteration:
        return _chunks(None, None, route.model)
    except GatewayError:
        raise
    except Exception as error:
        raise upstream_error(error, str(body.get("model"))) from error
    return _chunks(first, iterator, str(body.get("model")))


async def _chunks(first: Any, iterator: Any, model: str) -> AsyncIterator[dict[str, Any]]:
    if first is None:
        return
    yield first.model_dump(exclude_none=True)
    try:
        async for chunk in iterator:
            yield chunk.model_dump(exclude_none=True)
    except Exception as error:  # mid-stream: the client gets an error event, not a cut
        raise upstream_error(error, model) from error


async def embed(route: Route, body: Mapping[str, Any]) -> dict[str, Any]:
    litellm = import_litellm()
    kwargs = route.kwargs(body)
    for key in ("num_retries", "_skip_mcp_handler"):
        kwargs.pop(key, None)
    try:
        response = await litellm.aembedding(**kwargs)
    except GatewayError:
        raise
    except Exception as error:
        raise upstream_error(error, str(body.get("model"))) from error
    data: dict[str, Any] = response.model_dump(exclude_none=True)
    data.pop("_hidden_params", None)
    return data
