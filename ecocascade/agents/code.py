"""The EcoAssistant-style code-writing solver: an assistant writes Python, a sandbox runs it.

EcoAssistant paired a code-writing assistant with a user proxy that executed its code and sent
back the output, looping until the assistant was done. Here that is two real AutoGen agents in a
``RoundRobinGroupChat`` — an ``AssistantAgent`` and a ``CodeExecutorAgent`` — with ecocascade's
sandbox (:func:`~ecocascade.sandbox.run_python`) behind the executor
(:class:`SandboxCodeExecutor`, usable in any AutoGen app). Using AutoGen's own agents, rather
than a private loop, keeps the solver an ordinary team: the same transcript, termination and
message types as any other, and the executor can be reused elsewhere.

The answer the judge sees ends with the code that ran last, its (masked) output and a status
line (:func:`~ecocascade.judges.execution.run_status_line`) that
:class:`~ecocascade.judges.execution.CodeRunJudge` reads, so success is judged by the run that
actually happened. ``extract_python_code(answer)`` returns that code: it is what the solution
store records.

Secrets (API keys) never reach the model: it is told their *names*, reads them from the
environment (``os.environ["OPENWEATHER_API_KEY"]``) or writes ``{{OPENWEATHER_API_KEY}}`` in the
code; the values are put in only inside the sandbox, and every echo of a value in the output is
masked as ``<OPENWEATHER_API_KEY>`` before the output goes anywhere (the model, the answer, the
transcript, the store, the cache, logs). Output that transforms a value (base64, slicing) is not
recognised; the code runs as your user, so only give it keys it may use.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import re
import signal
from collections.abc import Mapping, Sequence

import structlog
from autogen_agentchat.agents import (
    ApprovalRequest,
    ApprovalResponse,
    AssistantAgent,
    CodeExecutorAgent,
)
from autogen_agentchat.base import TaskResult, TerminationCondition
from autogen_agentchat.messages import BaseAgentEvent, BaseChatMessage, StopMessage, TextMessage
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_core import CancellationToken
from autogen_core.code_executor import CodeBlock, CodeExecutor, CodeResult

from ecocascade.agents.client import LiteLLMChatCompletionClient
from ecocascade.agents.solver import AutoGenSolver
from ecocascade.controller.demos import DEFAULT_DEMO_TEMPLATE, DemoTemplate
from ecocascade.exceptions import ConfigError
from ecocascade.judges.execution import run_status_line
from ecocascade.sandbox import SandboxFiles, check_limits, normalise_files, run_python
from ecocascade.text import extract_python_code, without_fenced_blocks
from ecocascade.types import ChatModel, Message, Solution, Task

__all__ = ["DEFAULT_SYSTEM_MESSAGE", "CodeRun", "CodeSolver", "SandboxCodeExecutor"]

log = structlog.get_logger(__name__)

DEFAULT_SYSTEM_MESSAGE = """\
You are a helpful AI assistant who solves tasks by writing Python code.
Write one complete Python script in a single ```python code block. It will be run for you and \
you will see its output. Every run starts in a fresh directory with nothing kept from earlier \
runs, so always send the whole script, and print the results you need.{context}
If the run fails, fix the script and send the whole corrected script.
When the output answers the task, reply with the answer in words, with no code, and end your \
message with TERMINATE."""

_SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PYTHON_BLOCK = re.compile(r"```[ \t]*(?:python|py|python3)[ \t]*\n[\s\S]*?```", re.IGNORECASE)
_TERMINATE = re.compile(r"\bTERMINATE\b[.!]?")
_BLANK_LINES = re.compile(r"\n\s*\n(?:\s*\n)+")
_CODE_THAT_RAN = "Code that ran:\n"
_SHORT_SECRET = 8
_TIMEOUT_EXIT_CODE = 124  # what coreutils' timeout(1) exits with


@dataclasses.dataclass(frozen=True, slots=True)
class CodeRun:
    """One execution by :class:`SandboxCodeExecutor`: the code as the model wrote it (secret
    placeholders, not values) and how it ended, with secrets masked in ``output``."""

    code: str
    exit_code: int | None
    output: str
    timed_out: bool
    duration_s: float
    isolation: str = "rlimits"
    """Which isolation ran the code (see :attr:`ecocascade.sandbox.ExecutionResult.isolation`)."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@functools.cache
def _warn_short_secret(name: str, length: int) -> None:
    # Still masked (leaking it would be worse), but so is any output that happens to contain it.
    log.warning("agents.short_secret", name=name, length=length, masks_ordinary_output=True)


class _Secrets:
    def __init__(self, secrets: Mapping[str, str] | None) -> None:
        secrets = dict(secrets or {})
        for name, value in secrets.items():
            if not isinstance(name, str) or not _SECRET_NAME.match(name):
                raise ConfigError(
                    f"{name!r} is not usable as an environment variable name", where="secrets"
                )
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{name}: the value must be a non-empty string", where="secrets")
            if len(value) < _SHORT_SECRET:
                _warn_short_secret(name, len(value))
        self.names = tuple(sorted(secrets))
        self._values = secrets
        # Longest first, so a value inside another value is not half-masked.
        self._by_length = sorted(secrets.items(), key=lambda item: -len(item[1]))

    def __repr__(self) -> str:
        return f"secrets({', '.join(self.names)})"  # names only, never values

    def env(self) -> dict[str, str]:
        return dict(self._values)

    def substitute(self, code: str) -> str:
        for name, value in self._values.items():
            code = code.replace("{{" + name + "}}", value)
        return code

    def mask(self, text: str, *, cut: bool = False) -> str:
        """``text`` with every value replaced by ``<NAME>``. With ``cut`` (the text was truncated,
        maybe inside a value), a start of a value left at the very end is dropped too."""
        for name, value in self._by_length:
            text = text.replace(value, f"<{name}>")
        if cut:
            partial = max(
                (
                    k
                    for _, value in self._by_length
                    for k in range(1, len(value))
                    if text.endswith(value[:k])
                ),
                default=0,
            )
            text = text[: len(text) - partial]
        return text


class SandboxCodeExecutor(CodeExecutor):
    """An AutoGen code executor that runs Python blocks in ecocascade's sandbox.

    The Python blocks of one message are joined into one script and run as ``main.py`` in a
    fresh temp dir (see :func:`~ecocascade.sandbox.run_python`: wall-clock/CPU/memory/file-size
    limits, scrubbed environment, bubblewrap or Landlock isolation where the machine has it, no
    network unless ``network=True``, output caps), with ``files`` beside it and ``secrets`` in its
    environment. Other languages are refused. Every run (with the isolation that ran it) is kept
    in :attr:`runs`. Stateless between runs, so ``restart`` has nothing to do.
    """

    def __init__(
        self,
        *,
        timeout_s: float = 10.0,
        memory_mb: int | None = 512,
        max_output_bytes: int = 16_000,
        max_file_mb: int | None = 100,
        files: SandboxFiles | None = None,
        secrets: Mapping[str, str] | None = None,
        network: bool = False,
    ) -> None:
        check_limits(timeout_s, memory_mb)
        if max_file_mb is not None and (not isinstance(max_file_mb, int) or max_file_mb <= 0):
            raise ConfigError(
                f"must be a positive number of MiB or None, got {max_file_mb!r}",
                where="max_file_mb",
            )
        if max_output_bytes <= 0:
            raise ConfigError(f"must be > 0, got {max_output_bytes!r}", where="max_output_bytes")
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.max_output_bytes = max_output_bytes
        self.max_file_mb = max_file_mb
        self._files = files
        self._secrets = _Secrets(secrets)
        self.network = network
        self.runs: list[CodeRun] = []

    @property
    def last_run(self) -> CodeRun | None:
        return self.runs[-1] if self.runs else None

    async def execute_code_blocks(
        self, code_blocks: list[CodeBlock], cancellation_token: CancellationToken
    ) -> CodeResult:
        others = sorted({b.language for b in code_blocks if not _is_python(b.language)})
        if others:
            return CodeResult(
                exit_code=1,
                output=f"Only Python code blocks are run here, not {', '.join(others)}.",
            )
        code = "\n\n".join(block.code.strip("\n") for block in code_blocks) + "\n"
        run = asyncio.ensure_future(
            run_python(
                self._secrets.substitute(code),
                timeout_s=self.timeout_s,
                memory_mb=self.memory_mb,
                max_output_bytes=self.max_output_bytes,
                max_file_mb=self.max_file_mb,
                extra_env=self._secrets.env(),
                files=self._files,
                network=self.network,
            )
        )
        cancellation_token.link_future(run)  # cancelling kills the process group
        result = await run
        cut = result.truncated
        output = self._secrets.mask(result.stdout, cut=cut) + self._secrets.mask(
            result.stderr, cut=cut
        )
        if result.truncated:
            output += f"\n[output truncated at {self.max_output_bytes} bytes]"
        if result.timed_out:
            output += f"\n[timed out after {self.timeout_s:g}s: the process was killed]"
        elif result.exit_code is not None and result.exit_code < 0:
            output += f"\n[killed by {_signal_name(result.exit_code)}]"
        self.runs.append(
            CodeRun(
                code=self._secrets.mask(code),
                exit_code=result.exit_code,
                output=output,
                timed_out=result.timed_out,
                duration_s=result.duration_s,
                isolation=result.isolation,
            )
        )
        exit_code = _TIMEOUT_EXIT_CODE if result.exit_code is None else result.exit_code
        return CodeResult(exit_code=exit_code, output=output)

    async def start(self) -> None:
        """Nothing to start: every run gets its own process and temp dir."""

    async def stop(self) -> None:
        """Nothing to stop: no run outlives its call."""

    async def restart(self) -> None:
        """Nothing to reset: runs share no state (``runs`` is a record, and is kept)."""


class _DoneAfterRun(TerminationCondition):
    """Stops when the assistant says TERMINATE; if that message still carries code, only once
    the executor has run it (small models often send the final code and TERMINATE together)."""

    def __init__(self, assistant: str, executor: str) -> None:
        self._assistant = assistant
        self._executor = executor
        self._after_run = False
        self._terminated = False

    @property
    def terminated(self) -> bool:
        return self._terminated

    async def __call__(
        self, messages: Sequence[BaseAgentEvent | BaseChatMessage]
    ) -> StopMessage | None:
        for message in messages:
            if not isinstance(message, TextMessage):
                continue
            if message.source == self._executor and self._after_run:
                return self._stop("the assistant said TERMINATE; its last code has run")
            # TERMINATE counts in the words only: code may well print or contain the word.
            words = without_fenced_blocks(message.content)
            if message.source == self._assistant and _TERMINATE.search(words):
                if _PYTHON_BLOCK.search(message.content):
                    self._after_run = True
                else:
                    return self._stop("the assistant said TERMINATE")
        return None

    def _stop(self, reason: str) -> StopMessage:
        self._terminated = True
        return StopMessage(content=reason, source="_DoneAfterRun")

    async def reset(self) -> None:
        self._after_run = False
        self._terminated = False


async def _approve(request: ApprovalRequest) -> ApprovalResponse:
    # The sandbox is the oversight: every run is contained whatever the code does.
    return ApprovalResponse(approved=True, reason="runs in the ecocascade sandbox")


class CodeSolver:
    """The EcoAssistant-style code-writing solver, ready to use in a cascade.

    On each tier: an ``AssistantAgent`` (the tier's model) writes a Python script, a
    ``CodeExecutorAgent`` over :class:`SandboxCodeExecutor` runs it and replies with the output,
    and so on until the assistant says TERMINATE or ``max_turns`` scripts have run (the assistant
    then reads the last output and has a final word, but its code runs no more). Judge it
    with :class:`~ecocascade.judges.execution.CodeRunJudge` (the last run exited 0), alone or
    ``AllOf(CodeRunJudge(), LLMJudge(...))``.

    ``files`` (see :data:`~ecocascade.sandbox.SandboxFiles`) are put beside every script, so it
    can import a tool module; ``secrets`` maps environment variable names to values the code may
    use, shown to the model by name only; ``network=True`` lets the code use the network (off by
    default). ``system_message`` replaces the default prompt; its
    ``{context}`` placeholder (optional) receives the notes on files and secrets.
    """

    def __init__(
        self,
        *,
        max_turns: int = 4,
        timeout_s: float = 10.0,
        memory_mb: int | None = 512,
        max_output_bytes: int = 16_000,
        max_file_mb: int | None = 100,
        files: SandboxFiles | None = None,
        secrets: Mapping[str, str] | None = None,
        system_message: str = DEFAULT_SYSTEM_MESSAGE,
        demo_template: DemoTemplate = DEFAULT_DEMO_TEMPLATE,
        network: bool = False,
    ) -> None:
        if not isinstance(max_turns, int) or max_turns < 1:
            raise ConfigError(f"must be an integer >= 1, got {max_turns!r}", where="max_turns")
        self.max_turns = max_turns
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.max_output_bytes = max_output_bytes
        self.max_file_mb = max_file_mb
        self.network = network
        self._secrets = _Secrets(secrets)
        self.secret_names = self._secrets.names
        self.files = normalise_files(files)
        self.file_names = tuple(sorted(self.files))
        self.system_message = system_message
        self.demo_template = demo_template
        self._executor()  # check the sandbox settings now, not on the first query

    def __repr__(self) -> str:
        return f"CodeSolver(max_turns={self.max_turns}, secrets={list(self.secret_names)})"

    def messages(self, task: Task) -> list[Message]:
        """The first prompt (for the cascade's budget estimate)."""
        demonstrations = [
            dataclasses.replace(d, solution=demonstration_solution(d.solution))
            for d in task.demonstrations
        ]
        task = dataclasses.replace(task, demonstrations=demonstrations)
        return [
            {"role": "system", "content": self.prompt()},
            *AutoGenSolver(self._team, demo_template=self.demo_template).messages(task),
        ]

    def prompt(self) -> str:
        """The assistant's system message, with the files and secret names it may use."""
        notes = []
        if self.file_names:
            notes.append(
                "These files are in the script's directory (import the .py ones by name): "
                + ", ".join(self.file_names)
                + "."
            )
        if self.secret_names:
            names = ", ".join(self.secret_names)
            example = self.secret_names[0]
            notes.append(
                f"These secrets are set as environment variables: {names}. Read them with "
                f'os.environ["{example}"] (or write {{{{{example}}}}} in the code); never print'
                " them."
            )
        context = "".join("\n" + note for note in notes)
        if "{context}" in self.system_message:
            return self.system_message.replace("{context}", context)
        return self.system_message + context

    async def solve(self, task: Task, model: ChatModel) -> Solution:
        executor = self._executor()
        demonstrations = [
            dataclasses.replace(d, solution=demonstration_solution(d.solution))
            for d in task.demonstrations
        ]
        task = dataclasses.replace(task, demonstrations=demonstrations)
        solver = AutoGenSolver(
            lambda client: self._team(client, executor),
            max_turns=None,  # the team's own max_turns bounds the run
            answer=lambda result: self._answer(result, executor),
            demo_template=self.demo_template,
        )
        return await solver.solve(task, model)

    def _executor(self) -> SandboxCodeExecutor:
        return SandboxCodeExecutor(
            timeout_s=self.timeout_s,
            memory_mb=self.memory_mb,
            max_output_bytes=self.max_output_bytes,
            max_file_mb=self.max_file_mb,
            files=self.files,
            secrets=self._secrets.env(),
            network=self.network,
        )

    def _team(
        self, client: LiteLLMChatCompletionClient, executor: SandboxCodeExecutor | None = None
    ) -> RoundRobinGroupChat:
        assistant = AssistantAgent("assistant", model_client=client, system_message=self.prompt())
        runner = CodeExecutorAgent(
            "executor",
            code_executor=executor or self._executor(),
            supported_languages=["python", "py", "python3"],
            # Only the assistant's code: the task message may quote demonstrations' code.
            sources=["assistant"],
            approval_func=_approve,
        )
        return RoundRobinGroupChat(
            [assistant, runner],
            termination_condition=_DoneAfterRun("assistant", "executor"),
            # max_turns scripts, each followed by its run, then a last word on the last output.
            max_turns=2 * self.max_turns + 1,
        )

    def _answer(self, result: TaskResult, executor: SandboxCodeExecutor) -> str:
        words = ""
        for message in reversed(result.messages):
            if isinstance(message, TextMessage) and message.source == "assistant":
                # Every block, open or closed: only the code that ran may look like code.
                words = _TERMINATE.sub("", without_fenced_blocks(message.content))
                words = _BLANK_LINES.sub("\n\n", words).strip()
                break
        return render_answer(words, executor.last_run, self.timeout_s)


def render_answer(words: str, run: CodeRun | None, timeout_s: float) -> str:
    """The answer: what the assistant said last, the code that ran last with its output, and
    the status line :class:`~ecocascade.judges.execution.CodeRunJudge` reads — always last."""
    parts = [words] if words else []
    if run is not None:
        code_fence = _fence(run.code)
        output_fence = _fence(run.output)
        parts.append(f"{_CODE_THAT_RAN}{code_fence}python\n{run.code.rstrip()}\n{code_fence}")
        parts.append(f"Output:\n{output_fence}text\n{run.output.rstrip()}\n{output_fence}")
        parts.append(run_status_line(run.exit_code, timed_out=run.timed_out, timeout_s=timeout_s))
    else:
        parts.append(run_status_line(None))
    return "\n\n".join(parts)


def demonstration_solution(answer: str) -> str:
    """A recorded answer as a demonstration: the assistant's words and the code that ran, without
    its output and status line (a model shown those tends to copy them instead of writing code).
    An answer of another shape is returned as it is."""
    words, found, _ = answer.partition(_CODE_THAT_RAN)
    code = extract_python_code(answer)
    if not found or code is None:
        return answer
    fence = _fence(code)
    block = f"{fence}python\n{code.rstrip()}\n{fence}"
    return f"{words.strip()}\n{block}" if words.strip() else block


def _fence(text: str) -> str:
    """A backtick fence longer than any backtick run in ``text`` (so ``text`` cannot close it)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _is_python(language: str) -> bool:
    return language.strip().lower() in ("python", "py", "python3", "")


def _signal_name(exit_code: int) -> str:
    try:
        return signal.Signals(-exit_code).name
    except ValueError:
        return f"signal {-exit_code}"
