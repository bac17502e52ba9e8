"""The curated public surface: complete, importable, and cheap to import."""

from __future__ import annotations

import subprocess
import sys

import ecocascade
from ecocascade import exceptions


def test_all_lists_exactly_the_lazy_exports() -> None:
    assert sorted(ecocascade.__all__) == sorted([*ecocascade._EXPORTS, "__version__"])


def test_every_public_name_resolves() -> None:
    for name in ecocascade.__all__:
        assert getattr(ecocascade, name) is not None, name


def test_importing_the_package_loads_no_heavy_dependency() -> None:
    code = (
        "import sys, ecocascade;"
        "heavy = {'litellm', 'torch', 'chromadb', 'autogen_agentchat', 'sentence_transformers'};"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_caller_mistakes_and_runtime_failures_are_separate_branches() -> None:
    assert issubclass(exceptions.ConfigError, ValueError)
    assert issubclass(exceptions.JudgeUnavailableError, exceptions.ConfigError)
    runtime = (exceptions.ProviderError, exceptions.JudgeError, exceptions.CascadeFailedError)
    for kind in runtime:
        assert not issubclass(kind, exceptions.ConfigError)
        assert issubclass(kind, exceptions.EcoCascadeError)


def test_every_provider_error_has_a_stable_kind() -> None:
    kinds = {cls(message="m", model="x").kind for cls in exceptions.ProviderError.__subclasses__()}
    assert kinds == {
        "rate_limited", "timeout", "unavailable", "context_window", "malformed_response",
        "rejected", "model_missing", "local_server",
    }  # fmt: skip


def test_the_top_level_exports_the_core_and_integrations_stay_in_their_subpackages() -> None:
    import ecocascade.agents
    import ecocascade.eval.runner
    import ecocascade.replay

    integrations = {
        "CascadeChatCompletionClient": ecocascade.agents,
        "LiteLLMChatCompletionClient": ecocascade.agents,
        "AutoGenSolver": ecocascade.agents,
        "CodeSolver": ecocascade.agents,
        "run_eval": ecocascade.eval.runner,
        "RecordedDataset": ecocascade.replay,
    }
    for name, home in integrations.items():
        assert name not in ecocascade.__all__ and not hasattr(ecocascade, name), name
        assert getattr(home, name) is not None, name
    for core in ("Cascade", "ChatRequest", "JudgeContext", "ChatModel", "WellFormedReply"):
        assert core in ecocascade.__all__
