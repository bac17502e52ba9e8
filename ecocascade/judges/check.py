"""Judges that check the answer with plain code: a predicate, a substring, a pattern."""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable

from ecocascade.exceptions import ConfigError
from ecocascade.types import JudgeContext, Verdict

__all__ = ["CheckJudge", "ContainsJudge", "RegexJudge"]

Predicate = Callable[[str, str], "bool | Verdict | Awaitable[bool | Verdict]"]


class CheckJudge:
    """Accepts when ``fn(query, answer)`` is true. ``fn`` may be sync or async, and may return a
    full :class:`Verdict` to give its own reason."""

    def __init__(self, fn: Predicate, *, name: str | None = None) -> None:
        if not callable(fn):
            raise ConfigError(
                f"expected a callable (query, answer) -> bool, got {fn!r}", where="fn"
            )
        self._fn = fn
        self._name = name or f"check:{getattr(fn, '__name__', type(fn).__name__)}"

    @property
    def name(self) -> str:
        return self._name

    async def judge(self, query: str, answer: str, context: JudgeContext | None = None) -> Verdict:
        outcome = self._fn(query, answer)
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if isinstance(outcome, Verdict):
            return outcome
        accepted = bool(outcome)
        return Verdict(accepted, "check passed" if accepted else "check failed", judge=self.name)


class ContainsJudge:
    """Accepts when the answer contains ``text`` (case-insensitive unless asked otherwise)."""

    def __init__(self, text: str, *, case_sensitive: bool = False) -> None:
        if not isinstance(text, str) or not text:
            raise ConfigError("needs a non-empty string to look for", where="contains")
        self.text = text
        self.case_sensitive = case_sensitive

    @property
    def name(self) -> str:
        return f"contains:{self.text}"

    async def judge(self, query: str, answer: str, context: JudgeContext | None = None) -> Verdict:
        hay, needle = (
            (answer, self.text) if self.case_sensitive else (answer.lower(), self.text.lower())
        )
        if needle in hay:
            return Verdict(True, f"answer contains {self.text!r}", judge=self.name)
        return Verdict(False, f"answer lacks {self.text!r}", judge=self.name)


class RegexJudge:
    """Accepts when ``pattern`` matches somewhere in the answer (``re.search``)."""

    def __init__(self, pattern: str, *, flags: int = re.IGNORECASE) -> None:
        try:
            self._regex = re.compile(pattern, flags)
        except (re.error, TypeError) as error:
            raise ConfigError(f"not a valid regular expression: {error}", where="regex") from None
        self.pattern = pattern

    @property
    def name(self) -> str:
        return f"regex:{self.pattern}"

    async def judge(self, query: str, answer: str, context: JudgeContext | None = None) -> Verdict:
        if self._regex.search(answer):
            return Verdict(True, f"answer matches /{self.pattern}/", judge=self.name)
        return Verdict(False, f"answer does not match /{self.pattern}/", judge=self.name)
