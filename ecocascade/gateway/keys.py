"""Stable hashes of requests: the single-flight key and the conversation (sticky-tier) key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from ecocascade.types import ChatRequest, Message, message_text

__all__ = ["conversation_key", "flight_key"]


def _digest(value: Any) -> str:
    raw = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _arguments(text: Any) -> Any:
    if isinstance(text, str):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _canonical(message: Message) -> list[Any]:
    """What identifies a message across turns, ignoring fields SDKs add or drop on echo
    (``refusal: null``, ``annotations: []``, call ids' absence, argument spacing)."""
    calls = [
        [
            (c.get("function") or {}).get("name"),
            _arguments((c.get("function") or {}).get("arguments")),
        ]
        for c in (message.get("tool_calls") or ())
        if isinstance(c, Mapping)
    ]
    return [message.get("role"), message_text(message), calls, message.get("tool_call_id")]


def conversation_key(cascade: str, messages: Iterable[Message]) -> str:
    """The key of a conversation so far: the next turn's earlier messages hash to it."""
    return _digest([cascade, [_canonical(m) for m in messages]])


def flight_key(cascade: str, request: ChatRequest, min_tier: int) -> str:
    """Identical requests to the same cascade from the same start tier share one run."""
    return _digest(
        [
            cascade,
            min_tier,
            [dict(m) for m in request.messages],
            [dict(t) for t in request.tools],
            request.tool_choice,
            request.response_format,
            dict(request.params),
        ]
    )
