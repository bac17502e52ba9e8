"""Ground-truth scoring: did an answer actually solve the task? Used only by the eval, never by
the cascade (which has only its runtime judge)."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable
from typing import Any

from ecocascade.eval.scenario import (
    CheckSpec,
    ContainsCheck,
    ExactCheck,
    NumberCheck,
    PythonCheck,
    RegexCheck,
    TestsCheck,
)
from ecocascade.exceptions import ConfigError

__all__ = ["Scorer", "extract_numbers", "result_text"]

_NUMBER = re.compile(
    r"(?<![\w.])[-−]?\d{1,3}(?:,\d{3})+(?![\d,])(?:\.\d+)?"  # 1,234,567.5
    r"|(?<![\w.])[-−]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"  # 1234.5, 1.5e3
)
_END_PUNCTUATION = " \t\n\r.!?;:'\"`*"


def extract_numbers(text: str) -> list[float]:
    """The numbers written in ``text``, in order (with thousands separators, Unicode minus)."""
    found = []
    for match in _NUMBER.finditer(text):
        token = match.group().replace(",", "").replace("−", "-")
        try:
            found.append(float(token))
        except ValueError:
            continue
    return found


_CODE_THAT_RAN = re.compile(
    r"Code that ran:\n(?P<fence>`{3,})python\n.*?\n(?P=fence)\n*", re.DOTALL
)
_STATUS_LINE = re.compile(r"\n*\[execution: [^\]\n]*\]\s*$")


def result_text(answer: str) -> str:
    """What a code-writing solver's answer says and printed, without the code that ran and the
    status line (so the numbers in the code, or its exit code, are never scored as the answer).
    Any other answer is returned unchanged."""
    if not _STATUS_LINE.search(answer):
        return answer
    return _STATUS_LINE.sub("", _CODE_THAT_RAN.sub("", answer)).strip()


def _normal(text: str, case_sensitive: bool) -> str:
    text = unicodedata.normalize("NFKC", text).strip(_END_PUNCTUATION)
    text = " ".join(text.split())
    return text if case_sensitive else text.casefold()


class Scorer:
    """Scores answers against one check. Build once per task (compiles patterns and Python)."""

    def __init__(self, check: CheckSpec) -> None:
        self.check = check
        self._python: Callable[[str], Any] | None = None
        if isinstance(check, PythonCheck):
            namespace: dict[str, Any] = {}
            try:
                exec(compile(check.python, "<scenario check>", "exec"), namespace)
            except Exception as error:
                raise ConfigError(f"the check failed to load: {error!r}", where="check") from None
            self._python = namespace["check"]

    async def __call__(self, answer: str | None) -> bool:
        correct, _ = await self.score(answer)
        return correct

    async def score(self, answer: str | None) -> tuple[bool, str | None]:
        """Whether ``answer`` is right, and why not if the check itself failed: a check that
        raises on odd output scores it wrong (not the eval) and its error is kept."""
        try:
            return await self._correct(answer), None
        except Exception as error:
            return False, f"{type(error).__name__}: {error}"

    async def _correct(self, answer: str | None) -> bool:
        if answer is None or not answer.strip():
            return False
        check = self.check
        if not isinstance(check, TestsCheck):
            answer = result_text(answer)
        if isinstance(check, ExactCheck):
            return _normal(answer, check.case_sensitive) == _normal(
                check.exact, check.case_sensitive
            )
        if isinstance(check, ContainsCheck):
            return _contains(answer, check)
        if isinstance(check, RegexCheck):
            return re.search(check.regex, answer, re.IGNORECASE if check.flags else 0) is not None
        if isinstance(check, NumberCheck):
            numbers = extract_numbers(answer)
            if not numbers:
                return False
            picked = {"first": numbers[:1], "last": numbers[-1:], "any": numbers}[check.pick]
            return any(math.isclose(n, check.number, abs_tol=check.tolerance) for n in picked)
        if isinstance(check, PythonCheck):
            assert self._python is not None
            return bool(self._python(answer))
        if isinstance(check, TestsCheck):
            return await _passes_tests(answer, check)
        raise AssertionError(f"unhandled check {check!r}")


def _contains(answer: str, check: ContainsCheck) -> bool:
    texts = [check.contains] if isinstance(check.contains, str) else check.contains
    flags = 0 if check.case_sensitive else re.IGNORECASE
    for text in texts:
        if check.word:
            pattern = r"(?<!\w)" + re.escape(text.strip()) + r"(?!\w)"
            if re.search(pattern, answer, flags):
                return True
        elif (text in answer) if check.case_sensitive else (text.casefold() in answer.casefold()):
            return True
    return False


async def _passes_tests(answer: str, check: TestsCheck) -> bool:
    from ecocascade.sandbox import run_python
    from ecocascade.text import extract_python_code

    code = extract_python_code(answer)
    if code is None:
        return False
    result = await run_python(
        f"{code}\n\n{check.tests}\n", timeout_s=check.timeout_s, network=check.network
    )
    return result.ok
