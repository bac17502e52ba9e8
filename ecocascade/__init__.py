"""ecocascade: cheapest model first, judge, escalate — and remember what worked.

The public names below are imported lazily, so ``import ecocascade`` stays fast and never pulls
in LiteLLM, torch or Chroma until they are used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # controller
    "Attempt": "ecocascade.controller.result",
    "Cascade": "ecocascade.controller.cascade",
    "CascadeResult": "ecocascade.controller.result",
    "ChatSolver": "ecocascade.controller.solvers",
    "DemoSettings": "ecocascade.controller.demos",
    "DemoTemplate": "ecocascade.controller.demos",
    # models
    "Price": "ecocascade.models.tier",
    "RetryPolicy": "ecocascade.models.tier",
    "Tier": "ecocascade.models.tier",
    "TierClient": "ecocascade.models.client",
    # judges
    "AgreementJudge": "ecocascade.judges.agreement",
    "AllOf": "ecocascade.judges.combinators",
    "AnyOf": "ecocascade.judges.combinators",
    "CheckJudge": "ecocascade.judges.check",
    "ContainsJudge": "ecocascade.judges.check",
    "CodeRunJudge": "ecocascade.judges.execution",
    "ExecutionJudge": "ecocascade.judges.execution",
    "HumanJudge": "ecocascade.judges.human",
    "LLMJudge": "ecocascade.judges.llm",
    "LearnedJudge": "ecocascade.judges.learned",
    "RegexJudge": "ecocascade.judges.check",
    # routing and replay of recorded answers
    "HistoryRouter": "ecocascade.routing",
    "RecordedDataset": "ecocascade.replay.data",
    "Router": "ecocascade.routing",
    "SolutionStoreRouter": "ecocascade.routing",
    "read_recorded": "ecocascade.replay.data",
    "replay_tier": "ecocascade.replay.provider",
    # response cache
    "CacheHit": "ecocascade.cache.base",
    "ResponseCache": "ecocascade.cache.cache",
    # solution store
    "LiteLLMEmbedder": "ecocascade.store.embedders",
    "SentenceTransformerEmbedder": "ecocascade.store.embedders",
    "SolutionRecord": "ecocascade.store.records",
    "SolutionStore": "ecocascade.store.chroma",
    # AutoGen model clients
    "CascadeChatCompletionClient": "ecocascade.agents.cascade_client",
    "LiteLLMChatCompletionClient": "ecocascade.agents.client",
    # AutoGen agents as solvers
    "AutoGenSolver": "ecocascade.agents.solver",
    "CodeSolver": "ecocascade.agents.code",
    # scenario evals and record/replay of model responses
    "Scenario": "ecocascade.eval.scenario",
    "Tape": "ecocascade.models.tape",
    "load_scenario": "ecocascade.eval.scenario",
    "run_eval": "ecocascade.eval.runner",
    # config
    "CascadeConfig": "ecocascade.config.schema",
    "load_config": "ecocascade.config.loader",
    # contracts and values
    "Demonstration": "ecocascade.types",
    "Embedder": "ecocascade.types",
    "Judge": "ecocascade.types",
    "Solution": "ecocascade.types",
    "Solver": "ecocascade.types",
    "Task": "ecocascade.types",
    "Usage": "ecocascade.types",
    "Verdict": "ecocascade.types",
    # errors
    "CascadeFailedError": "ecocascade.exceptions",
    "ConfigError": "ecocascade.exceptions",
    "EcoCascadeError": "ecocascade.exceptions",
    "JudgeError": "ecocascade.exceptions",
    "ProviderError": "ecocascade.exceptions",
    "SolutionStoreError": "ecocascade.exceptions",
    "SolverError": "ecocascade.exceptions",
}

__all__ = [
    "AgreementJudge",
    "AllOf",
    "AnyOf",
    "Attempt",
    "AutoGenSolver",
    "CacheHit",
    "Cascade",
    "CascadeChatCompletionClient",
    "CascadeConfig",
    "CascadeFailedError",
    "CascadeResult",
    "ChatSolver",
    "CheckJudge",
    "CodeRunJudge",
    "CodeSolver",
    "ConfigError",
    "ContainsJudge",
    "DemoSettings",
    "DemoTemplate",
    "Demonstration",
    "EcoCascadeError",
    "Embedder",
    "ExecutionJudge",
    "HistoryRouter",
    "HumanJudge",
    "Judge",
    "JudgeError",
    "LLMJudge",
    "LearnedJudge",
    "LiteLLMChatCompletionClient",
    "LiteLLMEmbedder",
    "Price",
    "ProviderError",
    "RecordedDataset",
    "RegexJudge",
    "ResponseCache",
    "RetryPolicy",
    "Router",
    "Scenario",
    "SentenceTransformerEmbedder",
    "Solution",
    "SolutionRecord",
    "SolutionStore",
    "SolutionStoreError",
    "SolutionStoreRouter",
    "Solver",
    "SolverError",
    "Tape",
    "Task",
    "Tier",
    "TierClient",
    "Usage",
    "Verdict",
    "__version__",
    "load_config",
    "load_scenario",
    "read_recorded",
    "replay_tier",
    "run_eval",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ecocascade' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from ecocascade.agents.cascade_client import CascadeChatCompletionClient
    from ecocascade.agents.client import LiteLLMChatCompletionClient
    from ecocascade.agents.code import CodeSolver
    from ecocascade.agents.solver import AutoGenSolver
    from ecocascade.cache.base import CacheHit
    from ecocascade.cache.cache import ResponseCache
    from ecocascade.config.loader import load_config
    from ecocascade.config.schema import CascadeConfig
    from ecocascade.controller.cascade import Cascade
    from ecocascade.controller.demos import DemoSettings, DemoTemplate
    from ecocascade.controller.result import Attempt, CascadeResult
    from ecocascade.controller.solvers import ChatSolver
    from ecocascade.eval.runner import run_eval
    from ecocascade.eval.scenario import Scenario, load_scenario
    from ecocascade.exceptions import (
        CascadeFailedError,
        ConfigError,
        EcoCascadeError,
        JudgeError,
        ProviderError,
        SolutionStoreError,
        SolverError,
    )
    from ecocascade.judges.agreement import AgreementJudge
    from ecocascade.judges.check import CheckJudge, ContainsJudge, RegexJudge
    from ecocascade.judges.combinators import AllOf, AnyOf
    from ecocascade.judges.execution import CodeRunJudge, ExecutionJudge
    from ecocascade.judges.human import HumanJudge
    from ecocascade.judges.learned import LearnedJudge
    from ecocascade.judges.llm import LLMJudge
    from ecocascade.models.client import TierClient
    from ecocascade.models.tape import Tape
    from ecocascade.models.tier import Price, RetryPolicy, Tier
    from ecocascade.replay.data import RecordedDataset, read_recorded
    from ecocascade.replay.provider import replay_tier
    from ecocascade.routing import HistoryRouter, Router, SolutionStoreRouter
    from ecocascade.store.chroma import SolutionStore
    from ecocascade.store.embedders import LiteLLMEmbedder, SentenceTransformerEmbedder
    from ecocascade.store.records import SolutionRecord
    from ecocascade.types import (
        Demonstration,
        Embedder,
        Judge,
        Solution,
        Solver,
        Task,
        Usage,
        Verdict,
    )
