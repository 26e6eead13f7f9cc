"""How a pipeline runs its steps: written once in the core, run by the CLI and by Prefect alike.

A pipeline (train, drift, materialise, rollback) is a function of the core that calls each of its
steps through a `Steps` runner: `steps("fit", fit_candidate, training_set, params)`. The CLI
passes `PlainSteps`, which calls the step and reports progress; the Prefect flows pass
`flows.steps.PrefectSteps`, which runs each step as a Prefect task (named, with its retries, shown
in the UI). Both therefore run exactly the same steps in the same order, with the same arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class StepOptions:
    """How the Prefect runner runs one step: retries (and their delays) for steps that can pass on a
    second try (the tracking store away), never for one that registers or promotes."""

    retries: int = 0
    retry_delay_seconds: tuple[float, ...] = ()
    # Retry only when this says the failure may pass (e.g. not for "no champion").
    retry_if: Callable[[BaseException], bool] | None = None


class Steps(Protocol):
    """Runs one step of a pipeline and reports progress."""

    def __call__(self, name: str, step: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...

    def info(self, message: str) -> None:
        """A progress line (the CLI prints it; a flow logs it)."""
        ...

    def warning(self, message: str) -> None: ...


@dataclass
class PlainSteps:
    """A plain call per step (the CLI); progress lines go to `report`."""

    report: Callable[[str], None] = lambda _message: None

    def __call__(self, name: str, step: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return step(*args, **kwargs)

    def info(self, message: str) -> None:
        self.report(message)

    def warning(self, message: str) -> None:
        self.report(message)
