"""Model quality: the metrics training, the gate and decay report, and the calibration table."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Mean prediction against observed rate in equal-width probability bins (non-empty bins only)."""
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    table = []
    for b in range(bins):
        mask = index == b
        if mask.any():
            table.append(
                {
                    "bin_low": float(edges[b]),
                    "bin_high": float(edges[b + 1]),
                    "n": int(mask.sum()),
                    "mean_predicted": float(p[mask].mean()),
                    "observed_rate": float(y[mask].mean()),
                }
            )
    return table


def evaluate(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC AUC, PR AUC, log loss, Brier score and expected calibration error (10 bins)."""
    y = np.asarray(y, dtype=float)
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    table = calibration_table(y, p)
    ece = sum(row["n"] * abs(row["mean_predicted"] - row["observed_rate"]) for row in table) / len(y)
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "ece": float(ece),
        "positive_rate": float(y.mean()),
        "n": float(len(y)),
    }


def evaluate_regression(y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and R2, with their standard errors (decay's noise: MAE's is the mean absolute
    error's; RMSE's by the delta method from the mean squared error's) and the label's mean."""
    y = np.asarray(y, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    errors = np.abs(y - predicted)
    n = len(y)
    spread = float(np.var(y))
    rmse = float(np.sqrt(np.mean(errors**2)))
    return {
        "mae": float(errors.mean()),
        "rmse": rmse,
        "r2": float(1 - np.mean(errors**2) / spread) if spread > 0 else float("nan"),
        "mae_se": float(errors.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0,
        "rmse_se": float((errors**2).std(ddof=1) / np.sqrt(n) / (2 * rmse)) if n > 1 and rmse > 0 else 0.0,
        "label_mean": float(y.mean()),
        "n": float(n),
    }
