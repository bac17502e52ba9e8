"""Judges of code: run the answer's Python, or read how the code-writing agent's last run ended.

:class:`ExecutionJudge` runs the answer's last Python block in the sandbox itself.
:class:`CodeRunJudge` runs nothing: it reads the run-status line that
:class:`~ecocascade.agents.code.CodeSolver` appends to every answer (:func:`run_status_line`),
so the code is judged by the run that actually happened, with its secrets and support files,
and is not executed a second time.
"""

from __future__ import annotations

import re
import signal

from ecocascade.exceptions import ConfigError, JudgeError
from ecocascade.sandbox import ExecutionResult, check_limits, run_python
from ecocascade.text import extract_python_code
from ecocascade.types import JudgeContext, Verdict

__all__ = ["CodeRunJudge", "ExecutionJudge", "run_status_line"]

_EXCERPT_CHARS = 200


class ExecutionJudge:
    """Accepts an answer whose last Python code block exits 0 in the sandbox.

    With ``expected_output``, the stripped standard output must also contain the stripped expected
    text. The code runs in :func:`ecocascade.sandbox.run_python` (fresh temp dir, scrubbed
    environment, ``timeout_s`` wall clock, ``memory_mb`` address space, no network unless
    ``network``); every reason after a run ends with the isolation that ran, e.g.
    ``"exit 0 [sandbox: bwrap]"``. Stateless, so one instance can judge many answers concurrently.
    """

    def __init__(
        self,
        *,
        timeout_s: float = 10.0,
        expected_output: str | None = None,
        memory_mb: int | None = 512,
        network: bool = False,
        name: str = "exec",
    ) -> None:
        check_limits(timeout_s, memory_mb)
        if expected_output is not None and not expected_output.strip():
            raise ConfigError(
                "is blank; pass None to skip the output check", where="expected_output"
            )
        if not name:
            raise ConfigError("must not be empty", where="name")
        self._timeout_s = timeout_s
        self._expected = expected_output.strip() if expected_output is not None else None
        self._memory_mb = memory_mb
        self._network = network
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    async def judge(self, query: str, answer: str, context: JudgeContext | None = None) -> Verdict:
        code = extract_python_code(answer)
        if code is None:
            return self._verdict(False, "no Python code block in the answer")
        if not code.strip():
            return self._verdict(False, "the Python code block is empty")
        try:
            result = await run_python(
                code, timeout_s=self._timeout_s, memory_mb=self._memory_mb, network=self._network
            )
        except OSError as exc:
            raise JudgeError(f"could not run the code: {exc}", judge=self._name) from exc
        accepted, reason = self._assess(result)
        return self._verdict(accepted, f"{reason} [sandbox: {result.isolation}]")

    def _assess(self, result: ExecutionResult) -> tuple[bool, str]:
        if result.timed_out:
            return False, f"timed out after {self._timeout_s:g}s"
        if result.exit_code is None or result.exit_code < 0:
            return False, f"killed by {_signal_name(result.exit_code)}"
        if result.exit_code != 0:
            last_line = _last_line(result.stderr)
            detail = f": {_excerpt(last_line)}" if last_line else ""
            return False, f"exit code {result.exit_code}{detail}"
        stdout = result.stdout.strip()
        if self._expected is not None and self._expected not in stdout:
            return False, (
                f"exit 0 but output lacks expected text {_excerpt(self._expected, 80)!r}"
                f" (stdout: {_excerpt(stdout, 80)!r})"
            )
        return True, f"exit 0; stdout: {_excerpt(stdout)!r}" if stdout else "exit 0"

    def _verdict(self, accepted: bool, reason: str) -> Verdict:
        return Verdict(accepted=accepted, reason=reason, judge=self._name, cost_usd=0.0)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _excerpt(text: str, limit: int = _EXCERPT_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _signal_name(exit_code: int | None) -> str:
    if exit_code is None:
        return "an unknown signal"
    try:
        return signal.Signals(-exit_code).name
    except ValueError:
        return f"signal {-exit_code}"


_STATUS = re.compile(
    r"^\[execution: (?:exit code (?P<code>-?\d+)|(?P<timeout>timed out after [^\]]+)"
    r"|(?P<none>no code ran))\]$"
)


def run_status_line(exit_code: int | None, *, timed_out: bool = False, timeout_s: float = 0) -> str:
    """The line a code-writing solver ends its answer with: how its last code run ended.

    ``exit_code=None`` without ``timed_out`` means no code ran at all.
    """
    if timed_out:
        return f"[execution: timed out after {timeout_s:g}s]"
    if exit_code is None:
        return "[execution: no code ran]"
    return f"[execution: exit code {exit_code}]"


class CodeRunJudge:
    """Accepts an answer whose recorded last code run exited 0.

    Reads the answer's final line (:func:`run_status_line`). It trusts that line: the judge only
    sees text, so it cannot tell a status line the solver wrote from one a model wrote. With
    :class:`~ecocascade.agents.code.CodeSolver` the line cannot be forged, because that solver
    appends it after everything the model said, from its own record of the last run. Behind any
    other solver (one that returns the model's text as the answer) a model that ends its reply
    with ``[execution: exit code 0]`` is accepted: use this judge only with CodeSolver, or a
    solver of your own that writes the line itself. An answer without the line is rejected.
    Combine with an LLM or human judge for "ran cleanly *and* answers the question":
    ``AllOf(CodeRunJudge(), LLMJudge(...))``.
    """

    def __init__(self, *, name: str = "code-run") -> None:
        if not name:
            raise ConfigError("must not be empty", where="name")
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    async def judge(self, query: str, answer: str, context: JudgeContext | None = None) -> Verdict:
        lines = [line.strip() for line in answer.splitlines() if line.strip()]
        status = _STATUS.match(lines[-1]) if lines else None
        if status is None:
            return self._verdict(False, "no recorded code run (not a code-writing solver's answer)")
        if status["none"]:
            return self._verdict(False, "no code ran")
        if status["timeout"]:
            return self._verdict(False, f"the last run {status['timeout']}")
        code = int(status["code"])
        if code != 0:
            how = f"killed by {_signal_name(code)}" if code < 0 else f"exit code {code}"
            return self._verdict(False, f"the last run failed: {how}")
        return self._verdict(True, "the last run exited 0")

    def _verdict(self, accepted: bool, reason: str) -> Verdict:
        return Verdict(accepted=accepted, reason=reason, judge=self._name, cost_usd=0.0)
