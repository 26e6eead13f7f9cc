"""Drift statistics: one small pure function each, a registry by name (no Prefect, Feast, MLflow).

Each function compares a reference sample with a current sample and returns a `StatResult`. Two
binnings exist for the histogram statistics (PSI, Jensen-Shannon, Hellinger, KL):
- `quantile` (ours, the default): bins at the reference's deciles, open-ended outer bins, so each
  reference bin holds ~10% of the reference whatever the current window looks like;
- `evidently` (compatibility): Evidently 0.7.23's own statistics (`featureloop.monitoring.evidently`):
  Sturges bins over the pooled range, or one bin per value when the reference has at most 20
  distinct values; empty bins filled per side. The categorical registry's histogram statistics and
  'chisquare' are Evidently's too. `bench/evidently_compat.py` compares them with Evidently itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

from featureloop.monitoring import evidently as evidently_stats

Binning = Literal["quantile", "evidently"]
QUANTILE_BINS = 10


@dataclass(frozen=True)
class StatResult:
    """A statistic's value, its threshold and the verdict (p-values drift below, distances at or above)."""

    name: str
    score: float
    threshold: float
    drifted: bool


def _distance(name: str, score: float, threshold: float) -> StatResult:
    return StatResult(name, float(score), threshold, bool(score >= threshold))


def _pvalue(name: str, p: float, threshold: float) -> StatResult:
    return StatResult(name, float(p), threshold, bool(p < threshold))


def _finite(values: np.ndarray | pd.Series) -> np.ndarray:
    array = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
    return array[np.isfinite(array)]


def numeric_shares(ref: np.ndarray, cur: np.ndarray, binning: Binning) -> tuple[np.ndarray, np.ndarray]:
    """Shares of the reference and current samples per bin."""
    if binning == "evidently":  # shares as Evidently bins them, empty bins left at 0
        return evidently_stats.binned_shares(*evidently_stats.clean_pair(ref, cur), numeric=True)
    ref, cur = _finite(ref), _finite(cur)
    inner = np.unique(np.quantile(ref, np.linspace(0, 1, QUANTILE_BINS + 1)[1:-1]))
    edges = np.concatenate([[-np.inf], inner, [np.inf]])
    return np.histogram(ref, edges)[0] / len(ref), np.histogram(cur, edges)[0] / len(cur)


def _fill_empty(r: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Empty bins of both sides at one value: 1e-4, or the smallest non-zero share of either side / 1e6
    when that is <= 1e-4 (Evidently fills each side with its own: `evidently_stats.fill_empty`)."""
    smallest = min(r[r > 0].min(initial=1.0), c[c > 0].min(initial=1.0))
    eps = smallest / 1e6 if smallest <= 1e-4 else 1e-4
    return np.where(r == 0, eps, r), np.where(c == 0, eps, c)


def psi_shares(r: np.ndarray, c: np.ndarray, threshold: float = 0.1) -> StatResult:
    """Population stability index of two share vectors."""
    rf, cf = _fill_empty(r, c)
    return _distance("psi", np.sum((rf - cf) * np.log(rf / cf)), threshold)


def jensenshannon_shares(r: np.ndarray, c: np.ndarray, threshold: float = 0.1) -> StatResult:
    """Jensen-Shannon distance (natural log) of two share vectors."""
    return _distance("jensenshannon", distance.jensenshannon(r, c), threshold)


def hellinger_shares(r: np.ndarray, c: np.ndarray, threshold: float = 0.1) -> StatResult:
    """Hellinger distance of two share vectors."""
    return _distance("hellinger", np.sqrt(np.sum((np.sqrt(r) - np.sqrt(c)) ** 2)) / np.sqrt(2), threshold)


def kl_div_shares(r: np.ndarray, c: np.ndarray, threshold: float = 0.1) -> StatResult:
    """Kullback-Leibler divergence of the current from the reference shares (empty bins filled)."""
    rf, cf = _fill_empty(r, c)
    return _distance("kl_div", stats.entropy(rf, cf), threshold)


def ks(ref: np.ndarray, cur: np.ndarray, threshold: float = 0.05) -> StatResult:
    """Two-sample Kolmogorov-Smirnov test (p-value)."""
    return _pvalue("ks", stats.ks_2samp(_finite(ref), _finite(cur)).pvalue, threshold)


def wasserstein(ref: np.ndarray, cur: np.ndarray, threshold: float = 0.1) -> StatResult:
    """Wasserstein distance normalised by the reference standard deviation (ddof 0, at least 0.001)."""
    ref, cur = _finite(ref), _finite(cur)
    return _distance("wasserstein", stats.wasserstein_distance(ref, cur) / max(np.std(ref), 0.001), threshold)


def chi_square(ref: pd.Series, cur: pd.Series, threshold: float = 0.05) -> StatResult:
    """Two-sample chi-square test of homogeneity on the category counts (p-value)."""
    r = pd.Series(ref).dropna().astype(str).value_counts()
    c = pd.Series(cur).dropna().astype(str).value_counts()
    table = pd.concat([r, c], axis=1).fillna(0).to_numpy().T
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return _pvalue("chi_square", 1.0, threshold)
    return _pvalue("chi_square", stats.chi2_contingency(table).pvalue, threshold)


def chi_square_gof(ref: pd.Series, cur: pd.Series, threshold: float = 0.05) -> StatResult:
    """Evidently's categorical 'chisquare': goodness of fit of current counts to reference shares.

    Compatibility only: on identical distributions it alarms about half the time at n = 200-1000."""
    return _pvalue("chisquare", evidently_stats.chisquare(*evidently_stats.clean_pair(ref, cur)), threshold)


def unseen_share(ref: pd.Series, cur: pd.Series, threshold: float = 0.01) -> StatResult:
    """Share of current values whose category never occurs in the reference."""
    known = set(pd.Series(ref).dropna().astype(str))
    present = pd.Series(cur).dropna().astype(str)
    share = float((~present.isin(known)).mean()) if len(present) else 0.0
    return _distance("unseen_share", share, threshold)


def missing_share_change(ref: pd.Series, cur: pd.Series, threshold: float = 0.05) -> StatResult:
    """Absolute change in the share of missing values."""
    change = (
        abs(pd.Series(cur).isna().mean() - pd.Series(ref).isna().mean()) if len(cur) and len(ref) else 0.0
    )
    return _distance("missing_share_change", float(change), threshold)


EvidentlyScore = Callable[..., float]


def _numeric_histogram(
    stat: Callable[[np.ndarray, np.ndarray, float], StatResult], evidently: EvidentlyScore
) -> Callable[..., StatResult]:
    def run(
        ref: np.ndarray, cur: np.ndarray, threshold: float = 0.1, binning: Binning = "quantile"
    ) -> StatResult:
        if binning == "evidently":
            score = evidently(*evidently_stats.clean_pair(ref, cur), numeric=True)
            return _distance(evidently.__name__, score, threshold)
        return stat(*numeric_shares(ref, cur, binning), threshold)

    run.__doc__ = f"{stat.__doc__} Numeric samples, binned."
    return run


def _categorical_histogram(evidently: EvidentlyScore) -> Callable[..., StatResult]:
    def run(ref: pd.Series, cur: pd.Series, threshold: float = 0.1) -> StatResult:
        score = evidently(*evidently_stats.clean_pair(ref, cur), numeric=False)
        return _distance(evidently.__name__, score, threshold)

    run.__doc__ = f"{evidently.__doc__} One bucket per category."
    return run


NUMERIC: dict[str, Callable[..., StatResult]] = {
    "ks": ks,
    "wasserstein": wasserstein,
    "psi": _numeric_histogram(psi_shares, evidently_stats.psi),
    "jensenshannon": _numeric_histogram(jensenshannon_shares, evidently_stats.jensenshannon),
    "hellinger": _numeric_histogram(hellinger_shares, evidently_stats.hellinger),
    "kl_div": _numeric_histogram(kl_div_shares, evidently_stats.kl_div),
}
# Categorical: the histogram statistics and "chisquare" are Evidently's; "chi_square" and "unseen_share" ours.
CATEGORICAL: dict[str, Callable[..., StatResult]] = {
    "chi_square": chi_square,
    "chisquare": chi_square_gof,
    "psi": _categorical_histogram(evidently_stats.psi),
    "jensenshannon": _categorical_histogram(evidently_stats.jensenshannon),
    "hellinger": _categorical_histogram(evidently_stats.hellinger),
    "kl_div": _categorical_histogram(evidently_stats.kl_div),
    "unseen_share": unseen_share,
}


EXACT_KS_PAIRS = 250_000


@dataclass(frozen=True)
class SortedComparison:
    """KS and normalised Wasserstein from two sorted samples, sharing one merge."""

    ks: StatResult
    wasserstein: StatResult


def ks_wasserstein_sorted(
    ref_sorted: np.ndarray,
    cur_sorted: np.ndarray,
    *,
    ref_std: float,
    ks_threshold: float = 0.05,
    wasserstein_threshold: float = 0.1,
) -> SortedComparison:
    """Both statistics from already sorted, finite samples (scipy's results; one merge instead of
    a sort and a search per statistic). The reference is sorted once, when its profile is made.

    The KS p-value is exact for small samples (where it decides: windows of a few dozen values) and
    asymptotic beyond `EXACT_KS_PAIRS` pairs, as `ks_2samp(method="asymp")`: scipy's exact method
    costs O(n m) (30 ms for 2,000 x 2,000 here, 1.5 s per drift run) for a figure that is reported,
    not decided on, at those sizes."""
    n_ref, n_cur = len(ref_sorted), len(cur_sorted)
    if n_ref * n_cur <= EXACT_KS_PAIRS:
        return SortedComparison(
            ks(ref_sorted, cur_sorted, ks_threshold),
            wasserstein(ref_sorted, cur_sorted, wasserstein_threshold),
        )
    values = np.concatenate([ref_sorted, cur_sorted])
    order = np.argsort(values, kind="stable")  # two sorted runs: a merge
    values = values[order]
    from_ref = order < n_ref
    cdf_ref = np.cumsum(from_ref) / n_ref
    cdf_cur = np.cumsum(~from_ref) / n_cur
    diff = cdf_ref - cdf_cur
    # Right-continuous CDFs: compare them after the last of each run of equal values.
    last = np.r_[values[1:] != values[:-1], True]
    d = float(np.max(np.abs(diff[last])))
    m, n = sorted([float(n_ref), float(n_cur)], reverse=True)
    p = float(np.clip(stats.kstwo.sf(d, np.round(m * n / (m + n))), 0, 1))
    w = float(np.sum(np.abs(diff[:-1]) * np.diff(values)))
    return SortedComparison(
        _pvalue("ks", p, ks_threshold),
        _distance("wasserstein", w / max(ref_std, 0.001), wasserstein_threshold),
    )
