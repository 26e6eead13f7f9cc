"""A release stage's decision from its live evidence (pure: numpy and scipy, no I/O).

A stage decides once its window has closed (enough rows served in it, or its time is up) and the
delayed labels of its rows have come in (or the wait for them is over). The challenger goes on when
it is not worse than the champion on every count: its labelled metric (ROC AUC, or MAE for a
regression), beyond the configured margin *and* beyond sampling noise; the shift between the two
versions' predictions (PSI); the share of its scorings that failed; its p99 scoring latency. Both
versions scored the same rows in either stage (the challenger every row in the shadow stage; the
champion the canary's rows in the canary stage, for the log), so the metric comparison is paired
(DeLong's test for two correlated AUCs; the mean of per-row absolute-error differences for MAE);
unpaired only when the champion's scores of the canary's rows are missing (they all failed).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any, Literal

import numpy as np
from scipy.stats import rankdata

from featureloop.durations import parse_duration
from featureloop.monitoring.statistics import psi
from featureloop.monitoring.thresholds import ReleaseConfig, StageWindow

Verdict = Literal["wait", "pass", "fail"]
Z = 1.96  # two-sided 95%


@dataclass(frozen=True)
class Side:
    """One version's live figures in a stage: the rows it scored (or was asked to), how many of those
    failed, its p99 scoring latency, its predictions (one per id), and the labelled ones."""

    version: str
    rows: int
    errors: int
    p99_ms: float | None
    predictions: np.ndarray
    labels: np.ndarray  # the labels of the ids whose outcome is known
    labelled: np.ndarray  # this side's predictions for those ids, in the same order


@dataclass(frozen=True)
class Evidence:
    """A stage's rows as the prediction log and the outcomes known by `as_of` show them; `paired`:
    both sides scored the same rows (shadow), their labelled arrays aligned id by id."""

    stage: str
    served: int
    elapsed: timedelta
    champion: Side
    challenger: Side
    paired: bool


@dataclass(frozen=True)
class StageDecision:
    verdict: Verdict
    reason: str
    checks: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(
    name: str, passed: bool, challenger: float | None, champion: float | None, limit: str
) -> dict[str, Any]:
    return {"check": name, "passed": passed, "challenger": challenger, "champion": champion, "limit": limit}


def judge(
    evidence: Evidence, config: ReleaseConfig, window: StageWindow, task: str, shown_better: bool = False
) -> StageDecision:
    """Wait, pass or fail the stage (module docstring); every check's figures on the decision.
    The window counts the rows the challenger scored (shadow: every row; canary: its share).
    `shown_better`: an earlier stage showed the challenger better on labels beyond noise (the paired
    shadow stage has the power the canary's smaller, unpaired samples lack), which explains a large
    prediction shift in this one as it does in that one."""
    e, stage = evidence, evidence.stage
    max_time = parse_duration(window.max_time)
    if e.challenger.rows < window.min_rows and e.elapsed < max_time:
        return StageDecision(
            "wait",
            f"{stage}: {e.challenger.rows:,} of {window.min_rows:,} rows scored by the challenger, "
            f"{_days(e.elapsed)} of {window.max_time}; the window is still open",
        )
    labelled = min(len(e.challenger.labels), len(e.champion.labels))
    if labelled < config.min_labels and e.elapsed < max_time + parse_duration(config.label_wait):
        return StageDecision(
            "wait",
            f"{stage}: window closed ({e.served:,} rows); {labelled:,} of {config.min_labels:,} labelled rows "
            f"each side so far, waiting up to {config.label_wait} more for delayed labels",
        )
    metric = _metric_check(e, config, task, labelled)
    checks = [
        metric,
        _shift_check(e, config, bool(metric.get("better")), shown_better),
        _error_check(e.challenger, config),
        _latency_check(e, config),
    ]
    failed = [c for c in checks if not c["passed"]]
    if failed:
        return StageDecision("fail", f"{stage}: rolled back: " + "; ".join(c["why"] for c in failed), checks)
    return StageDecision(
        "pass", f"{stage}: not worse on live traffic: " + "; ".join(c["why"] for c in checks), checks
    )


def _days(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours / 24:.1f}d" if hours >= 24 else f"{hours:.1f}h"


def _metric_check(e: Evidence, config: ReleaseConfig, task: str, labelled: int) -> dict[str, Any]:
    if labelled < config.min_labels:
        check = _check(
            "labelled_metric", False, None, None, f">= {config.min_labels} labelled rows each side"
        )
        check["why"] = (
            f"only {labelled:,} labelled rows each side (need {config.min_labels:,}): not shown to be not worse "
            "(lower monitoring.release.min_labels or lengthen the stage's max_time)"
        )
        return check
    broken = int((~np.isfinite(e.challenger.labelled)).sum())
    if broken:  # NaN or infinite predictions would slip through every comparison
        check = _check("labelled_metric", False, None, None, "finite predictions")
        check["why"] = f"{broken:,} of the challenger's labelled predictions are not finite numbers"
        return check
    if task == "regression":
        return _mae_check(e, config)
    return _auc_check(e, config)


def _auc_check(e: Evidence, config: ReleaseConfig) -> dict[str, Any]:
    ch, cp = e.challenger, e.champion
    if e.paired:
        (auc_ch, auc_cp), se = delong_paired(ch.labels, ch.labelled, cp.labelled)
    else:
        auc_ch, se_ch = auc_and_se(ch.labels, ch.labelled)
        auc_cp, se_cp = auc_and_se(cp.labels, cp.labelled)
        se = math.hypot(se_ch, se_cp)
    if math.isnan(auc_ch) or math.isnan(auc_cp):
        check = _check("roc_auc", False, None, None, "both outcomes among the labels")
        check["why"] = "the labelled rows have one outcome only: ROC AUC cannot compare the versions"
        return check
    drop, noise = auc_cp - auc_ch, Z * se
    passed = not (drop > config.max_auc_drop and drop > noise)
    limit = f"drop <= {config.max_auc_drop} or within noise (+/- {noise:.4f}, {'paired' if e.paired else 'unpaired'})"
    check = _check("roc_auc", passed, auc_ch, auc_cp, limit)
    check["better"] = -drop > noise  # better beyond noise: a large prediction shift is then explained
    check["why"] = (
        f"ROC AUC {auc_ch:.4f} vs the champion's {auc_cp:.4f} on {len(ch.labels):,} labelled rows"
        + ("" if passed else f", {drop:.4f} lower (margin {config.max_auc_drop}, noise {noise:.4f})")
    )
    return check


def _mae_check(e: Evidence, config: ReleaseConfig) -> dict[str, Any]:
    ch, cp = e.challenger, e.champion
    err_ch, err_cp = np.abs(ch.labels - ch.labelled), np.abs(cp.labels - cp.labelled)
    mae_ch, mae_cp = float(err_ch.mean()), float(err_cp.mean())
    if e.paired:
        diff = err_ch - err_cp
        se = float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else 0.0
    else:
        se = math.hypot(_se(err_ch), _se(err_cp))
    rise, noise = mae_ch - mae_cp, Z * se
    passed = not (mae_cp > 0 and rise / mae_cp > config.max_mae_rise and rise > noise)
    check = _check(
        "mae", passed, mae_ch, mae_cp, f"rise <= {config.max_mae_rise:.0%} or within noise (+/- {noise:.4g})"
    )
    check["better"] = -rise > noise
    check["why"] = f"MAE {mae_ch:.4g} vs the champion's {mae_cp:.4g}" + (
        ""
        if passed
        else f", {rise / mae_cp:.0%} higher (margin {config.max_mae_rise:.0%}, noise {noise:.4g})"
    )
    return check


def _se(values: np.ndarray) -> float:
    return float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0


def _shift_check(e: Evidence, config: ReleaseConfig, better: bool, shown_better: bool) -> dict[str, Any]:
    """The two versions' predictions may move apart by PSI `max_prediction_psi`; further only when the
    labels show the challenger better beyond noise, here or in an earlier stage (a larger change must
    earn its place: not worse is not enough for it)."""
    value = prediction_psi(e.champion.predictions, e.challenger.predictions)
    small = value is None or value <= config.max_prediction_psi
    passed = small or better or shown_better
    check = _check(
        "prediction_psi", passed, value, None, f"<= {config.max_prediction_psi}, or better beyond noise"
    )
    if value is None:
        check["why"] = "no predictions to compare"
    elif small:
        check["why"] = f"prediction PSI {value:.3f}"
    else:
        explained = (
            "explained by better labelled metrics"
            if better
            else "explained by the shadow stage's better labelled metrics"
            if shown_better
            else "without better labelled metrics"
        )
        check["why"] = f"prediction PSI {value:.3f} above {config.max_prediction_psi}, {explained}"
    return check


def _error_check(challenger: Side, config: ReleaseConfig) -> dict[str, Any]:
    rate = challenger.errors / challenger.rows if challenger.rows else 0.0
    passed = rate <= config.max_error_rate
    check = _check("error_rate", passed, rate, None, f"<= {config.max_error_rate:.2%}")
    check["why"] = f"{challenger.errors:,} of {challenger.rows:,} scorings failed ({rate:.2%})" + (
        "" if passed else f", above {config.max_error_rate:.2%}"
    )
    return check


def _latency_check(e: Evidence, config: ReleaseConfig) -> dict[str, Any]:
    ch, cp = e.challenger.p99_ms, e.champion.p99_ms
    limit = None if cp is None else cp * config.max_p99_ratio + config.p99_slack_ms
    passed = ch is None or limit is None or ch <= limit
    check = _check(
        "p99_latency_ms", passed, ch, cp, f"<= champion x {config.max_p99_ratio} + {config.p99_slack_ms} ms"
    )
    check["why"] = (
        "no latency to compare"
        if ch is None or cp is None
        else f"p99 {ch:.1f} ms vs the champion's {cp:.1f} ms" + ("" if passed else f", above {limit:.1f} ms")
    )
    return check


def prediction_psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float | None:
    """PSI of `current` against `reference` on the reference's deciles (None when either is empty)."""
    reference, current = reference[np.isfinite(reference)], current[np.isfinite(current)]
    if not len(reference) or not len(current):
        return None
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_counts = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1)
    cur_counts = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1)
    return float(psi(ref_counts.astype(float), cur_counts.astype(float)).score)


def _components(labels: np.ndarray, predictions: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """ROC AUC and DeLong's structural components (per positive, per negative) by midranks."""
    positive = labels == 1
    x, y = predictions[positive], predictions[~positive]
    m, n = len(x), len(y)
    tz = rankdata(np.concatenate([x, y]))
    auc = float((tz[:m].sum() - m * (m + 1) / 2) / (m * n))
    v10 = (tz[:m] - rankdata(x)) / n
    v01 = 1.0 - (tz[m:] - rankdata(y)) / m
    return auc, v10, v01


def auc_and_se(labels: np.ndarray, predictions: np.ndarray) -> tuple[float, float]:
    """ROC AUC and its DeLong standard error (nan, 0 with one outcome only)."""
    m = int((labels == 1).sum())
    if m == 0 or m == len(labels):
        return float("nan"), 0.0
    auc, v10, v01 = _components(labels, predictions)
    n = len(labels) - m
    variance = (v10.var(ddof=1) if m > 1 else 0.0) / m + (v01.var(ddof=1) if n > 1 else 0.0) / n
    return auc, math.sqrt(max(variance, 0.0))


def delong_paired(labels: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[tuple[float, float], float]:
    """Two versions' ROC AUCs on the same labelled rows and the standard error of their difference
    (DeLong, DeLong and Clarke-Pearson 1988; midrank form of Sun and Xu 2014)."""
    m = int((labels == 1).sum())
    if m < 2 or len(labels) - m < 2:
        return (float("nan"), float("nan")), 0.0
    auc_a, v10_a, v01_a = _components(labels, a)
    auc_b, v10_b, v01_b = _components(labels, b)
    s10, s01 = np.cov(np.vstack([v10_a, v10_b])), np.cov(np.vstack([v01_a, v01_b]))
    n = len(labels) - m
    variance = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n
    return (auc_a, auc_b), math.sqrt(max(float(variance), 0.0))
