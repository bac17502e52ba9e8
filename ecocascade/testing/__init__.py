"""Test doubles that ship with ecocascade, so your tests run the real LiteLLM code path.

``FakeLLMServer`` is an OpenAI-compatible HTTP server on loopback that answers from per-model
scripts and injects faults (rate limits, timeouts, malformed bodies, dropped connections).
"""

from __future__ import annotations

from ecocascade.testing.server import (
    FakeLLMServer,
    Fault,
    RecordedRequest,
    Reply,
    ReplySpec,
    ToolCall,
)

__all__ = ["FakeLLMServer", "Fault", "RecordedRequest", "Reply", "ReplySpec", "ToolCall"]
