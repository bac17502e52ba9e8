"""The CLI's logging set-up: :func:`ecocascade.logs.configure_logging` (shared with the
gateway's worker processes, which start without the CLI)."""

from ecocascade.logs import configure_logging

__all__ = ["configure_logging"]
