"""structlog set-up for the entry points — the CLI and the gateway's workers (the library itself
never configures logging)."""

from __future__ import annotations

import logging
import sys

import structlog

__all__ = ["configure_logging"]


def configure_logging(level: str = "warning", *, json: bool = False) -> None:
    """Events to stderr at ``level`` and above; JSON lines with ``json=True``."""
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        from ecocascade.exceptions import ConfigError

        raise ConfigError(
            f"unknown log level {level!r}; use debug, info, warning or error", where="--log-level"
        )
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            _mask_event,  # after the traceback is text, so a key in an exception is masked too
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    # AutoGen logs, with full tracebacks, the errors its teams hand back to our solvers — which
    # record them on the attempt (and escalate). Show AutoGen's own logs only when debugging.
    for name in _QUIET_UNLESS_DEBUG:
        logging.getLogger(name).setLevel(numeric if numeric <= logging.DEBUG else logging.CRITICAL)


_QUIET_UNLESS_DEBUG = ("autogen_core", "autogen_agentchat", "autogen_ext")


def _mask_event(
    logger: object, method: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    """Every string in the event, secrets masked (:func:`ecocascade.text.mask_secrets_in`)."""
    from ecocascade.text import mask_secrets_in

    return mask_secrets_in(event)
