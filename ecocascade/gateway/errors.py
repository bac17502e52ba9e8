"""HTTP errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.

The OpenAI SDKs turn the status into their exception classes (401 ``AuthenticationError``,
403 ``PermissionDeniedError``, 429 ``RateLimitError``, 5xx ``InternalServerError``, …) and the
body into ``error.body``; clients that retry do so on 429 and 5xx only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["GatewayError", "error_body", "error_type_for"]


class GatewayError(Exception):
    """An error to answer with ``status`` and an OpenAI error body. ``headers`` go on the
    response (e.g. ``Retry-After``); ``extra`` adds fields to the ``error`` object."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or error_type_for(status)
        self.code = code
        self.param = param
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def body(self) -> dict[str, Any]:
        return error_body(
            self.message, type=self.type, code=self.code, param=self.param, extra=self.extra
        )


def error_body(
    message: str,
    *,
    type: str,
    code: str | None = None,
    param: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "error": {"message": message, "type": type, "param": param, "code": code, **(extra or {})}
    }


def error_type_for(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 404:
        return "not_found_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"
