"""One drift run: a window of served predictions against the champion's training reference.

Steps (each a task of the Prefect `drift` flow, callable on their own):
1. `load_champion`: the champion, its reference profile (stored at training), holdout figures, label.
2. `read_window` the prediction log's window once; on it, `check_window`: per-feature drift and the
   dataset verdict, and 3. `check_labels`: the model on the predictions whose outcomes are known (decay).
4. `check_skew`: online values against the offline store's (optional).
5. `conclude`: persistence over the last windows (k of n), the event decision, the summary.
6. `write_outputs`: JSON and HTML reports, the history line, the Prometheus gauges file, MLflow run.
The Prefect flow adds the markdown artifact and the `featureloop.drift.detected` event.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featureloop.params import DriftParams
from featureloop.settings import Settings

if TYPE_CHECKING:
    import pyarrow as pa
    from mlflow import MlflowClient

    from featureloop.training.registry import VersionInfo

EVENT = "featureloop.drift.detected"


@dataclass(frozen=True)
class Champion:
    version: VersionInfo
    reference: dict[str, Any]
    holdout: dict[str, float]
    label_threshold_minutes: int


class NoWindow(RuntimeError):
    """There is nothing to check (no champion, no prediction log); the message says what to do."""


def load_champion(client: MlflowClient, settings: Settings) -> Champion:
    from featureloop.training.registry import CHAMPION, get_alias, load_reference_profile

    version = get_alias(client, settings.model_name, CHAMPION)
    if version is None:
        raise NoWindow(f"model {settings.model_name!r} has no champion: train and promote one first")
    holdout = {
        k: version.metric(k)
        for k in ("roc_auc", "ece", "n", "positive_rate")
        if f"holdout.{k}" in version.tags
    }
    return Champion(
        version=version,
        reference=load_reference_profile(client, version),
        holdout=holdout,
        label_threshold_minutes=int(version.tags.get("label_threshold_minutes", "15")),
    )


@dataclass(frozen=True)
class Window:
    """[start, end) of a drift run, and the logged rows whose prediction time lies outside the
    accepted range (see featureloop.event_time): ignored, counted, reported."""

    start: datetime
    end: datetime
    out_of_range: int = 0


def resolve_window(settings: Settings, params: DriftParams, now: datetime | None = None) -> Window:
    """The window to check; the default end is just after the newest served row whose prediction
    time is plausible: within the accepted range, and not further ahead of the server's clock when
    it was served (`served_at`) than the range allows. A hostile row cannot move the window."""
    import duckdb

    from featureloop.sql import quote_literal

    log_dir = settings.prediction_log_dir
    if not any(log_dir.rglob("*.parquet")):
        raise NoWindow(f"no prediction log under {log_dir}: serve some predictions first")
    bounds = settings.event_time_bounds
    now = now or datetime.now(UTC)
    source = f"read_parquet({quote_literal(str(log_dir / '**' / '*.parquet'))}, union_by_name = true)"
    with duckdb.connect() as con:
        columns = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
        if "event_timestamp" not in columns:
            raise NoWindow(f"the prediction log under {log_dir} has no event_timestamp column")
        # epoch() differences: served_at + the allowance could overflow on a hostile served_at.
        served = (
            f" AND (served_at IS NULL OR epoch(event_timestamp) - epoch(served_at) <= "
            f"{bounds.max_ahead.total_seconds()})"
            if "served_at" in columns
            else ""
        )
        plausible = (
            f"event_timestamp >= {quote_literal(bounds.earliest.isoformat())}::TIMESTAMPTZ "
            f"AND event_timestamp <= {quote_literal(bounds.latest(now).isoformat())}::TIMESTAMPTZ{served}"
        )
        newest, out_of_range = con.execute(
            f"SELECT max(event_timestamp) FILTER (WHERE {plausible}), "
            f"count(*) FILTER (WHERE NOT coalesce({plausible}, false)) FROM {source}"
        ).fetchall()[0]
    end = params.window_end
    if end is None:
        if newest is None:
            raise NoWindow(
                f"no served row under {log_dir} has a prediction time in the accepted range "
                f"({out_of_range:,} rows lie outside it or have none; see FEATURELOOP_EVENT_TIME_*): "
                "serve some predictions, or give the window explicitly"
            )
        # Just after the newest row, on a whole second (the window end is exclusive).
        end = newest.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
    try:
        start = params.window_start or end - timedelta(hours=params.window_hours)
    except OverflowError:  # a window longer than the calendar: all of it
        start = datetime.min.replace(tzinfo=UTC)
    return Window(start, end, int(out_of_range))


def read_window(settings: Settings, champion: Champion, start: datetime, end: datetime) -> pa.Table:
    """The prediction log rows the champion answered in [start, end), read once (one scan of the
    log's files; both checks work on it in memory)."""
    import duckdb

    from featureloop.monitoring.comparison import log_window

    relation = log_window(settings.prediction_log_dir, start, end, champion.version.version)
    with duckdb.connect() as con:
        return con.sql(f"SELECT * FROM {relation}").to_arrow_table()


def _in_memory(window: pa.Table) -> tuple[Any, str]:
    import duckdb

    con = duckdb.connect()
    con.register("served_window", window)
    return con, "served_window"


def check_window(champion: Champion, window: pa.Table, params: DriftParams) -> dict[str, Any]:
    from featureloop.monitoring.comparison import compare_window

    con, relation = _in_memory(window)
    with con:
        return compare_window(
            champion.reference, relation, params.drift, weights=params.feature_weights or None, con=con
        )


def check_labels(
    settings: Settings, champion: Champion, window: pa.Table, params: DriftParams
) -> dict[str, Any]:
    from featureloop.monitoring.decay import decay_summary, labelled_predictions, measure_decay

    as_of = params.labels_as_of or datetime.now(UTC)
    con, relation = _in_memory(window)
    with con:
        labels, probabilities, served = labelled_predictions(
            relation,
            settings.offline_dir / "flights.parquet",
            as_of,
            champion.label_threshold_minutes,
            con=con,
        )
    if not champion.holdout:
        return {"decayed": None, "labelled": len(labels), "served": served,
                "reason": "the champion recorded no holdout metrics; no decay verdict"}  # fmt: skip
    summary = decay_summary(measure_decay(labels, probabilities, served, champion.holdout, params.decay))
    summary["labels_as_of"] = as_of.isoformat()
    return summary


def check_skew(settings: Settings, champion: Champion, params: DriftParams) -> dict[str, Any] | None:
    if params.skew_sample == 0:
        return None
    from featureloop.featurestore.store import open_store
    from featureloop.monitoring.skew import check_service

    service = champion.version.tags.get("feature_service", "")
    return check_service(open_store(settings), service, sample=params.skew_sample)


def read_history(settings: Settings, model_name: str) -> list[dict[str, Any]]:
    """Earlier runs' summaries for this model, oldest first (by window end)."""
    path = settings.drift_dir / "history.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted((r for r in rows if r.get("model") == model_name), key=lambda r: r["window_end"])


def conclude(
    champion: Champion,
    span: Window,
    window: dict[str, Any],
    decay: dict[str, Any],
    skew: dict[str, Any] | None,
    history: list[dict[str, Any]],
    params: DriftParams,
) -> dict[str, Any]:
    """The run's summary: verdicts, persistence over the last windows, and whether the event fires."""
    from featureloop.monitoring.drift import persistent

    start, end = span.start, span.end
    # Persistence counts the windows of this model version: a new champion has a new reference.
    earlier = [
        h
        for h in history
        if h["window_end"] < end.isoformat() and h["model_version"] == champion.version.version
    ]
    verdicts = [h["drifted"] for h in earlier] + [window["verdict"]["drifted"]]
    persists = persistent(verdicts, params.persistence_k, params.persistence_n)
    with_verdict = [v for v in verdicts if v is not None][-params.persistence_n :]
    reasons = []
    if persists:
        reasons.append(
            f"drift in {sum(bool(v) for v in with_verdict)} of the last {len(with_verdict)} windows"
        )
    if decay.get("decayed"):
        reasons.append(f"decay: {decay['reason']}")
    metrics = decay.get("metrics") or {}
    return {
        "model": champion.version.name,
        "model_version": champion.version.version,
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "rows": window["rows"],
        "rows_out_of_range": span.out_of_range,
        "drifted": window["verdict"]["drifted"],
        "share": window["verdict"]["share"],
        "drifted_features": window["verdict"]["drifted_features"],
        "persistence": (
            f"{sum(bool(v) for v in with_verdict)} of the last {len(with_verdict)} windows with a verdict drifted "
            f"(event at {params.persistence_k} of {params.persistence_n})"
        ),
        "auc": metrics.get("roc_auc"),
        "ece": metrics.get("ece"),
        "holdout_auc": champion.holdout.get("roc_auc"),
        "labelled": decay.get("labelled", 0),
        "decayed": decay.get("decayed"),
        "skew_mismatches": skew["mismatches"] if skew else None,
        "event": bool(reasons),
        "reasons": reasons,
    }


def build_report(
    champion: Champion,
    window: dict[str, Any],
    decay: dict[str, Any],
    skew: dict[str, Any] | None,
    summary: dict[str, Any],
) -> dict[str, Any]:
    return json_safe(
        {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "model": {
                "name": champion.version.name,
                "version": champion.version.version,
                "feature_service": champion.version.tags.get("feature_service", ""),
                "run_id": champion.version.run_id,
            },
            "window": {"start": summary["window_start"], "end": summary["window_end"]},
            **window,
            "decay": decay,
            "skew": skew,
            "summary": summary,
        }
    )


def json_safe(value: Any) -> Any:
    """The value with NaN/inf as None, datetimes as ISO text and numpy scalars as Python ones."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return json_safe(value.item())
    return value


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        handle.write(text)
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(handle.name, 0o666 & ~mask)  # readable like any other file (temporary files are 0600)
    os.replace(handle.name, path)


def gauges_text(report: dict[str, Any]) -> str:
    """The run's Prometheus gauges (text format), served by the serving app's /metrics."""
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry()
    version = report["model"]["version"]
    summary = report["summary"]

    def gauge(name: str, help_: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, help_, ["model_version", *labels], registry=registry)

    def tri(value: bool | None) -> float:
        return -1.0 if value is None else float(value)

    gauge(
        "featureloop_drift_verdict",
        "Dataset drift verdict of the last window (1 drift, 0 none, -1 no verdict).",
    ).labels(version).set(tri(summary["drifted"]))
    gauge("featureloop_drift_share", "Weighted share of drifted features in the last window.").labels(
        version
    ).set(summary["share"])
    gauge("featureloop_drift_event", "1 when the last run sent featureloop.drift.detected.").labels(
        version
    ).set(float(summary["event"]))
    gauge("featureloop_drift_window_rows", "Served rows in the last window.").labels(version).set(
        summary["rows"]
    )
    gauge("featureloop_drift_window_end_seconds", "End of the last checked window (Unix time).").labels(
        version
    ).set(datetime.fromisoformat(summary["window_end"]).timestamp())
    gauge(
        "featureloop_decay_verdict", "Decay verdict on delayed labels (1 decayed, 0 not, -1 no verdict)."
    ).labels(version).set(tri(summary["decayed"]))
    # Always exported (NaN: not measured this run) so that the series and the alert rules stay defined.
    gauge("featureloop_window_roc_auc", "ROC AUC on the last window's labelled predictions.").labels(
        version
    ).set(math.nan if summary["auc"] is None else summary["auc"])
    gauge("featureloop_skew_mismatches", "Online values that differ from the offline store's.").labels(
        version
    ).set(math.nan if summary["skew_mismatches"] is None else summary["skew_mismatches"])
    psi = gauge("featureloop_drift_feature_psi", "PSI of each feature in the last window.", ("feature",))
    drifted = gauge(
        "featureloop_drift_feature_drifted", "1 when the feature drifted in the last window.", ("feature",)
    )
    for f in report["features"]:
        psi.labels(version, f["name"]).set(f["psi"])
        drifted.labels(version, f["name"]).set(float(f["drifted"]))
    return generate_latest(registry).decode()


def write_outputs(
    settings: Settings, report: dict[str, Any], history: list[dict[str, Any]]
) -> dict[str, str]:
    """JSON and HTML reports, the history line and the gauges file (each written atomically)."""
    from featureloop.monitoring.report import render

    folder = settings.drift_dir
    end = datetime.fromisoformat(report["summary"]["window_end"])
    stem = f"{end:%Y%m%dT%H%M%S}-v{report['model']['version']}"
    paths = {
        "json": folder / "reports" / f"{stem}.json",
        "html": folder / "reports" / f"{stem}.html",
        "gauges": folder / "metrics.prom",
    }
    _atomic_write(paths["json"], json.dumps(report, indent=1))
    _atomic_write(paths["html"], render(report, history))
    _atomic_write(paths["gauges"], gauges_text(report))
    # The history keeps one line per window and model version; a rerun replaces its line.
    key = (report["summary"]["model"], report["summary"]["model_version"], report["summary"]["window_end"])
    path = folder / "history.jsonl"
    lines = (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    )
    lines = [r for r in lines if (r["model"], r["model_version"], r["window_end"]) != key] + [
        report["summary"]
    ]
    _atomic_write(path, "".join(json.dumps(r) + "\n" for r in lines))
    return {k: str(v) for k, v in paths.items()}


def log_to_mlflow(
    client: MlflowClient, settings: Settings, report: dict[str, Any], paths: dict[str, str]
) -> str:
    """A run in the `<experiment>-drift` experiment: the key figures as metrics, both reports as artifacts."""
    from featureloop.training.registry import connect

    _, experiment_id = connect(
        settings.tracking_uri, settings.artifact_location, f"{settings.experiment}-drift"
    )
    summary = report["summary"]
    run = client.create_run(
        experiment_id,
        run_name=f"drift {summary['window_end'][:19]} v{summary['model_version']}",
        tags={
            "featureloop.kind": "drift",
            "model_name": summary["model"],
            "model_version": summary["model_version"],
            "window_start": summary["window_start"],
            "window_end": summary["window_end"],
        },
    )
    metrics = {
        "rows": summary["rows"],
        "drift_share": summary["share"],
        "drifted_features": len(summary["drifted_features"]),
        "event": float(summary["event"]),
        "labelled": summary["labelled"],
    }
    metrics |= {k: summary[k] for k in ("auc", "ece", "skew_mismatches") if summary[k] is not None}
    for name, value in metrics.items():
        client.log_metric(run.info.run_id, name, float(value))
    client.log_artifact(run.info.run_id, paths["json"])
    client.log_artifact(run.info.run_id, paths["html"])
    client.set_terminated(run.info.run_id)
    return str(run.info.run_id)


def markdown(report: dict[str, Any], paths: dict[str, str]) -> str:
    """The Prefect artifact: verdicts, then the most drifted features."""
    s = report["summary"]
    label = {True: "**DRIFT**", False: "no drift", None: "no verdict"}[s["drifted"]]
    decay = {True: "**DECAY**", False: "no decay", None: "no verdict"}[s["decayed"]]
    top = [f for f in report["features"] if f["drifted"]][:10] or report["features"][:5]
    rows = "\n".join(
        f"| {f['name']} | {'yes' if f['drifted'] else 'no'} | {f['p_value']:.2e} | {f['psi']:.4f} | {'; '.join(f['notes'])} |"
        for f in top
    )
    auc = f"{s['auc']:.3f}" if s["auc"] is not None else "-"
    return (
        f"# Drift: model {s['model']} v{s['model_version']}, {s['window_start'][:16]} .. {s['window_end'][:16]}\n\n"
        f"- window: {s['rows']:,} rows"
        + (
            f" ({s['rows_out_of_range']:,} logged rows outside the accepted prediction times, ignored)"
            if s.get("rows_out_of_range")
            else ""
        )
        + f"; drift {label} ({s['share']:.0%} of features); {s['persistence']}\n"
        f"- delayed labels: {decay}; window ROC AUC {auc} on {s['labelled']:,} labels "
        f"(holdout {s['holdout_auc']})\n"
        f"- skew mismatches: {s['skew_mismatches']}\n"
        f"- event `{EVENT}`: {'sent: ' + '; '.join(s['reasons']) if s['event'] else 'not sent'}\n"
        f"- report: `{paths['html']}`\n\n"
        f"| feature | drifted | p-value | PSI | notes |\n|---|---|---|---|---|\n{rows}\n"
    )


def run_drift(
    settings: Settings,
    params: DriftParams,
    client: MlflowClient | None = None,
    report: Callable[[str], None] = lambda _message: None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Every step of a drift run without Prefect (the CLI's path); returns the report and file paths."""
    from featureloop.training.registry import connect

    if client is None:
        client, _ = connect(settings.tracking_uri, settings.artifact_location, settings.experiment)
    champion = load_champion(client, settings)
    span = resolve_window(settings, params)
    start, end = span.start, span.end
    report(
        f"model {champion.version.name} v{champion.version.version}: window {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M}"
        + (
            f" ({span.out_of_range:,} logged rows outside the accepted prediction times, ignored)"
            if span.out_of_range
            else ""
        )
    )
    served = read_window(settings, champion, start, end)
    window = check_window(champion, served, params)
    report(f"drift: {window['rows']:,} rows, {len(window['verdict']['drifted_features'])} features drifted")
    decay = check_labels(settings, champion, served, params)
    report(f"labels: {decay['labelled']:,} labelled of {decay['served']:,} served")
    skew = check_skew(settings, champion, params)
    if skew is not None:
        report(f"skew: {skew['mismatches']} mismatches")
    history = read_history(settings, champion.version.name)
    summary = conclude(champion, span, window, decay, skew, history, params)
    full = build_report(champion, window, decay, skew, summary)
    return full, publish(client, settings, full, history)


def publish(
    client: MlflowClient, settings: Settings, report: dict[str, Any], history: list[dict[str, Any]]
) -> dict[str, str]:
    """Write the run's outputs (beside the earlier windows' history) and log them to MLflow."""
    end = report["summary"]["window_end"]
    paths = write_outputs(settings, report, [h for h in history if h["window_end"] < end])
    paths["mlflow_run_id"] = log_to_mlflow(client, settings, report, paths)
    return paths
