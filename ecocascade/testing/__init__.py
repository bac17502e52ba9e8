"""Test doubles that ship with ecocascade, so your tests need no paid model.

``ScriptedModel`` and ``FunctionModel`` are in-process chat models: tiers that answer from a
script or a function, with no HTTP (see :mod:`ecocascade.testing.models`). ``FakeLLMServer`` is
an OpenAI-compatible HTTP server on loopback that answers from per-model scripts and injects
faults (rate limits, timeouts, malformed bodies, dropped connections), so the real LiteLLM code
path runs.
"""

from __future__ import annotations

from ecocascade.testing.models import FunctionModel, ModelCall, ModelReply, ScriptedModel
from ecocascade.testing.server import (
    FakeLLMServer,
    Fault,
    RecordedRequest,
    Reply,
    ReplySpec,
    ToolCall,
)

__all__ = [
    "FakeLLMServer",
    "Fault",
    "FunctionModel",
    "ModelCall",
    "ModelReply",
    "RecordedRequest",
    "Reply",
    "ReplySpec",
    "ScriptedModel",
    "ToolCall",
]
