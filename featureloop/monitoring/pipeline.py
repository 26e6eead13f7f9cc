"""One drift run: a window of served predictions against the champion's training reference.

The steps, written once (`drift_pipeline`) and run by the CLI (`run_drift`, each step a plain call)
and by the Prefect flow `drift` (flows/drift.py, each step a task):
1. `load_champion`: the champion, its reference profile (stored at training), holdout figures, label.
2. `read_window` the prediction log's window once; on it, `check_window`: per-feature drift and the
   dataset verdict, and 3. `check_labels`: the model on the predictions whose outcomes are known (decay).
4. `check_skew`: online values against the offline store's (optional).
5. `conclude`: persistence over the last windows (k of n), the event decision, the summary.
6. `write_outputs`: JSON and HTML reports, the history line, the Prometheus gauges file, MLflow run.
The Prefect flow adds the markdown artifact and the `featureloop.drift.detected` event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from featureloop.monitoring.checks import check_labels, check_skew, check_window, conclude, load_champion
from featureloop.monitoring.outputs import build_report, publish, read_history
from featureloop.monitoring.window import read_window, resolve_window
from featureloop.params import DriftParams
from featureloop.settings import Settings
from featureloop.steps import PlainSteps, Steps

if TYPE_CHECKING:
    from mlflow import MlflowClient


@dataclass(frozen=True)
class DriftRun:
    """A drift run's result: the summary (as `conclude` made it: the flow's result and the event's
    payload), the full report (JSON-safe) and the paths of its outputs (and the MLflow run id)."""

    summary: dict[str, Any]
    report: dict[str, Any]
    paths: dict[str, str]


def drift_pipeline(
    steps: Steps, settings: Settings, params: DriftParams, client: MlflowClient | None = None
) -> DriftRun:
    """Every step of a drift run, each through `steps`. Raises `NoWindow` when there is nothing to
    check (no champion, no prediction log, no plausible served row)."""
    client, champion = steps("load_champion", load_champion, settings, client)
    span = resolve_window(settings, params)
    start, end = span.start, span.end
    steps.info(
        f"model {champion.version.name} v{champion.version.version}: window {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M}"
        + (
            f" ({span.out_of_range:,} logged rows outside the accepted prediction times, ignored)"
            if span.out_of_range
            else ""
        )
    )
    served = steps("read_window", read_window, settings, start, end)
    earlier = None
    if params.seasonal_reference_hours:
        season = timedelta(hours=params.seasonal_reference_hours)
        earlier = steps("read_seasonal_reference", read_window, settings, start - season, end - season)
    window = steps("check_window", check_window, champion, served, params, earlier)
    by_version = ", ".join(f"v{v} {n:,}" for v, n in window["served_by"].items())
    steps.info(
        f"drift: {window['rows']:,} rows ({by_version or 'none'}), "
        f"{len(window['verdict']['drifted_features'])} features drifted"
    )
    decay = steps("check_labels", check_labels, settings, champion, served, params)
    steps.info(f"labels: {decay['labelled']:,} labelled of {decay['served']:,} served")
    skew = steps("check_skew", check_skew, settings, champion, params)
    if skew is not None:
        steps.info(f"skew: {skew['mismatches']} mismatches")
    history = read_history(settings, champion.version.name)
    summary = conclude(champion, span, window, decay, skew, history, params)
    if summary["event"]:
        hold_for_release(client, summary)
    report = build_report(champion, window, decay, skew, summary)
    paths = steps("write_outputs", publish, client, settings, report, history)
    return DriftRun(summary, report, paths)


def hold_for_release(client: MlflowClient, summary: dict[str, Any]) -> None:
    """No event while a release is live: its version was trained for this drift (or an earlier one),
    and the retrain the event starts would replace it before its stages are decided. The reasons
    stay in the summary; `held` says why nothing fires. (A person can still start a release.)"""
    from featureloop.release.state import in_progress

    live = in_progress(client, summary["model"])
    if live is not None:
        summary["event"] = False
        summary["held"] = (
            f"event held: version {live.version}'s release is in its {live.tags['release.stage']} stage; "
            "the next retrain waits for its decision"
        )


def run_drift(
    settings: Settings,
    params: DriftParams,
    client: MlflowClient | None = None,
    report: Callable[[str], None] = lambda _message: None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Every step of a drift run without Prefect (the CLI's path); returns the report and file paths."""
    run = drift_pipeline(PlainSteps(report), settings, params, client)
    return run.report, run.paths
