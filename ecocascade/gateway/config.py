"""The gateway config file: several named cascades, pass-through models, gateway settings.

.. code-block:: yaml

    cascades:                       # model "cascade/support" runs this one
      support:                      # each is an ordinary cascade config (see README)
        tiers:
          - {model: openai/gpt-4o-mini, api_key_env: OPENAI_API_KEY}
          - {model: openai/gpt-4o, api_key_env: OPENAI_API_KEY}
        judge: {type: llm, model: openai/gpt-4o, api_key_env: OPENAI_API_KEY}
        cache: {location: ~/.cache/ecocascade/gateway.sqlite3}
    models:                         # optional: pass-through names and how to reach them
      mini: {model: openai/gpt-4o-mini, api_key_env: OPENAI_API_KEY}
    passthrough: any                # any other model name goes to LiteLLM as sent (or: listed)
    keepalive_s: 10
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, ValidationError

from ecocascade.config.loader import read_yaml
from ecocascade.config.schema import CascadeConfig, TierSpec
from ecocascade.exceptions import ConfigError, format_validation_error
from ecocascade.gateway.apikeys import AccessSpec
from ecocascade.gateway.memory import MemorySpec

__all__ = ["GatewayConfig", "load_gateway_config", "parse_gateway_config"]

CascadeName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class GatewayConfig(BaseModel):
    """Validated gateway config; unknown fields are errors (typos never pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    cascades: dict[CascadeName, CascadeConfig] = Field(default_factory=dict)
    models: dict[Annotated[str, Field(min_length=1)], TierSpec] = Field(default_factory=dict)
    passthrough: Literal["any", "listed", "none"] = "any"
    """Model names that are not ``cascade/<name>``: ``any`` sends them to LiteLLM (a listed name
    through its ``models`` entry, any other as sent, with LiteLLM's usual environment keys);
    ``listed`` only the ``models`` entries; ``none`` refuses them (404)."""
    keepalive_s: PositiveFloat = 10.0
    """A stream whose answer is not ready sends a keep-alive comment this often. Until the first
    one the response has not started, so an early failure still gets a real HTTP status."""
    sticky_ttl_s: PositiveFloat = 86_400.0
    feedback_ttl_s: PositiveFloat = 7 * 86_400.0
    single_flight: bool = True
    max_body_bytes: Annotated[int, Field(gt=0)] = 8 * 1024 * 1024
    memory: dict[CascadeName, MemorySpec] = Field(default_factory=dict)
    """Conversation memory compression per cascade (see :mod:`ecocascade.gateway.memory`)."""
    redis: str | None = None
    """``redis://host:port/db``: sticky tiers, single-flight locks, the feedback map, budgets,
    rate-limit windows and dashboard stats live there, so replicas behave as one gateway.
    Without it they live in this process (one replica only)."""
    access: AccessSpec | None = None
    """API keys with their cascades, budgets and rate limits (see ``gateway/apikeys.py``);
    without keys the gateway is open to anyone who can reach it."""
    dashboard: bool = True
    """Serve the savings dashboard at ``/dashboard`` (and redirect ``/`` there)."""

    def cascade_names(self) -> list[str]:
        return list(self.cascades)


def parse_gateway_config(data: Any, *, source: str = "gateway config") -> GatewayConfig:
    """Validate a mapping; every problem is one :class:`ConfigError` naming the source and the
    field (``gateway.yaml: cascades.support.tiers.0.model: ...``)."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected a mapping with 'cascades', got {type(data).__name__}", where=source
        )
    try:
        config = GatewayConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error), where=source) from None
    unknown = sorted(set(config.memory) - set(config.cascades))
    if unknown:
        raise ConfigError(f"no such cascade: {', '.join(unknown)}", where=f"{source}: memory")
    if not config.cascades and not config.models and config.passthrough == "none":
        raise ConfigError(
            "nothing to serve: no cascades, no models, passthrough none", where=source
        )
    return config


def load_gateway_config(path: str | Path) -> GatewayConfig:
    return parse_gateway_config(read_yaml(path), source=str(path))
