"""Solvers a scenario can name, built from its ``solver`` section."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ecocascade.exceptions import ConfigError

if TYPE_CHECKING:
    from ecocascade.agents.code import CodeSolver
    from ecocascade.eval.scenario import Scenario

__all__ = ["code_solver"]


def code_solver(scenario: Scenario) -> CodeSolver:
    """The EcoAssistant-style code-writing agent, with the scenario's support files beside the
    code and its secrets read from the environment (the model only ever sees their names)."""
    from ecocascade.agents.code import CodeSolver
    from ecocascade.eval.scenario import CodeSolverSpec

    spec = scenario.solver
    assert isinstance(spec, CodeSolverSpec)
    missing = [name for name in spec.secrets if not os.environ.get(name)]
    if missing:
        raise ConfigError(
            f"the scenario's code needs {', '.join(missing)} in the environment"
            " (any value works for the offline tool APIs the built-in scenarios ship)",
            where="solver.secrets",
        )
    return CodeSolver(
        max_turns=spec.max_turns,
        timeout_s=spec.timeout_s,
        memory_mb=spec.memory_mb,
        files=[scenario.resolve_path(name) for name in spec.files],
        secrets={name: os.environ[name] for name in spec.secrets},
        network=spec.network,
    )
