"""Prefect flow `drift`: a window of served predictions against the champion's training reference.

Tasks call the core's steps (featureloop/monitor.py). Outputs: HTML and JSON reports (the JSON and
HTML also in an MLflow run), a markdown artifact, the Prometheus gauges file the serving app exposes,
and, when drift persists (k of the last n windows) or the model decays on delayed labels, the event
`featureloop.drift.detected` with the key figures (the `retrain` deployment's trigger).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from featureloop.monitoring import pipeline as monitor
from featureloop.params import DriftParams
from featureloop.settings import Settings
from flows.opaque import opaque

REPORTED, NO_WINDOW = "report", "no window"


def _transient(_task: Any, _run: Any, state: Any) -> bool:
    """Retry what may pass (the tracking store away), not a missing champion or log."""
    return not isinstance(state.data, monitor.NoWindow)


@task(retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=_transient, cache_policy=NO_CACHE)
def load_champion(settings: Settings) -> tuple[Any, monitor.Champion]:
    """The tracking store (fails fast, naming the URI) and the champion with its reference profile."""
    from featureloop.training.registry import connect

    client, _ = connect(settings.tracking_uri, settings.artifact_location, settings.experiment)
    return client, monitor.load_champion(client, settings)


@task(cache_policy=NO_CACHE)
def read_window(settings: Settings, champion: monitor.Champion, start: datetime, end: datetime) -> Any:
    """The prediction log's window, read once (the checks below work on it in memory)."""
    return monitor.read_window(settings, champion, start, end)


@task(cache_policy=NO_CACHE)
def check_window(champion: monitor.Champion, served: Any, params: DriftParams) -> dict[str, Any]:
    """Per-feature drift and the dataset verdict on the prediction log's window."""
    return monitor.check_window(champion, served, params)


@task(cache_policy=NO_CACHE)
def check_labels(
    settings: Settings, champion: monitor.Champion, served: Any, params: DriftParams
) -> dict[str, Any]:
    """ROC AUC and calibration on the predictions whose outcomes are known (decay)."""
    return monitor.check_labels(settings, champion, served, params)


@task(cache_policy=NO_CACHE)
def check_skew(settings: Settings, champion: monitor.Champion, params: DriftParams) -> dict[str, Any] | None:
    """Online values against the offline store's as of the last materialisation."""
    return monitor.check_skew(settings, champion, params)


@task(cache_policy=NO_CACHE)
def write_outputs(
    client: Any, settings: Settings, report: dict[str, Any], history: list[dict[str, Any]]
) -> dict[str, str]:
    """Reports, history, gauges; the MLflow run."""
    return monitor.publish(client, settings, report, history)


@task(cache_policy=NO_CACHE)
def send_event(summary: dict[str, Any]) -> str | None:
    """`featureloop.drift.detected`, about the model, with the key figures as payload."""
    from prefect.events import emit_event

    event = emit_event(
        event=monitor.EVENT,
        resource={
            "prefect.resource.id": f"featureloop.model.{summary['model']}",
            "prefect.resource.name": summary["model"],
            "featureloop.model_version": summary["model_version"],
        },
        payload=summary,
    )
    return str(event.id) if event else None


@flow(name="drift")
def drift(params: DriftParams | None = None) -> dict[str, Any]:
    """Check a window of served predictions for drift, decay and skew; raise the event when they hold.
    With nothing to check (no champion, no plausible served rows) the run ends with the outcome
    "no window" and the reason, not a failure: the schedule keeps running."""
    params = params or DriftParams()
    logger = get_run_logger()
    settings = Settings()
    try:
        client, champion = load_champion(settings)
        span = monitor.resolve_window(settings, params)
    except monitor.NoWindow as exc:
        logger.warning("no window to check: %s", exc)
        create_markdown_artifact(
            f"# Drift: no window\n\n{exc}\n", key="drift-report", description="No window"
        )
        return {"outcome": NO_WINDOW, "reason": str(exc)}
    logger.info(
        "model %s v%s, window %s .. %s%s", champion.version.name, champion.version.version, span.start, span.end,
        f" ({span.out_of_range:,} logged rows outside the accepted prediction times, ignored)"
        if span.out_of_range else "",
    )  # fmt: skip
    # opaque(): the champion carries its reference profile (tens of thousands of values) and the
    # report its histograms; Prefect would walk every value of a task's arguments (seconds per task).
    served = read_window(settings, opaque(champion), span.start, span.end)
    window = check_window(opaque(champion), served, params)
    decay = check_labels(settings, opaque(champion), served, params)
    skew = check_skew(settings, opaque(champion), params)
    history = monitor.read_history(settings, champion.version.name)
    summary = monitor.conclude(champion, span, window, decay, skew, history, params)
    report = monitor.build_report(champion, window, decay, skew, summary)
    paths = write_outputs(client, settings, opaque(report), opaque(history))
    create_markdown_artifact(
        monitor.markdown(report, paths), key="drift-report", description="Drift, decay and skew"
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
