"""Map LiteLLM's exceptions to ours — by exception *type*, never by message text."""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from typing import Any

from ecocascade._env import import_litellm
from ecocascade.exceptions import (
    ContextWindowExceededError,
    MalformedResponseError,
    ProviderError,
    ProviderRejectedError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitedError,
)

__all__ = ["map_provider_error", "retry_after_seconds"]


def retry_after_seconds(exc: BaseException) -> float | None:
    """The provider's ``Retry-After`` (seconds or HTTP date) if the exception carries one."""
    for headers in _headers_of(exc):
        value = headers.get("retry-after-ms")
        if value is not None:
            try:
                return max(0.0, float(value) / 1000)
            except ValueError:
                pass
        value = headers.get("retry-after")
        if value is None:
            continue
        try:
            return max(0.0, float(value))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(value) if value else None
            if parsed is not None:
                return max(0.0, parsed.timestamp() - time.time())
    return None


def _headers_of(exc: BaseException) -> list[Any]:
    found = []
    response = getattr(exc, "response", None)
    if response is not None and getattr(response, "headers", None) is not None:
        found.append(response.headers)
    litellm_headers = getattr(exc, "litellm_response_headers", None)
    if litellm_headers is not None:
        found.append(litellm_headers)
    return found


def map_provider_error(exc: BaseException, *, model: str, retries: int = 0) -> ProviderError | None:
    """Translate an exception raised by a LiteLLM call; ``None`` if it is not a provider error."""
    if isinstance(exc, ProviderError):
        return exc
    litellm = import_litellm()
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    detail = getattr(exc, "message", None) or str(exc)
    status_part = f"HTTP {status}: " if status else ""
    message = f"{model}: {type(exc).__name__}: {status_part}{_short(detail)}"
    common: dict[str, Any] = {"model": model, "status_code": status, "retries": retries}

    # LiteLLM reports a 200 with an unparseable body, and a dropped connection, as a 500
    # InternalServerError; the exception chain still holds the real cause, so look there first.
    if _chain_has(exc, json.JSONDecodeError):
        return MalformedResponseError(message, **common)
    import openai

    if not isinstance(exc, litellm.Timeout) and _chain_has(exc, openai.APIConnectionError):
        return ProviderUnavailableError(message, **common)

    # Order matters: ContextWindowExceededError is a BadRequestError, Timeout an APIConnectionError.
    if isinstance(exc, litellm.ContextWindowExceededError):
        return ContextWindowExceededError(message, **common)
    if isinstance(exc, litellm.RateLimitError):
        return RateLimitedError(message, retry_after_s=retry_after_seconds(exc), **common)
    if isinstance(exc, litellm.Timeout | asyncio.TimeoutError | TimeoutError):
        return ProviderTimeoutError(message, **common)
    if isinstance(exc, litellm.APIConnectionError):
        return ProviderUnavailableError(message, **common)
    if isinstance(
        exc,
        litellm.InternalServerError | litellm.ServiceUnavailableError | litellm.BadGatewayError,
    ):
        return ProviderUnavailableError(message, **common)
    if isinstance(exc, litellm.APIResponseValidationError | litellm.JSONSchemaValidationError):
        return MalformedResponseError(message, **common)
    if isinstance(
        exc,
        litellm.BadRequestError
        | litellm.AuthenticationError
        | litellm.PermissionDeniedError
        | litellm.NotFoundError
        | litellm.UnprocessableEntityError
        | litellm.UnsupportedParamsError,
    ):
        return ProviderRejectedError(message, **common)
    if isinstance(exc, litellm.APIError):
        if status is not None and status >= 500:
            return ProviderUnavailableError(message, **common)
        if status is not None and 400 <= status < 500:
            return ProviderRejectedError(message, **common)
        # A 200 whose body was not a usable completion ends up here (LiteLLM wraps the parse
        # failure in a bare APIError).
        return MalformedResponseError(message, **common)
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return ProviderTimeoutError(message, **common)
    if isinstance(exc, httpx.TransportError | ConnectionError):
        return ProviderUnavailableError(message, **common)
    return None


def _chain_has(
    exc: BaseException, kind: type[BaseException] | tuple[type[BaseException], ...]
) -> bool:
    """True if ``exc`` or anything in its ``__cause__``/``__context__`` chain is a ``kind``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _short(detail: object, limit: int = 300) -> str:
    text = " ".join(str(detail).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
