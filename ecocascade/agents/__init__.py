"""AutoGen integration: LiteLLM-backed model clients, the cascade as a model client, and agents
(any agent or team, or the ready code-writing team) as the cascade's solver.

Names are imported lazily, so ``import ecocascade.agents`` does not pull in AutoGen or LiteLLM.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "AutoGenSolver": "ecocascade.agents.solver",
    "CallJudge": "ecocascade.agents.cascade_client",
    "CascadeChatCompletionClient": "ecocascade.agents.cascade_client",
    "CodeRun": "ecocascade.agents.code",
    "CodeRunJudge": "ecocascade.judges.execution",
    "CodeSolver": "ecocascade.agents.code",
    "LiteLLMChatCompletionClient": "ecocascade.agents.client",
    "SandboxCodeExecutor": "ecocascade.agents.code",
    "WellFormedReply": "ecocascade.judges.reply",
}

__all__ = [
    "AutoGenSolver",
    "CallJudge",
    "CascadeChatCompletionClient",
    "CodeRun",
    "CodeRunJudge",
    "CodeSolver",
    "LiteLLMChatCompletionClient",
    "SandboxCodeExecutor",
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
    from ecocascade.agents.cascade_client import CallJudge, CascadeChatCompletionClient
    from ecocascade.agents.client import LiteLLMChatCompletionClient
    from ecocascade.agents.code import CodeRun, CodeSolver, SandboxCodeExecutor
    from ecocascade.agents.solver import AutoGenSolver
    from ecocascade.judges.execution import CodeRunJudge
    from ecocascade.judges.reply import WellFormedReply
