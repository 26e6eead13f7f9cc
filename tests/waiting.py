"""Waiting in tests: poll a condition until a deadline, never a bare sleep as synchronisation."""

from __future__ import annotations

import time
from collections.abc import Callable


def until(condition: Callable[[], bool], timeout: float = 30, what: str = "the condition") -> None:
    """Return as soon as `condition()` holds; fail naming `what` if it does not within `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not hold within {timeout} s"
        time.sleep(0.05)
