"""Durations as a project's spec writes them: `90d`, `3h`, `15m`, `2w`, `30s`."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import Field

DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

Duration = Annotated[str, Field(pattern=DURATION.pattern, examples=["90d", "3h", "15m"])]


def parse_duration(text: str) -> timedelta:
    """`90d`, `3h`, `15m`, `2w`, `30s` as a timedelta."""
    found = DURATION.match(text.strip())
    if not found:
        raise ValueError(f"{text!r} is not a duration: write a number and a unit, e.g. 90d, 3h, 15m, 2w")
    return timedelta(**{UNITS[found.group(2)]: int(found.group(1))})
