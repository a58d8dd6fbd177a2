"""Stopping a background task: cancel it and wait until it has really ended."""

from __future__ import annotations

import asyncio
import contextlib


async def cancel_and_wait(task: "asyncio.Task[object] | None", *, swallow_errors: bool = False) -> None:
    """Cancel `task` (if any) and wait for it; its cancellation is absorbed, and with
    `swallow_errors` also an exception it died of (else that exception is raised here)."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(*((asyncio.CancelledError, Exception) if swallow_errors else (asyncio.CancelledError,))):
        await task
