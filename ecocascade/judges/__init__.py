"""Judges decide whether an answer resolves the query — the cascade's success criterion."""

from ecocascade.judges.check import CheckJudge, ContainsJudge, RegexJudge
from ecocascade.judges.combinators import AllOf, AnyOf
from ecocascade.judges.execution import ExecutionJudge
from ecocascade.judges.human import HumanJudge
from ecocascade.judges.llm import LLMJudge

__all__ = [
    "AllOf",
    "AnyOf",
    "CheckJudge",
    "ContainsJudge",
    "ExecutionJudge",
    "HumanJudge",
    "LLMJudge",
    "RegexJudge",
]
