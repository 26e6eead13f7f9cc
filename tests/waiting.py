"""Waiting in tests: poll a condition until a deadline, never a bare sleep as synchronisation."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any


def until(
    condition: Callable[[], Any],
    timeout: float = 30,
    what: str = "the condition",
    *,
    process: subprocess.Popen[Any] | None = None,
    ignoring: tuple[type[BaseException], ...] = (),
    interval: float = 0.05,
) -> Any:
    """Return `condition()`'s first true value as soon as it has one; fail naming `what` if it has none
    within `timeout` s, or at once if `process` (what the condition waits for) has exited. Exceptions of
    the types in `ignoring` mean "not yet" (a server not listening yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if value := condition():
                return value
        except ignoring:
            pass
        if process is not None:
            assert process.poll() is None, (
                f"the process waited on exited ({process.returncode}) before {what}"
            )
        assert time.monotonic() < deadline, f"{what} did not hold within {timeout} s"
        time.sleep(interval)
