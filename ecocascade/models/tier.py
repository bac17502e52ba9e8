"""A tier: one rung of the ladder — a LiteLLM model plus how to reach and price it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ecocascade.exceptions import ConfigError

__all__ = ["Price", "RetryPolicy", "Tier"]


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens. Overrides LiteLLM's table for local or unpriced models."""

    input_per_mtok: float
    output_per_mtok: float

    def __post_init__(self) -> None:
        for name in ("input_per_mtok", "output_per_mtok"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"must be a finite number >= 0, got {value!r}", where=name)

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries for transient provider errors (rate limit, timeout, connection, 5xx).

    Backoff is exponential from ``base_delay_s``. A ``Retry-After`` the provider sends is honoured
    when it is at most ``max_delay_s``; a longer one ends the retries at once, since escalating to
    the next tier beats waiting.
    """

    max_retries: int = 2
    base_delay_s: float = 0.5
    max_delay_s: float = 10.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ConfigError(f"must be >= 0, got {self.max_retries}", where="max_retries")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ConfigError("retry delays must be >= 0", where="retry")

    def delay(self, retry: int, retry_after_s: float | None) -> float | None:
        """Seconds to wait before retry number ``retry`` (1-based), or ``None`` to stop retrying."""
        if retry > self.max_retries:
            return None
        if retry_after_s is not None:
            return retry_after_s if retry_after_s <= self.max_delay_s else None
        return float(min(self.base_delay_s * 2.0 ** (retry - 1), self.max_delay_s))


@dataclass(frozen=True, slots=True)
class Tier:
    """One model on the ladder.

    ``model`` is any LiteLLM model string (``openai/gpt-4o-mini``, ``anthropic/claude-3-5-haiku``,
    ``ollama/llama3``, ``openai/<name>`` with ``api_base`` for any OpenAI-compatible server).
    ``api_key_env`` names the environment variable holding the key — the key itself never sits in
    a config. ``params`` go to the completion call as-is (``temperature``, ``max_tokens``, …).
    ``price`` overrides LiteLLM's price table; without either the cost is unknown (``None``).
    ``local/<name>`` tiers run a GGUF model on this machine (see ``ecocascade models list``);
    their price defaults to $0 and can be overridden to model electricity or GPU cost.
    """

    model: str
    api_base: str | None = None
    api_key_env: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    price: Price | None = None
    timeout_s: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError("a tier needs a non-empty LiteLLM model string", where="model")
        if not (isinstance(self.timeout_s, int | float) and 0 < self.timeout_s < math.inf):
            raise ConfigError(f"must be > 0, got {self.timeout_s}", where="timeout_s")
        if self.api_base is not None and not self.model.startswith("replay/"):
            _check_api_base(self.api_base)  # (a replay tier's api_base names recorded files)
        reserved = {"model", "messages", "api_base", "api_key", "timeout", "stream"} & set(
            self.params
        )
        if reserved:
            raise ConfigError(
                f"{sorted(reserved)} are set by the tier itself, not through params",
                where="params",
            )
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    @property
    def is_local(self) -> bool:
        """``local/<name>``: a GGUF model ecocascade serves itself (free unless priced)."""
        return self.model.startswith("local/")

    @property
    def label(self) -> str:
        """What results and logs call this tier: ``name`` if given, else the model string."""
        return self.name or self.model


def _check_api_base(api_base: object) -> None:
    """``http(s)://host[:port][/path]``, or a :class:`ConfigError` now — not a connection error
    later that the tier would retry as if the server were down."""
    from urllib.parse import urlsplit

    problem = f"expected http(s)://host[:port][/path], got {api_base!r}"
    if not isinstance(api_base, str) or any(c.isspace() for c in api_base):
        raise ConfigError(problem, where="api_base")
    try:
        parts = urlsplit(api_base)
        ok = parts.scheme in {"http", "https"} and bool(parts.hostname)
        ok = ok and (parts.port is None or parts.port > 0)  # .port raises for 80x or 99999
    except ValueError:  # e.g. an unclosed [IPv6 bracket
        ok = False
    if not ok:
        raise ConfigError(problem, where="api_base")
