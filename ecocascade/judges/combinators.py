"""Combine judges: all must accept, or any may."""

from __future__ import annotations

from collections.abc import Sequence

from ecocascade.exceptions import ConfigError, JudgeError
from ecocascade.judging import ask_judge
from ecocascade.types import Judge, JudgeContext, Usage, Verdict, add_costs

__all__ = ["AllOf", "AnyOf"]


class _Combined:
    _joiner = ""

    def __init__(self, *judges: Judge) -> None:
        if not judges:
            raise ConfigError("needs at least one judge", where=type(self).__name__)
        for judge in judges:
            if not isinstance(judge, Judge):
                raise ConfigError(f"not a judge: {judge!r}", where=type(self).__name__)
        self.judges = judges

    @property
    def name(self) -> str:
        return "(" + self._joiner.join(j.name for j in self.judges) + ")"

    def _verdict(
        self, accepted: bool, verdicts: list[Verdict], errors: Sequence[JudgeError] = ()
    ) -> Verdict:
        usage = Usage()
        for v in verdicts:
            usage = usage + v.usage
        reasons = [f"{v.judge or '?'}: {v.reason}" for v in verdicts]
        reasons += [f"{e.judge}: undecided ({e})" for e in errors]
        return Verdict(
            accepted,
            "; ".join(reasons),
            judge=self.name,
            cost_usd=add_costs(*(v.cost_usd for v in verdicts), *(e.cost_usd for e in errors)),
            usage=usage,
        )

    def _undecided(self, verdicts: list[Verdict], errors: Sequence[JudgeError]) -> JudgeError:
        spent = add_costs(*(v.cost_usd for v in verdicts), *(e.cost_usd for e in errors))
        detail = "; ".join(f"{e.judge}: {e}" for e in errors)
        return JudgeError(
            f"{self.name} could not decide: {detail}", judge=self.name, cost_usd=spent
        )


class AllOf(_Combined):
    """Accepts only if every judge accepts. Stops at the first rejection, so put cheap judges
    (checks, execution) before expensive ones (LLM). A part that cannot decide makes the whole
    undecided (:class:`JudgeError`), with the cost spent so far."""

    _joiner = " & "

    async def judge(self, query: str, answer: str, context: JudgeContext | None = None) -> Verdict:
        verdicts: list[Verdict] = []
        for judge in self.judges:
            try:
                verdict = await ask_judge(judge, query, answer, context)
            except JudgeError as error:
                raise self._undecided(verdicts, [error]) from error
            verdicts.append(verdict)
            if not verdict.accepted:
                return self._verdict(False, verdicts)
        return self._verdict(True, verdicts)


class AnyOf(_Combined):
    """Accepts as soon as one judge accepts. A part that cannot decide is skipped; if none
    accepts and some could not decide, the whole is undecided (:class:`JudgeError`)."""

    _joiner = " | "

    async def judge(self, query: str, answer: str, context: JudgeContext | None = None) -> Verdict:
        verdicts: list[Verdict] = []
        errors: list[JudgeError] = []
        for judge in self.judges:
            try:
                verdict = await ask_judge(judge, query, answer, context)
            except JudgeError as error:
                errors.append(error)
                continue
            verdicts.append(verdict)
            if verdict.accepted:
                return self._verdict(True, verdicts, errors)
        if errors:
            raise self._undecided(verdicts, errors) from errors[-1]
        return self._verdict(False, verdicts)
