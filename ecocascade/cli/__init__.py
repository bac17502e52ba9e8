"""The ``ecocascade`` command. Library errors become one-line messages here, and only here.

Exit codes: 0 success · 1 the query was not resolved (or a runtime failure) · 2 bad input
(config, flags) · 130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

EXIT_OK, EXIT_UNRESOLVED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def main(argv: Sequence[str] | None = None) -> None:
    import click

    from ecocascade.cli.app import app
    from ecocascade.exceptions import ConfigError, EcoCascadeError

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
    except click.exceptions.Abort:
        _fail("interrupted", EXIT_INTERRUPTED)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", EXIT_INTERRUPTED)
    sys.exit(code if isinstance(code, int) else EXIT_OK)


def _fail(message: str, code: int) -> None:
    print(message, file=sys.stderr)
    sys.exit(code)
