"""Delayed labels: the served predictions of a window joined with the outcomes known so far.

A prediction's outcome becomes known after it was scored, when the project's spec says (a column
of the spine, e.g. when a delivery was confirmed, or a fixed time after the prediction). A drift run at
time `as_of` joins the prediction log with the spine's rows (on the spine's id) whose outcome was
known by then, labels them with the spec's label expression, and measures the serving model on them
against the same figures on the model's training holdout: ROC AUC and calibration (ECE) for a binary
task, MAE and RMSE for regression. A loss beyond the configured margins (and, for the headline
figure, beyond sampling noise) is decay: a retrain reason of its own, whatever the feature
distributions say.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from featureloop.monitoring.thresholds import DecayConfig
from featureloop.project.spec import OutcomeKnown, Spine
from featureloop.sql import quote_identifier, quote_literal, session
from featureloop.training.metrics import calibration_table, evaluate, evaluate_regression


@dataclass(frozen=True)
class Decay:
    """The model on the window's labelled predictions; `decayed` is None without enough labels."""

    decayed: bool | None
    labelled: int
    served: int
    reason: str
    metrics: dict[str, float] = field(default_factory=dict)
    holdout: dict[str, float] = field(default_factory=dict)
    calibration: list[dict[str, float]] = field(default_factory=list)


def outcomes_sql(spine_path: Path, spine: Spine, outcome: OutcomeKnown, label: str) -> str:
    """The spine's rows as (__id, __label, __known_at): the id, the label expression, and when the
    outcome is known (`known_at_sql`)."""
    from featureloop.project.outcomes import known_at_sql

    return (
        f"(SELECT {quote_identifier(spine.id)} AS __id, ({label}) AS __label, "
        f"{known_at_sql(spine, outcome)} AS __known_at "
        f"FROM read_parquet({quote_literal(str(spine_path))}))"
    )


def labelled_predictions(
    log_relation: str,
    outcomes: str,
    id_column: str,
    as_of: datetime,
    *,
    con: duckdb.DuckDBPyConnection | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Labels and predictions of the window's served predictions whose outcome was known by
    `as_of` (`outcomes`: `outcomes_sql`; the last prediction served for an id counts), and how many
    distinct ids were served."""
    con = con or session()
    pid = quote_identifier(id_column)
    served = (
        f"(SELECT {pid} AS __id, arg_max(prediction, served_at) AS prediction FROM {log_relation} "
        f"WHERE {pid} IS NOT NULL GROUP BY {pid})"
    )
    (n_served,) = con.execute(f"SELECT count(*) FROM {served}").fetchall()[0]
    rows = con.execute(
        f"SELECT f.__label::DOUBLE AS label, s.prediction FROM {served} s JOIN {outcomes} f USING (__id) "
        f"WHERE f.__label IS NOT NULL AND f.__known_at <= {quote_literal(as_of.isoformat())}::TIMESTAMPTZ"
    ).fetchnumpy()
    return np.asarray(rows["label"], dtype=float), np.asarray(rows["prediction"], dtype=float), int(n_served)


def measure_decay(
    labels: np.ndarray,
    probabilities: np.ndarray,
    served: int,
    holdout: dict[str, float],
    config: DecayConfig,
    task: str = "binary",
) -> Decay:
    """The task's metrics on the labelled predictions, against the training holdout's."""
    n = len(labels)
    if n < config.min_labels:
        reason = f"{n} labelled predictions < {config.min_labels} (of {served} served); no decay verdict"
        return Decay(None, n, served, reason, holdout=holdout)
    if task == "regression":
        return _regression_decay(labels, probabilities, served, holdout, config)
    labels = labels.astype(int)
    if len(np.unique(labels)) < 2:
        return Decay(
            None,
            n,
            served,
            f"all {n} labelled predictions have one outcome; no decay verdict",
            holdout=holdout,
        )
    metrics = evaluate(labels, probabilities)
    drop = holdout["roc_auc"] - metrics["roc_auc"]
    rise = metrics["ece"] - holdout["ece"]
    # Both AUCs are estimates: a drop counts only beyond the margin *and* beyond sampling noise
    # (1.96 standard errors of the difference, Hanley-McNeil), or small windows and small holdouts
    # would report decay that is not there.
    noise = 1.96 * math.hypot(
        auc_standard_error(metrics["roc_auc"], metrics["n"], metrics["positive_rate"]),
        auc_standard_error(holdout["roc_auc"], holdout.get("n", 0.0), holdout.get("positive_rate", 0.0)),
    )
    metrics["auc_drop_noise"] = noise
    reasons = []
    if drop > config.max_auc_drop and drop > noise:
        reasons.append(
            f"ROC AUC {metrics['roc_auc']:.3f} is {drop:.3f} below the holdout's {holdout['roc_auc']:.3f}"
        )
    if rise > config.max_ece_rise:
        reasons.append(
            f"calibration error {metrics['ece']:.3f} is {rise:.3f} above the holdout's {holdout['ece']:.3f}"
        )
    reason = "; ".join(reasons) or (
        f"ROC AUC {metrics['roc_auc']:.3f} (holdout {holdout['roc_auc']:.3f}, noise +/- {noise:.3f}), "
        f"ECE {metrics['ece']:.3f} (holdout {holdout['ece']:.3f}): within margins"
    )
    return Decay(bool(reasons), n, served, reason, metrics, holdout, calibration_table(labels, probabilities))


def _regression_decay(
    labels: np.ndarray, predicted: np.ndarray, served: int, holdout: dict[str, float], config: DecayConfig
) -> Decay:
    """MAE and RMSE against the holdout's, each rise as a share of the holdout's figure, counted only
    beyond sampling noise (1.96 standard errors of the difference of the two windows' figures)."""
    n = len(labels)
    metrics = evaluate_regression(labels, predicted)
    if "mae" not in holdout:
        return Decay(None, n, served, "the champion's holdout has no MAE; no decay verdict", metrics, holdout)
    rise = metrics["mae"] - holdout["mae"]
    noise = 1.96 * math.hypot(metrics["mae_se"], holdout.get("mae_se", 0.0))
    metrics["mae_rise_noise"] = noise
    reasons = []
    if holdout["mae"] > 0 and rise / holdout["mae"] > config.max_mae_rise and rise > noise:
        reasons.append(
            f"MAE {metrics['mae']:.4g} is {rise / holdout['mae']:.0%} above the holdout's {holdout['mae']:.4g}"
        )
    rmse_rise = metrics["rmse"] - holdout.get("rmse", metrics["rmse"])
    rmse_noise = 1.96 * math.hypot(metrics["rmse_se"], holdout.get("rmse_se", 0.0))
    metrics["rmse_rise_noise"] = rmse_noise
    if (
        holdout.get("rmse", 0) > 0
        and rmse_rise / holdout["rmse"] > config.max_rmse_rise
        and rmse_rise > rmse_noise
    ):
        reasons.append(
            f"RMSE {metrics['rmse']:.4g} is {rmse_rise / holdout['rmse']:.0%} above the holdout's {holdout['rmse']:.4g}"
        )
    reason = "; ".join(reasons) or (
        f"MAE {metrics['mae']:.4g} (holdout {holdout['mae']:.4g}, noise +/- {noise:.3g}), "
        f"RMSE {metrics['rmse']:.4g} (holdout {holdout.get('rmse', float('nan')):.4g}): within margins"
    )
    return Decay(bool(reasons), n, served, reason, metrics, holdout)


def auc_standard_error(auc: float, n: float, positive_rate: float) -> float:
    """Hanley and McNeil's standard error of a ROC AUC; 0 when the sample size is unknown."""
    positives, negatives = n * positive_rate, n * (1 - positive_rate)
    if positives < 1 or negatives < 1:
        return 0.0
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) / (
        positives * negatives
    )
    return math.sqrt(max(variance, 0.0))


def decay_summary(decay: Decay) -> dict[str, Any]:
    """The JSON-ready record of a decay check."""
    return {
        "decayed": decay.decayed,
        "labelled": decay.labelled,
        "served": decay.served,
        "reason": decay.reason,
        "metrics": decay.metrics,
        "holdout": decay.holdout,
        "calibration": decay.calibration,
    }
