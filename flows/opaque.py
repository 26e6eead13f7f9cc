"""Task arguments Prefect should not walk."""

from __future__ import annotations

from typing import TypeVar, cast

from prefect.utilities.annotations import quote

T = TypeVar("T")


def opaque(value: T) -> T:
    """`value`, passed to a task as it is: Prefect walks every element of a task's arguments to
    track dependencies, which costs seconds for a reference profile of tens of thousands of values."""
    return cast(T, quote(value))
