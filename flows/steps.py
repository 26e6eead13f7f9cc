"""The Prefect runner of the core's pipelines: each step a named Prefect task (see featureloop.steps)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from featureloop.steps import StepOptions
from flows.opaque import opaque

T = TypeVar("T")
_SIMPLE = (str, int, float, bool, type(None))


class PrefectSteps:
    """Runs each step as a Prefect task named after it, with the step's retries (`options`).

    Arguments go to the task unwalked (`opaque`): Prefect would otherwise visit every value of a
    reference profile or a training frame to track dependencies, which costs seconds a task."""

    def __init__(self, options: Mapping[str, StepOptions] | None = None) -> None:
        self._options = dict(options or {})

    def __call__(self, name: str, step: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        options = self._options.get(name, StepOptions())
        retry_if = options.retry_if
        condition = None
        if retry_if is not None:

            def condition(_task: Any, _run: Any, state: Any) -> bool:
                failure = state.data  # the exception the step raised
                return retry_if(failure) if isinstance(failure, BaseException) else True

        run = cast(Any, task)(
            step,
            name=name,
            retries=options.retries,
            retry_delay_seconds=list(options.retry_delay_seconds) or 0,
            retry_condition_fn=condition,
            cache_policy=NO_CACHE,
        )
        wrapped = [a if isinstance(a, _SIMPLE) else opaque(a) for a in args]
        named = {k: v if isinstance(v, _SIMPLE) else opaque(v) for k, v in kwargs.items()}
        return cast(T, run(*wrapped, **named))

    def info(self, message: str) -> None:
        get_run_logger().info(message)

    def warning(self, message: str) -> None:
        get_run_logger().warning(message)
