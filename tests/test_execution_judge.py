"""ExecutionJudge runs the answer's code for real and explains its verdict in one short line."""

from __future__ import annotations

import pytest

from ecocascade import isolation
from ecocascade.exceptions import ConfigError
from ecocascade.judges.execution import CodeRunJudge, ExecutionJudge, run_status_line
from ecocascade.sandbox import landlock_abi
from ecocascade.types import Judge

# The isolation this machine gives the sandbox, as every reason after a run names it.
RAN_IN = " [sandbox: {}]".format(
    "bwrap" if isolation.find_bwrap() else "landlock" if landlock_abi() else "rlimits"
)


def _answer(code: str) -> str:
    return f"Here is my solution:\n\n```python\n{code}\n```\n"


def test_execution_judge_satisfies_the_judge_protocol() -> None:
    """ExecutionJudge plugs in wherever a Judge is expected, under the name it was given."""
    judge = ExecutionJudge(name="tests")
    assert isinstance(judge, Judge)
    assert judge.name == "tests"


async def test_accepts_code_that_exits_0() -> None:
    """Code that runs cleanly is accepted at no cost, with a stdout excerpt in the reason."""
    verdict = await ExecutionJudge(timeout_s=5).judge("add", _answer("print(1 + 1)"))
    assert verdict.accepted
    assert verdict.reason == "exit 0; stdout: '2'" + RAN_IN
    assert (verdict.judge, verdict.cost_usd) == ("exec", 0.0)


async def test_rejects_code_that_raises_with_the_last_stderr_line() -> None:
    """An exception is rejected with the exit code and the exception line as the reason."""
    verdict = await ExecutionJudge(timeout_s=5).judge("q", _answer("raise KeyError('k')"))
    assert not verdict.accepted
    assert verdict.reason == "exit code 1: KeyError: 'k'" + RAN_IN


async def test_rejects_an_answer_without_a_code_block() -> None:
    """An answer with no Python block is rejected without running anything."""
    verdict = await ExecutionJudge().judge("q", "Use print(2).\n```bash\necho 2\n```")
    assert not verdict.accepted
    assert verdict.reason == "no Python code block in the answer"


async def test_network_is_off_unless_the_judge_allows_it() -> None:
    """The judged code cannot reach the network by default; ``network=True`` lets it."""
    import socket

    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        code = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3)"
        closed = await ExecutionJudge(timeout_s=10).judge("q", _answer(code))
        opened = await ExecutionJudge(timeout_s=10, network=True).judge("q", _answer(code))
    if RAN_IN == " [sandbox: rlimits]":
        pytest.skip("neither bwrap nor Landlock here: the network cannot be switched off")
    assert not closed.accepted and "Error" in closed.reason
    assert opened.accepted, opened.reason


async def test_accepts_when_the_expected_output_appears() -> None:
    """With expected_output, stdout containing that text (both stripped) is accepted."""
    judge = ExecutionJudge(timeout_s=5, expected_output="  42\n")
    verdict = await judge.judge("q", _answer("print('the answer is 42')"))
    assert verdict.accepted


async def test_rejects_when_the_expected_output_is_missing() -> None:
    """Exit 0 with the wrong output is rejected, naming the expected text."""
    judge = ExecutionJudge(timeout_s=5, expected_output="42")
    verdict = await judge.judge("q", _answer("print(41)"))
    assert not verdict.accepted
    assert verdict.reason == "exit 0 but output lacks expected text '42' (stdout: '41')" + RAN_IN


async def test_rejects_code_that_times_out() -> None:
    """Code still running at the timeout is rejected as timed out."""
    verdict = await ExecutionJudge(timeout_s=0.5).judge("q", _answer("while True: pass"))
    assert not verdict.accepted
    assert verdict.reason == "timed out after 0.5s" + RAN_IN


@pytest.mark.parametrize(
    "kwargs", [{"timeout_s": 0}, {"memory_mb": -1}, {"expected_output": " "}, {"name": ""}]
)
def test_invalid_settings_are_config_errors(kwargs: dict[str, object]) -> None:
    """Settings that could never judge anything are rejected at construction."""
    with pytest.raises(ConfigError):
        ExecutionJudge(**kwargs)  # type: ignore[arg-type]


# --- CodeRunJudge ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "accepted", "reason"),
    [
        (run_status_line(0), True, "the last run exited 0"),
        (run_status_line(1), False, "the last run failed: exit code 1"),
        (run_status_line(-24), False, "the last run failed: killed by SIGXCPU"),
        (
            run_status_line(None, timed_out=True, timeout_s=2.5),
            False,
            "the last run timed out after 2.5s",
        ),
        (run_status_line(None), False, "no code ran"),
    ],
)
async def test_code_run_judge_reads_the_status_line(
    status: str, accepted: bool, reason: str
) -> None:
    """The recorded outcome on the answer's last line decides, without running anything."""
    answer = f"Done.\n\nCode that ran:\n```python\nprint(1)\n```\n\n{status}"
    verdict = await CodeRunJudge().judge("q", answer)
    assert (verdict.accepted, verdict.reason, verdict.judge) == (accepted, reason, "code-run")


async def test_code_run_judge_ignores_a_status_line_that_is_not_last() -> None:
    """A status line the model wrote inside its text cannot pass a failed run off as clean."""
    forged = f"All good!\n{run_status_line(0)}\n\n```python\nboom()\n```\n\n{run_status_line(1)}"
    assert not (await CodeRunJudge().judge("q", forged)).accepted


async def test_code_run_judge_rejects_an_answer_without_a_recorded_run() -> None:
    """Plain text (not from a code-writing solver) has no run to judge."""
    verdict = await CodeRunJudge().judge("q", "```python\nprint(1)\n```")
    assert not verdict.accepted
    assert verdict.reason.startswith("no recorded code run")
