"""Prefect flow `release`: the core's release pipeline (featureloop.release.pipeline), run by Prefect.

Its form is `ReleaseParams`: `advance` (the default, what the scheduled `release` deployment runs)
decides the current stage when its evidence is in; `start`, `promote` and `rollback` are a person's.
A decided stage sends `featureloop.release.decided` (the dashboard's release events; automations can
follow it) and every run leaves a markdown artifact of the stage's checks.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from featureloop.params import ReleaseParams
from featureloop.release.pipeline import run_release_steps
from featureloop.settings import Settings
from featureloop.steps import StepOptions
from flows.steps import PrefectSteps

EVENT = "featureloop.release.decided"
# Reaching MLflow may pass on a second try; a decision is taken once (a retried act could act twice).
RELEASE_STEP_OPTIONS = {"connect_tracking": StepOptions(retries=2, retry_delay_seconds=(2, 10))}


def _markdown(result: dict[str, Any]) -> str:
    rows = "\n".join(
        f"| {c['check']} | {'pass' if c['passed'] else '**fail**'} | {c.get('challenger')} | "
        f"{c.get('champion')} | {c['limit']} |"
        for c in result.get("checks", [])
    )
    table = (
        f"\n\n| check | result | challenger | champion | limit |\n|---|---|---|---|---|\n{rows}\n"
        if rows
        else "\n"
    )
    return f"# release of version {result['version']}: {result['verdict']}\n\n**{result['summary']}**{table}"


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10])
def send_decision(model: str, result: dict[str, Any]) -> str:
    """`featureloop.release.decided`, about the model, the decision as payload."""
    from prefect.events import Event
    from prefect.utilities.asyncutils import run_coro_as_sync

    from flows.drift import deliver

    event = Event(
        event=EVENT,
        resource={
            "prefect.resource.id": f"featureloop.model.{model}",
            "prefect.resource.name": model,
            "featureloop.model_version": str(result["version"]),
        },
        payload={k: result.get(k) for k in ("version", "stage", "verdict", "summary")},
    )
    run_coro_as_sync(deliver(event))
    return str(event.id)


@flow(name="release")
def release(params: ReleaseParams | None = None) -> dict[str, Any]:
    """Decide the release in progress (or start, promote, roll back one), recorded on the version."""
    params = params or ReleaseParams()
    settings = Settings()
    result = run_release_steps(PrefectSteps(RELEASE_STEP_OPTIONS), settings, params)
    get_run_logger().info("release: %s", result["summary"])
    if result.get("verdict") not in (None, "wait"):
        create_markdown_artifact(
            _markdown(result), key="release-decision", description="Release stage decision"
        )
        send_decision(settings.model_name, result)
    return result


if __name__ == "__main__":
    print(release())
