"""What a drift run leaves behind: the JSON report, the HTML report, the history line per window,
the Prometheus gauges file the serving app's /metrics includes, the MLflow run, and the markdown the
Prefect flow shows as an artifact. Files are written atomically (a reader never sees half of one).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featureloop.monitoring.checks import EVENT, Champion
from featureloop.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient


def read_history(settings: Settings, model_name: str) -> list[dict[str, Any]]:
    """Earlier runs' summaries for this model, oldest first (by window end)."""
    path = settings.drift_dir / "history.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted((r for r in rows if r.get("model") == model_name), key=lambda r: r["window_end"])


def build_report(
    champion: Champion,
    window: dict[str, Any],
    decay: dict[str, Any],
    skew: dict[str, Any] | None,
    summary: dict[str, Any],
) -> dict[str, Any]:
    """The JSON report: the model, the window, per-feature results and histograms, the verdict,
    decay, skew and the summary (JSON-safe)."""
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

    def verdict_value(value: bool | None) -> float:
        return -1.0 if value is None else float(value)

    gauge(
        "featureloop_drift_verdict",
        "Dataset drift verdict of the last window (1 drift, 0 none, -1 no verdict).",
    ).labels(version).set(verdict_value(summary["drifted"]))
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
    ).labels(version).set(verdict_value(summary["decayed"]))
    # Always exported (NaN: not measured this run) so that the series and the alert rules stay defined.
    gauge("featureloop_window_roc_auc", "ROC AUC on the last window's labelled predictions.").labels(
        version
    ).set(math.nan if summary["auc"] is None else summary["auc"])
    gauge("featureloop_window_mae", "MAE on the last window's labelled predictions (regression).").labels(
        version
    ).set(math.nan if summary.get("mae") is None else summary["mae"])
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
    from featureloop.training.registry import open_tracking

    _, experiment_id = open_tracking(settings, f"{settings.experiment}-drift")
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
    metrics |= {k: summary[k] for k in ("auc", "ece", "mae", "skew_mismatches") if summary.get(k) is not None}
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
    if s.get("mae") is not None or s.get("holdout_mae") is not None:
        mae = f"{s['mae']:.4g}" if s.get("mae") is not None else "-"
        quality = f"window MAE {mae} on {s['labelled']:,} labels (holdout {s.get('holdout_mae')})"
    else:
        auc = f"{s['auc']:.3f}" if s["auc"] is not None else "-"
        quality = f"window ROC AUC {auc} on {s['labelled']:,} labels (holdout {s['holdout_auc']})"
    return (
        f"# Drift: model {s['model']} v{s['model_version']}, {s['window_start'][:16]} .. {s['window_end'][:16]}\n\n"
        f"- window: {s['rows']:,} rows"
        + (
            f" (served by {', '.join(f'v{v} {n:,}' for v, n in s['served_by'].items())})"
            if len(s.get("served_by") or {}) > 1
            else ""
        )
        + (
            f" ({s['rows_out_of_range']:,} logged rows outside the accepted prediction times, ignored)"
            if s.get("rows_out_of_range")
            else ""
        )
        + f"; drift {label} ({s['share']:.0%} of features); {s['persistence']}\n"
        f"- delayed labels (v{s['model_version']}'s own rows): {decay}; {quality}\n"
        f"- skew mismatches: {s['skew_mismatches']}\n"
        f"- event `{EVENT}`: {'sent: ' + '; '.join(s['reasons']) if s['event'] else 'not sent'}\n"
        f"- report: `{paths['html']}`\n\n"
        f"| feature | drifted | p-value | PSI | notes |\n|---|---|---|---|---|\n{rows}\n"
    )


def publish(
    client: MlflowClient, settings: Settings, report: dict[str, Any], history: list[dict[str, Any]]
) -> dict[str, str]:
    """Write the run's outputs (beside the earlier windows' history) and log them to MLflow."""
    end = report["summary"]["window_end"]
    paths = write_outputs(settings, report, [h for h in history if h["window_end"] < end])
    paths["mlflow_run_id"] = log_to_mlflow(client, settings, report, paths)
    return paths
