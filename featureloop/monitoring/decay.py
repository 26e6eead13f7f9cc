"""Delayed labels: the served predictions of a window joined with the outcomes known so far.

A flight's outcome is known at `outcome_known_ts` (its gate arrival), hours after it was
scored. A drift run at time `as_of` joins the prediction log with the flights whose outcome was known
by then and measures the serving model on them: ROC AUC and calibration (ECE), against the same
figures on the model's training holdout. A drop beyond the configured margins is decay: a retrain
reason of its own, whatever the feature distributions say.
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
from featureloop.sql import quote_literal, session
from featureloop.training.metrics import calibration_table, evaluate


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


def labelled_predictions(
    log_relation: str,
    flights_path: Path,
    as_of: datetime,
    threshold_minutes: int,
    *,
    con: duckdb.DuckDBPyConnection | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Labels and probabilities of the window's served flights whose outcome was known by `as_of`
    (the last prediction served for a flight counts), and how many distinct flights were served."""
    con = con or session()
    flights = f"read_parquet({quote_literal(str(flights_path))})"
    served = (
        f"(SELECT flight_id, arg_max(probability, served_at) AS probability FROM {log_relation} "
        f"WHERE flight_id IS NOT NULL GROUP BY flight_id)"
    )
    (n_served,) = con.execute(f"SELECT count(*) FROM {served}").fetchall()[0]
    rows = con.execute(
        f"SELECT (f.arr_delay > {int(threshold_minutes)})::INTEGER AS label, s.probability "
        f"FROM {served} s JOIN {flights} f USING (flight_id) "
        f"WHERE f.arr_delay IS NOT NULL AND f.outcome_known_ts <= {quote_literal(as_of.isoformat())}::TIMESTAMPTZ"
    ).fetchnumpy()
    return np.asarray(rows["label"], dtype=int), np.asarray(rows["probability"], dtype=float), int(n_served)


def measure_decay(
    labels: np.ndarray, probabilities: np.ndarray, served: int, holdout: dict[str, float], config: DecayConfig
) -> Decay:
    """ROC AUC and calibration on the labelled predictions, against the training holdout's."""
    n = len(labels)
    if n < config.min_labels:
        reason = f"{n} labelled predictions < {config.min_labels} (of {served} served); no decay verdict"
        return Decay(None, n, served, reason, holdout=holdout)
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
