"""The drift check's statistics, by name: one small pure function each (no Prefect, Feast, MLflow).

Each statistic returns a `StatResult`: its value, the threshold it was given and the verdict. The
drift check (`featureloop.monitoring.drift`) looks them up by name with thresholds from its
`DriftConfig`, on what a profile holds (`featureloop.monitoring.profiles`):
- `BIN_STATISTICS` compare the reference's and the current window's counts per bin: the reference's
  decile bins (open-ended outer bins) of a numeric feature, or the categories of a categorical one.
  `chi_square` (p-value) decides with `psi` (the effect); `jensenshannon` is reported;
- `ks` and `wasserstein` compare the raw samples; `ks_wasserstein_sorted` computes both from the
  profiles' sorted samples in one merge (the drift check's path for small numeric windows).
Evidently 0.7.23's own statistics, for comparison with Evidently, are in
`featureloop.monitoring.evidently`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance


@dataclass(frozen=True)
class StatResult:
    """A statistic's value, its threshold and the verdict (p-values drift below, distances at or above)."""

    name: str
    score: float
    threshold: float
    drifted: bool

    @classmethod
    def distance(cls, name: str, score: float, threshold: float) -> StatResult:
        """A distance (or effect size): drift at or above the threshold."""
        return cls(name, float(score), threshold, bool(score >= threshold))

    @classmethod
    def p_value(cls, name: str, p: float, threshold: float) -> StatResult:
        """A test's p-value: drift below the threshold (the significance level)."""
        return cls(name, float(p), threshold, bool(p < threshold))


def _finite(values: np.ndarray | pd.Series) -> np.ndarray:
    array = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
    return array[np.isfinite(array)]


def _shares(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each side's counts as shares (a side without values stays at 0)."""
    return ref_counts / max(ref_counts.sum(), 1.0), cur_counts / max(cur_counts.sum(), 1.0)


def _fill_empty(r: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Empty bins of both sides at one value: 1e-4, or the smallest non-zero share of either side / 1e6
    when that is <= 1e-4 (Evidently fills each side with its own: `evidently.fill_empty`)."""
    smallest = min(r[r > 0].min(initial=1.0), c[c > 0].min(initial=1.0))
    eps = smallest / 1e6 if smallest <= 1e-4 else 1e-4
    return np.where(r == 0, eps, r), np.where(c == 0, eps, c)


def chi_square(ref_counts: np.ndarray, cur_counts: np.ndarray, threshold: float = 0.05) -> StatResult:
    """Two-sample chi-square test of homogeneity on the counts per bin (p-value); bins empty on both
    sides are left out, and with fewer than two bins left, or one side empty, nothing is rejected."""
    table = np.vstack([ref_counts, cur_counts])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return StatResult.p_value("chi_square", 1.0, threshold)
    return StatResult.p_value("chi_square", stats.chi2_contingency(table).pvalue, threshold)


def psi(ref_counts: np.ndarray, cur_counts: np.ndarray, threshold: float = 0.1) -> StatResult:
    """Population stability index of the two sides' shares per bin (empty bins filled)."""
    rf, cf = _fill_empty(*_shares(ref_counts, cur_counts))
    return StatResult.distance("psi", np.sum((rf - cf) * np.log(rf / cf)), threshold)


def jensenshannon(ref_counts: np.ndarray, cur_counts: np.ndarray, threshold: float = 0.1) -> StatResult:
    """Jensen-Shannon distance (natural log) of the two sides' shares per bin."""
    return StatResult.distance(
        "jensenshannon", distance.jensenshannon(*_shares(ref_counts, cur_counts)), threshold
    )


class BinStatistic(Protocol):
    """Compares the reference's and the current window's counts per bin."""

    def __call__(
        self, ref_counts: np.ndarray, cur_counts: np.ndarray, threshold: float = ...
    ) -> StatResult: ...


BIN_STATISTICS: dict[str, BinStatistic] = {
    "chi_square": chi_square,
    "psi": psi,
    "jensenshannon": jensenshannon,
}


def ks(ref: np.ndarray, cur: np.ndarray, threshold: float = 0.05) -> StatResult:
    """Two-sample Kolmogorov-Smirnov test (p-value)."""
    return StatResult.p_value("ks", stats.ks_2samp(_finite(ref), _finite(cur)).pvalue, threshold)


def wasserstein(ref: np.ndarray, cur: np.ndarray, threshold: float = 0.1) -> StatResult:
    """Wasserstein distance normalised by the reference standard deviation (ddof 0, at least 0.001)."""
    ref, cur = _finite(ref), _finite(cur)
    return StatResult.distance(
        "wasserstein", stats.wasserstein_distance(ref, cur) / max(np.std(ref), 0.001), threshold
    )


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
        StatResult.p_value("ks", p, ks_threshold),
        StatResult.distance("wasserstein", w / max(ref_std, 0.001), wasserstein_threshold),
    )
