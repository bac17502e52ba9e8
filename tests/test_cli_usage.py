"""Usage errors of the ``ecocascade`` command: one line on stderr, exit 2, never a traceback —
whichever click typer uses (the ``click`` package, or its own vendored copy since typer 0.2x)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ecocascade.cli import main

USAGE_ERRORS = [
    (["run", "--bogus", "Q?"], "No such option: --bogus"),
    (["eval"], "Missing"),
    (["bench", "replay", "--train", "a", "b"], "'a' does not exist"),
    (["run"], "Missing"),
    (["run", "--k", "many", "-t", "openai/x", "Q?"], "--k"),
    (["no-such-command"], "No such command"),
    (["solutions", "no-such-command"], "No such command"),
    (["models", "pull", "--bogus"], "No such option: --bogus"),
]
IDS = ["unknown-option", "eval-no-scenario", "bench-missing-file", "run-no-question",
       "not-an-int", "unknown-command", "unknown-subcommand", "subcommand-option"]  # fmt: skip


@pytest.mark.parametrize(("argv", "expected"), USAGE_ERRORS, ids=IDS)
def test_a_usage_error_is_one_line_and_exit_2_in_process(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    out, err = capsys.readouterr()
    assert exited.value.code == 2, err
    assert out == ""
    assert err.startswith("error: ") and expected in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(("argv", "expected"), USAGE_ERRORS[:3], ids=IDS[:3])
def test_a_usage_error_is_one_line_and_exit_2_from_the_real_command(
    argv: list[str], expected: str
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ecocascade", *argv],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.startswith("error: ") and expected in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_the_message_says_where_to_find_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "replay", "--bogus"])
    assert "ecocascade bench replay --help" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [[], ["solutions"]], ids=["no-command", "group-only"])
def test_no_arguments_prints_the_help_not_an_error(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    out, err = capsys.readouterr()
    assert exited.value.code == 2
    assert "Usage:" in out + err and "Traceback" not in out + err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", "--help"])
    assert exited.value.code == 0
    assert "--tier" in capsys.readouterr().out
