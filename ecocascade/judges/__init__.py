"""Judges decide whether an answer resolves the query — the cascade's success criterion."""

from ecocascade.judges.agreement import AgreementJudge
from ecocascade.judges.check import CheckJudge, ContainsJudge, RegexJudge
from ecocascade.judges.combinators import AllOf, AnyOf
from ecocascade.judges.execution import ExecutionJudge
from ecocascade.judges.human import HumanJudge
from ecocascade.judges.learned import LearnedJudge
from ecocascade.judges.llm import LLMJudge
from ecocascade.judges.reply import (
    JsonReply,
    NonEmptyReply,
    PydanticReply,
    ValidToolCalls,
    WellFormedReply,
)

__all__ = [
    "AgreementJudge",
    "AllOf",
    "AnyOf",
    "CheckJudge",
    "ContainsJudge",
    "ExecutionJudge",
    "HumanJudge",
    "JsonReply",
    "LLMJudge",
    "LearnedJudge",
    "NonEmptyReply",
    "PydanticReply",
    "RegexJudge",
    "ValidToolCalls",
    "WellFormedReply",
]
