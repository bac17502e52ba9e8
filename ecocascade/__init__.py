"""ecocascade: cheapest model first, judge, escalate — and remember what worked.

The core only: the controller, tiers, judges, the solution store, the cache, routers, config,
the contracts and the errors. Integrations live in their subpackages: ``ecocascade.agents``
(AutoGen), ``ecocascade.eval`` (scenario evals), ``ecocascade.replay`` and ``ecocascade.tuning``
(recorded answers, the tuner), ``ecocascade.testing`` (test doubles).

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
    "WellFormedReply": "ecocascade.judges.reply",
    # routing
    "HistoryRouter": "ecocascade.routing",
    "Router": "ecocascade.routing",
    "SolutionStoreRouter": "ecocascade.routing",
    # response cache
    "CacheHit": "ecocascade.cache.base",
    "ResponseCache": "ecocascade.cache.cache",
    # solution store
    "LiteLLMEmbedder": "ecocascade.store.embedders",
    "SentenceTransformerEmbedder": "ecocascade.store.embedders",
    "SolutionRecord": "ecocascade.store.records",
    "SolutionStore": "ecocascade.store.chroma",
    # record/replay of model responses
    "Tape": "ecocascade.models.tape",
    # config
    "CascadeConfig": "ecocascade.config.schema",
    "load_config": "ecocascade.config.loader",
    # contracts and values
    "ChatModel": "ecocascade.types",
    "ChatRequest": "ecocascade.types",
    "JudgeContext": "ecocascade.types",
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
    "CacheHit",
    "Cascade",
    "CascadeConfig",
    "CascadeFailedError",
    "CascadeResult",
    "ChatModel",
    "ChatRequest",
    "ChatSolver",
    "CheckJudge",
    "CodeRunJudge",
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
    "JudgeContext",
    "JudgeError",
    "LLMJudge",
    "LearnedJudge",
    "LiteLLMEmbedder",
    "Price",
    "ProviderError",
    "RegexJudge",
    "ResponseCache",
    "RetryPolicy",
    "Router",
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
    "WellFormedReply",
    "__version__",
    "load_config",
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
    from ecocascade.cache.base import CacheHit
    from ecocascade.cache.cache import ResponseCache
    from ecocascade.config.loader import load_config
    from ecocascade.config.schema import CascadeConfig
    from ecocascade.controller.cascade import Cascade
    from ecocascade.controller.demos import DemoSettings, DemoTemplate
    from ecocascade.controller.result import Attempt, CascadeResult
    from ecocascade.controller.solvers import ChatSolver
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
    from ecocascade.judges.reply import WellFormedReply
    from ecocascade.models.client import TierClient
    from ecocascade.models.tape import Tape
    from ecocascade.models.tier import Price, RetryPolicy, Tier
    from ecocascade.routing import HistoryRouter, Router, SolutionStoreRouter
    from ecocascade.store.chroma import SolutionStore
    from ecocascade.store.embedders import LiteLLMEmbedder, SentenceTransformerEmbedder
    from ecocascade.store.records import SolutionRecord
    from ecocascade.types import (
        ChatModel,
        ChatRequest,
        Demonstration,
        Embedder,
        Judge,
        JudgeContext,
        Solution,
        Solver,
        Task,
        Usage,
        Verdict,
    )
