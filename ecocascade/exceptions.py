"""Every error ecocascade raises.

Caller mistakes and runtime failures are separate branches, so an app can let the first crash
loudly and handle the second::

    EcoCascadeError
    ├── ConfigError                  the caller's mistake: fix the input and call again
    │   └── JudgeUnavailableError    a judge that cannot work here (human judge without a TTY)
    ├── ProviderError                one model call failed, after retries where they make sense
    │   ├── RateLimitedError         HTTP 429, with ``retry_after_s`` if sent     [transient]
    │   ├── ProviderTimeoutError     no answer within the tier's timeout          [transient]
    │   ├── ProviderUnavailableError connection refused/dropped, HTTP 5xx        [transient]
    │   ├── ContextWindowExceededError  the prompt does not fit this model
    │   ├── MalformedResponseError   the provider answered, but not with a usable completion
    │   ├── ProviderRejectedError    any other 4xx: bad key, unknown model, bad request
    │   ├── LocalModelMissingError   a local/<name> tier whose model is unknown or not pulled
    │   └── LocalServerError         a local model server failed to start (bad GGUF, port taken)
    ├── SolverError                  a solver crashed part-way; carries what it had spent
    ├── JudgeError                   a judge could not reach a verdict (its model failed, …)
    ├── SolutionStoreError           the solution store is unreachable or unreadable
    └── CascadeFailedError           no tier produced an accepted answer; carries the result

Exceptions carry data (model, status, retry-after, the full result) and never log. A
``ProviderError`` or ``SolverError`` that ends a solver's attempt also carries what the attempt
had already spent (``spent_usd``, ``spent_usage``: e.g. an agent team's earlier model calls), so
the cascade's results and budget count it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecocascade.text import mask_secrets
from ecocascade.types import Usage

if TYPE_CHECKING:
    from pydantic import ValidationError

    from ecocascade.controller.result import CascadeResult

__all__ = [
    "CascadeFailedError",
    "ConfigError",
    "ContextWindowExceededError",
    "EcoCascadeError",
    "JudgeError",
    "JudgeUnavailableError",
    "LocalModelMissingError",
    "LocalServerError",
    "MalformedResponseError",
    "ProviderError",
    "ProviderRejectedError",
    "ProviderTimeoutError",
    "ProviderUnavailableError",
    "RateLimitedError",
    "SolutionStoreError",
    "SolverError",
    "format_validation_error",
]


class EcoCascadeError(Exception):
    """Base class of every error ecocascade raises. Its message is masked when it is made
    (:func:`~ecocascade.text.mask_secrets`): a provider that echoes an API key in an error does
    not put the key into attempts, ``--json`` output, ``tasks.jsonl``, tapes or logs."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(mask_secrets(a) if isinstance(a, str) else a for a in args))


class ConfigError(EcoCascadeError, ValueError):
    """Bad input from the caller: a config file, a tier, a judge spec, a CLI flag.

    ``where`` names the file and/or field (``cascade.yaml: tiers.0.price``) so the message can say
    exactly what to fix.
    """

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class JudgeUnavailableError(ConfigError):
    """The judge cannot run in this environment (e.g. a human judge with no terminal attached)."""


class ProviderError(EcoCascadeError):
    """A model call failed. ``transient`` errors were retried before this was raised.

    ``spent_usd`` and ``spent_usage`` are what the solver's attempt had spent before this call
    failed (0 for a single-call solver; an agent team's earlier calls otherwise); ``spent_usd`` is
    ``None`` when unknown (a tier without a price).
    """

    transient: bool = False
    spent_usd: float | None = 0.0
    spent_usage: Usage = Usage()

    def __init__(
        self,
        message: str,
        *,
        model: str,
        status_code: int | None = None,
        retries: int = 0,
    ) -> None:
        self.model = model
        self.status_code = status_code
        self.retries = retries
        super().__init__(message)

    @property
    def kind(self) -> str:
        """Short stable name used in results and logs (``rate_limited``, ``timeout``, …)."""
        return _KINDS[type(self)]


class RateLimitedError(ProviderError):
    transient = True

    def __init__(
        self,
        message: str,
        *,
        model: str,
        status_code: int | None = 429,
        retries: int = 0,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, model=model, status_code=status_code, retries=retries)
        self.retry_after_s = retry_after_s


class ProviderTimeoutError(ProviderError):
    transient = True


class ProviderUnavailableError(ProviderError):
    transient = True


class ContextWindowExceededError(ProviderError):
    pass


class MalformedResponseError(ProviderError):
    pass


class ProviderRejectedError(ProviderError):
    pass


class LocalModelMissingError(ProviderError):
    """The local model is not in the catalogue, or not pulled yet (the message says how)."""


class LocalServerError(ProviderError):
    """The local model server could not start; ``log_tail`` holds the end of its log."""

    def __init__(self, message: str, *, model: str, log_tail: str = "", retries: int = 0) -> None:
        super().__init__(message, model=model, retries=retries)
        self.log_tail = log_tail


_KINDS: dict[type[ProviderError], str] = {
    ProviderError: "provider_error",
    RateLimitedError: "rate_limited",
    ProviderTimeoutError: "timeout",
    ProviderUnavailableError: "unavailable",
    ContextWindowExceededError: "context_window",
    MalformedResponseError: "malformed_response",
    ProviderRejectedError: "rejected",
    LocalModelMissingError: "model_missing",
    LocalServerError: "local_server",
}


class SolverError(EcoCascadeError):
    """A solver failed part-way for a reason other than a model call (an agent crashed, …),
    after spending ``spent_usd`` (``None``: unknown) and ``spent_usage``. ``kind`` names the
    original error, which is also the ``__cause__``."""

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        spent_usd: float | None = 0.0,
        spent_usage: Usage | None = None,
        retries: int = 0,
    ) -> None:
        self.kind = kind
        self.spent_usd = spent_usd
        self.spent_usage = spent_usage or Usage()
        self.retries = retries
        super().__init__(message)


class JudgeError(EcoCascadeError):
    """A judge could not reach a verdict. The cascade treats the answer as not accepted."""

    def __init__(self, message: str, *, judge: str, cost_usd: float | None = 0.0) -> None:
        self.judge = judge
        self.cost_usd = cost_usd  # what the failed judging still cost (None: unknown)
        super().__init__(message)


class SolutionStoreError(EcoCascadeError):
    """The solution store cannot be used right now (server down, files corrupt, …).

    The cascade logs it and answers without demonstrations; admin commands report it.
    """

    def __init__(self, message: str, *, location: str) -> None:
        self.location = location
        super().__init__(f"solution store {location}: {message}")


class CascadeFailedError(EcoCascadeError):
    """No tier produced an accepted answer. ``result`` holds every attempt that was made."""

    def __init__(self, result: CascadeResult) -> None:
        self.result = result
        tried = ", ".join(f"{a.model}: {a.verdict}" for a in result.attempts) or "no attempt"
        super().__init__(f"no tier produced an accepted answer ({result.stop_reason}; {tried})")


def format_validation_error(error: ValidationError) -> str:
    """One line per problem: ``tiers.0.price.input_per_mtok: Input should be ... (got 'abc')``."""
    lines = []
    for item in error.errors(include_url=False):
        loc = ".".join(str(part) for part in item["loc"]) or "(top level)"
        got = item.get("input")
        quiet = item["type"] in {"missing", "extra_forbidden"} or isinstance(got, dict | list)
        shown = "" if quiet else f" (got {got!r})"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field (check the spelling)"
        lines.append(f"{loc}: {message}{shown}")
    return "; ".join(lines)
