"""Prefect flow `drift`: a window of served predictions against the champion's training reference.

The steps are the core's (`featureloop.monitoring.pipeline.drift_pipeline`), each run as a task.
Outputs: HTML and JSON reports (the JSON and HTML also in an MLflow run), a markdown artifact, the
Prometheus gauges file the serving app exposes, and, when drift persists (k of the last n windows)
or the model decays on delayed labels, the event `featureloop.drift.detected` with the key figures
(the `retrain` deployment's trigger).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from featureloop.monitoring.checks import EVENT
from featureloop.monitoring.outputs import markdown
from featureloop.monitoring.pipeline import drift_pipeline
from featureloop.monitoring.window import NoWindow
from featureloop.params import DriftParams, drift_params_for
from featureloop.project.spec import load_spec
from featureloop.settings import Settings
from featureloop.steps import StepOptions
from flows.steps import PrefectSteps

REPORTED, NO_WINDOW = "report", "no window"

# The tracking store may be away for a moment: retry; a missing champion or log will still be missing.
STEP_OPTIONS = {
    "load_champion": StepOptions(
        retries=2, retry_delay_seconds=(2, 10), retry_if=lambda failure: not isinstance(failure, NoWindow)
    ),
}


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10])
def send_event(summary: dict[str, Any]) -> str:
    """`featureloop.drift.detected`, about the model, with the key figures as payload, delivered
    before the task ends to the server this run reports to (a failure is the task's, retried).

    Not `prefect.events.emit_event`: that queues the event for a process-wide background worker
    bound to the first API URL the process used, so a process that talks to a second server (the
    scale-out test, a tool that switches servers) delivers there, or nowhere once that server is gone:
    "Service 'EventsWorker' failed to process item"; and a queued event may be lost at exit."""
    from prefect.events import Event
    from prefect.utilities.asyncutils import run_coro_as_sync

    event = Event(
        event=EVENT,
        resource={
            "prefect.resource.id": f"featureloop.model.{summary['model']}",
            "prefect.resource.name": summary["model"],
            "featureloop.model_version": summary["model_version"],
        },
        payload=summary,
    )
    run_coro_as_sync(deliver(event))
    return str(event.id)


async def deliver(event: Any) -> None:
    """The event, with the run's related resources (flow run, flow, deployment) as emit_event adds
    them, over a websocket to the current PREFECT_API_URL, closed (flushed) before returning."""
    from prefect.client.orchestration import get_client
    from prefect.events.clients import get_events_client
    from prefect.events.related import related_resources_from_run_context

    async with get_client() as api:
        event.related = [*event.related, *await related_resources_from_run_context(client=api)]
    async with get_events_client(reconnection_attempts=2) as client:
        await client.emit(event)


@flow(name="drift")
def drift(params: DriftParams | None = None) -> dict[str, Any]:
    """Check a window of served predictions for drift, decay and skew; raise the event when they hold.
    With nothing to check (no champion, no plausible served rows) the run ends with the outcome
    "no window" and the reason, not a failure: the schedule keeps running. Without parameters, the
    project's (`monitoring` in feature_repo/project.yaml)."""
    settings = Settings()
    params = params or drift_params_for(load_spec(settings.feature_repo).monitoring)
    logger = get_run_logger()
    try:
        run = drift_pipeline(PrefectSteps(STEP_OPTIONS), settings, params)
    except NoWindow as exc:
        logger.warning("no window to check: %s", exc)
        create_markdown_artifact(
            f"# Drift: no window\n\n{exc}\n", key="drift-report", description="No window"
        )
        return {"outcome": NO_WINDOW, "reason": str(exc)}
    summary, paths = run.summary, run.paths
    create_markdown_artifact(
        markdown(run.report, paths), key="drift-report", description="Drift, decay and skew"
    )
    event_id = send_event(summary) if summary["event"] and params.emit_event else None
    logger.info(
        "drift %s (%.0f%% of features), decay %s, skew mismatches %s, event %s; report %s",
        summary["drifted"], 100 * summary["share"], summary["decayed"], summary["skew_mismatches"],
        "sent" if event_id else "not sent", paths["html"],
    )  # fmt: skip
    return {**summary, "outcome": REPORTED, "report": paths["html"], "event_id": event_id}


if __name__ == "__main__":
    print(drift())
