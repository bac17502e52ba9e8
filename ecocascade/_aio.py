"""Small asyncio helpers shared by the cascade and the model client."""

from __future__ import annotations

import asyncio

__all__ = ["reraise_if_cancelling"]


def reraise_if_cancelling() -> None:
    """Raise ``CancelledError`` when the current task is being cancelled.

    A cancel (Ctrl-C is one: ``asyncio.run`` cancels the main task) can be lost below us: Python
    3.11's ``asyncio.wait_for`` drops one that arrives as the awaited call completes, and a
    library that catches too broadly drops any. Called after each step that awaits foreign code,
    this makes such a cancel stop the run at the next step instead of being turned into a result.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
