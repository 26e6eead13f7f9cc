"""The checks of a drift run, and the conclusion drawn from them.

`load_champion` gives what the window is checked against: the champion, its reference profile
(stored at training), its holdout figures and label delay. On the window: `check_window`, per-feature
drift and the dataset verdict; `check_labels`, the model on the predictions whose outcomes are known
(decay); `check_skew`, online values against the offline store's (optional). `conclude` adds
persistence over the last windows (k of n) and decides whether the event `EVENT` fires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from featureloop.monitoring.window import NoWindow, Window
from featureloop.params import DriftParams
from featureloop.settings import Settings

if TYPE_CHECKING:
    import pyarrow as pa
    from mlflow import MlflowClient

    from featureloop.training.registry import VersionInfo

# Sent (by the Prefect flow) when drift persists or the model decays: the retraining's trigger.
EVENT = "featureloop.drift.detected"


@dataclass(frozen=True)
class Champion:
    """What a window is checked against: the champion's version, its reference profile, its holdout
    metrics, the label it was trained on and its task."""

    version: VersionInfo
    reference: dict[str, Any]
    holdout: dict[str, float]
    label: str | None  # the label expression it was trained on (None: a model from before the spec)
    task: str = "binary"


def load_champion(settings: Settings, client: MlflowClient | None = None) -> tuple[MlflowClient, Champion]:
    """The tracking store (connected here unless given: fails fast, naming the URI) and the champion
    with its reference profile."""
    from featureloop.training.registry import CHAMPION, get_alias, load_reference_profile, open_tracking

    if client is None:
        client, _ = open_tracking(settings)
    version = get_alias(client, settings.model_name, CHAMPION)
    if version is None:
        raise NoWindow(f"model {settings.model_name!r} has no champion: train and promote one first")
    holdout = {
        k: version.metric(k)
        for k in ("roc_auc", "ece", "n", "positive_rate", "mae", "rmse", "r2", "mae_se", "rmse_se")
        if f"holdout.{k}" in version.tags
    }
    return client, Champion(
        version=version,
        reference=load_reference_profile(client, version),
        holdout=holdout,
        label=version.tags.get("label"),
        task=version.tags.get("task", "binary"),
    )


def _in_memory(window: pa.Table) -> tuple[Any, str]:
    from featureloop.sql import session

    con = session()
    con.register("served_window", window)
    return con, "served_window"


def check_window(
    champion: Champion, window: pa.Table, params: DriftParams, earlier: pa.Table | None = None
) -> dict[str, Any]:
    """Per-feature drift and the dataset verdict of the window, against the champion's training
    reference, or (`earlier`: the rows served one season before) against the same phase of the
    cycle, when that window holds at least `min_rows` rows."""
    from featureloop.monitoring.comparison import compare_window
    from featureloop.monitoring.profiles import build_profile
    from featureloop.monitoring.window import rows_by_version

    reference, described = champion.reference, "training"
    if earlier is not None:
        hours = params.seasonal_reference_hours
        if earlier.num_rows >= params.drift.min_rows:
            kinds = {name: f.get("kind") for name, f in champion.reference["features"].items()}
            present = [name for name in kinds if name in earlier.column_names]
            frame = earlier.select(present).to_pandas()
            numeric = [n for n in present if kinds[n] == "numeric"]
            reference = build_profile(frame, numeric, [n for n in present if n not in numeric])
            described = f"seasonal: the {earlier.num_rows:,} rows served {hours:g} h earlier"
        else:
            described = (
                f"training (the window {hours:g} h earlier holds {earlier.num_rows:,} rows "
                f"< min_rows {params.drift.min_rows:,})"
            )
    con, relation = _in_memory(window)
    with con:
        compared = compare_window(
            reference, relation, params.drift, weights=params.feature_weights or None, con=con
        )
    return {**compared, "served_by": rows_by_version(window), "reference": described}


def check_labels(
    settings: Settings, champion: Champion, window: pa.Table, params: DriftParams
) -> dict[str, Any]:
    from featureloop.monitoring.decay import decay_summary, labelled_predictions, measure_decay, outcomes_sql
    from featureloop.monitoring.window import champion_rows
    from featureloop.project.spec import load_spec

    spec = load_spec(settings.feature_repo)
    spine_path = settings.offline_dir / f"{spec.spine.table}.parquet"
    if not spine_path.exists():
        return {"decayed": None, "labelled": 0, "served": 0,
                "reason": f"no outcomes to label with: {spine_path} does not exist; no decay verdict"}  # fmt: skip
    outcomes = outcomes_sql(
        spine_path, spec.spine, spec.task.outcome_known, champion.label or spec.task.label
    )
    as_of = params.labels_as_of or datetime.now(UTC)
    con, relation = _in_memory(champion_rows(window, champion.version.version))
    with con:
        labels, probabilities, served = labelled_predictions(
            relation, outcomes, spec.spine.id, as_of, con=con
        )
    if not champion.holdout:
        return {"decayed": None, "labelled": len(labels), "served": served,
                "reason": "the champion recorded no holdout metrics; no decay verdict"}  # fmt: skip
    summary = decay_summary(
        measure_decay(labels, probabilities, served, champion.holdout, params.decay, champion.task)
    )
    summary["labels_as_of"] = as_of.isoformat()
    return summary


def check_skew(settings: Settings, champion: Champion, params: DriftParams) -> dict[str, Any] | None:
    if params.skew_sample == 0:
        return None
    from featureloop.featurestore.store import open_store
    from featureloop.monitoring.skew import check_service

    service = champion.version.tags.get("feature_service", "")
    return check_service(open_store(settings), service, sample=params.skew_sample)


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
        "served_by": window.get("served_by", {}),
        "reference": window.get("reference", "training"),
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
        "mae": metrics.get("mae"),
        "holdout_mae": champion.holdout.get("mae"),
        "labelled": decay.get("labelled", 0),
        "decayed": decay.get("decayed"),
        "skew_mismatches": skew["mismatches"] if skew else None,
        "skew_checked": skew["checked"] if skew else None,  # entity rows compared, over the views
        "event": bool(reasons),
        "reasons": reasons,
    }
