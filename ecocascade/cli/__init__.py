"""The ``ecocascade`` command. Library errors become one-line messages here, and only here.

Exit codes: 0 success · 1 the query was not resolved (or a runtime failure) · 2 bad input
(config, flags) · 130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]

EXIT_OK, EXIT_UNRESOLVED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def main(argv: Sequence[str] | None = None) -> None:
    import typer

    from ecocascade.cli.app import app
    from ecocascade.exceptions import ConfigError, EcoCascadeError

    click_error = _click_exception_type()
    try:
        code = app(
            args=list(argv) if argv is not None else None,
            prog_name="ecocascade",
            standalone_mode=False,
        )
    except ConfigError as error:
        _fail(f"error: {error}", EXIT_USAGE)
    except EcoCascadeError as error:
        _fail(f"error: {error}", EXIT_UNRESOLVED)
    except typer.Abort:
        _fail("interrupted", EXIT_INTERRUPTED)
    except click_error as error:
        _show_click_error(error)
    except KeyboardInterrupt:
        _fail("interrupted", EXIT_INTERRUPTED)
    sys.exit(code if isinstance(code, int) else EXIT_OK)


def _click_exception_type() -> type[Exception]:
    """The ``ClickException`` of the click that typer really uses.

    typer used to build on the ``click`` package and now vendors a copy (``typer._click``), whose
    exceptions the package's ``click.ClickException`` does not catch. ``typer.BadParameter`` is
    public in every typer and derives from the right one, whichever it is.
    """
    import typer

    bases = [c for c in typer.BadParameter.__mro__ if c not in (Exception, BaseException, object)]
    # click's root error; failing that (a future typer), the root of its own hierarchy
    return next((c for c in bases if c.__name__ == "ClickException"), bases[-1])


def _show_click_error(error: Any) -> None:
    """A usage error as one line naming the help command; exit 2 (click's code for them)."""
    code = int(getattr(error, "exit_code", EXIT_USAGE))
    ctx = getattr(error, "ctx", None)
    if type(error).__name__ == "NoArgsIsHelpError":  # a bare group: its help *is* the message
        print(error.format_message(), file=sys.stderr)
        sys.exit(code)
    message = " ".join(str(getattr(error, "format_message", error.__str__)()).split())
    hint = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
    _fail(f"error: {message}{hint}", code)


def _fail(message: str, code: int) -> None:
    print(message, file=sys.stderr)
    sys.exit(code)
