"""AutoGen integration: LiteLLM-backed model clients, and the cascade as a model client.

Names are imported lazily, so ``import ecocascade.agents`` does not pull in AutoGen or LiteLLM.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "CallJudge": "ecocascade.agents.cascade_client",
    "CascadeChatCompletionClient": "ecocascade.agents.cascade_client",
    "LiteLLMChatCompletionClient": "ecocascade.agents.client",
    "WellFormedReply": "ecocascade.agents.cascade_client",
}

__all__ = [
    "CallJudge",
    "CascadeChatCompletionClient",
    "LiteLLMChatCompletionClient",
    "WellFormedReply",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ecocascade.agents' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from ecocascade.agents.cascade_client import (
        CallJudge,
        CascadeChatCompletionClient,
        WellFormedReply,
    )
    from ecocascade.agents.client import LiteLLMChatCompletionClient
