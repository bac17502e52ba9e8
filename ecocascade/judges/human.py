"""EcoAssistant's user feedback: a person says whether the answer is good."""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from ecocascade.exceptions import JudgeError, JudgeUnavailableError
from ecocascade.types import JudgeContext, Verdict

__all__ = ["HumanJudge"]


class HumanJudge:
    """Shows the query and answer on a terminal and asks ``Accept? [y/n]``.

    Refuses to run when its input is not a terminal (a pipe, CI, a server) — it raises
    :class:`JudgeUnavailableError` instead of blocking forever. Pass ``require_tty=False`` with
    your own ``input``/``output`` streams to drive it from code.
    """

    name = "human"

    def __init__(
        self,
        *,
        input: TextIO | None = None,
        output: TextIO | None = None,
        require_tty: bool = True,
        max_tries: int = 3,
    ) -> None:
        self._input = input
        self._output = output
        self.require_tty = require_tty
        self.max_tries = max_tries

    def check_available(self) -> None:
        """Raise :class:`JudgeUnavailableError` if there is no terminal to ask on."""
        stream = self._input or sys.stdin
        if self.require_tty and (stream is None or not stream.isatty()):
            raise JudgeUnavailableError(
                "the human judge needs an interactive terminal, but stdin is not a TTY;"
                " use another judge (llm, exec, contains) in scripts and CI",
                where="judge: human",
            )

    async def judge(self, query: str, answer: str, context: JudgeContext | None = None) -> Verdict:
        self.check_available()
        return await asyncio.to_thread(self._ask, query, answer)

    def _ask(self, query: str, answer: str) -> Verdict:
        inp, out = self._input or sys.stdin, self._output or sys.stderr
        out.write(f"\n── query ──\n{query}\n── answer ──\n{answer}\n")
        for _ in range(self.max_tries):
            out.write("Accept this answer? [y/n] ")
            out.flush()
            line = inp.readline()
            if not line:
                raise JudgeError("the terminal closed before the human answered", judge=self.name)
            reply = line.strip().lower()
            if reply in {"y", "yes"}:
                return Verdict(True, "accepted by a human", judge=self.name)
            if reply in {"n", "no"}:
                return Verdict(False, "rejected by a human", judge=self.name)
        raise JudgeError(f"no y/n answer after {self.max_tries} tries", judge=self.name)
