"""`drift`: a window of served predictions checked for drift, decay on delayed labels, and
online/offline skew, with the reports and gauges the Prefect flow `drift` also writes."""

from __future__ import annotations

from typing import Annotated

import typer

from featureloop.cli.common import Clock, fail, labeller, load_settings, parse_time

# The options whose values DriftParams checks, by the model's field name (see TRAIN_OPTIONS).
DRIFT_OPTIONS = {
    "window_start": "--start",
    "window_end": "--end",
    "window_hours": "--hours",
    "skew_sample": "--skew-sample",
}


def drift(
    start: Annotated[
        str | None, typer.Option(help="Window start (ISO, UTC): prediction time of the served rows.")
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(help="Window end (ISO, UTC, exclusive); default: after the newest served row."),
    ] = None,
    hours: Annotated[
        float | None,
        typer.Option(
            help="Window length when --start is not given; default: the project's monitoring.window."
        ),
    ] = None,
    skew_sample: Annotated[
        int | None,
        typer.Option(
            help="Entities per feature view for the skew check (0: skip); default: the project's monitoring.skew_sample."
        ),
    ] = None,
) -> None:
    """Check a window of served predictions for drift, decay on delayed labels, and online/offline skew.

    Writes the HTML and JSON reports (also to MLflow) and the gauges /metrics serves. The Prefect flow
    `drift` does the same and also sends the featureloop.drift.detected event; this command does not.
    The thresholds are the project's (`monitoring` in feature_repo/project.yaml).
    """
    from pydantic import ValidationError

    from featureloop.monitoring.pipeline import run_drift
    from featureloop.monitoring.window import NoWindow
    from featureloop.params import drift_params_for, explain
    from featureloop.project.spec import SpecError, load_spec
    from featureloop.training.registry import TrackingUnavailable

    settings = load_settings()
    clock = Clock()
    typed = {
        "window_start": start,
        "window_end": end,
        "window_hours": None if hours is None else str(hours),
        "skew_sample": None if skew_sample is None else str(skew_sample),
    }
    try:
        monitoring = load_spec(settings.feature_repo).monitoring
    except SpecError as exc:
        raise fail(str(exc)) from exc
    try:
        params = drift_params_for(
            monitoring,
            window_start=parse_time(start, "--start"),
            window_end=parse_time(end, "--end"),
            window_hours=hours,
            skew_sample=skew_sample,
        )
    except ValidationError as exc:
        raise fail(explain(exc, labeller(DRIFT_OPTIONS, typed))) from exc
    try:
        report, paths = run_drift(settings, params, report=clock)
    except (TrackingUnavailable, NoWindow) as exc:
        raise fail(str(exc)) from exc
    s = report["summary"]
    typer.echo(
        f"model {s['model']} version {s['model_version']}, window {s['window_start'][:19]} .. {s['window_end'][:19]}: "
        f"{s['rows']:,} rows; reference: {s.get('reference', 'training')}"
    )
    typer.echo(f"{'feature':<32} {'drifted':<7} {'test':<10} {'p-value':>9} {'PSI':>8}  notes")
    for f in report["features"]:
        typer.echo(
            f"{f['name']:<32} {'yes' if f['drifted'] else 'no':<7} {f['test']:<10} {f['p_value']:9.2e} "
            f"{f['psi']:8.4f}  {'; '.join(f['notes'])}"
        )
    if report["absent"]:
        typer.echo(f"absent from the window: {', '.join(report['absent'])}")
    label = {True: "DRIFT", False: "no drift", None: "no verdict"}
    typer.echo(f"drift:  {label[s['drifted']]} ({report['verdict']['reason']}); {s['persistence']}")
    typer.echo(f"labels: {report['decay']['reason']}")
    if report["skew"] is not None:
        views = ", ".join(f"{v['view']} {v.get('checked', 0)}" for v in report["skew"]["views"])
        typer.echo(f"skew:   {s['skew_mismatches']} mismatches (entities checked: {views})")
    typer.echo(f"report: {paths['html']} (MLflow run {paths['mlflow_run_id']}) in {clock.elapsed:.1f} s")
