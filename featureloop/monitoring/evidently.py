"""Evidently 0.7.23's drift statistics, reproduced operation for operation (numpy, pandas, scipy).

Read from `evidently/legacy/calculations/stattests/` (`utils.get_binned_data` and one file per test):
- bins: a numeric column whose reference has more than 20 distinct values gets Sturges bins over
  the pooled sample; any other column (categorical, or numeric with at most 20 distinct reference
  values) gets one bin per value seen on either side;
- PSI and KL fill empty bins per side: 1e-4, or that side's smallest non-zero share / 1e6 when that
  share is at most 1e-4. Jensen-Shannon takes the shares unfilled;
- Hellinger bins a numeric column by Sturges over the distinct values of both sides (whatever their
  number), and computes sqrt(1 - Bhattacharyya coefficient) for both kinds;
- chisquare is a goodness-of-fit test of the current counts against the reference counts scaled to
  the current size: a category the reference never saw is expected 0 times, so p = 0.
Samples are cleaned as Evidently's column drift cleans them (NaN and +-inf dropped). Values are kept
as they are (no conversion to text): 1 and "1" are different categories, as in Evidently. Per-value
bins are summed in Evidently's own order (a set of the values), so in one process both give the same
bits. For text values a set's order follows the process's hash seed: Evidently's own sums then vary
in the last bits between processes (its Hellinger on identical category shares is 0 or 1.05e-8).

`NUMERIC` and `CATEGORICAL` hold them by Evidently's names, on raw samples (this compatibility mode:
the drift run's own statistics are in `featureloop.monitoring.statistics`, on the profiles' bins).
`bench/evidently_compat.py` compares them with Evidently itself.
"""

from __future__ import annotations

from collections.abc import Callable
from math import sqrt
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

from featureloop.monitoring.statistics import StatResult, ks, wasserstein

DISTINCT_FOR_STURGES = 20  # more distinct reference values than this: Sturges bins, else one per value


def clean(values: Any) -> pd.Series:
    """The sample without missing or infinite values."""
    return pd.Series(values).replace([-np.inf, np.inf], np.nan).dropna().reset_index(drop=True)


def clean_pair(ref: Any, cur: Any) -> tuple[pd.Series, pd.Series]:
    """Both samples cleaned; an empty one is refused, as Evidently refuses it."""
    ref, cur = clean(ref), clean(cur)
    for side, sample in (("reference", ref), ("current", cur)):
        if sample.empty:
            raise ValueError(f"the {side} sample has no value that is not missing or infinite")
    return ref, cur


def _keys(ref: pd.Series, cur: pd.Series) -> list[Any]:
    return list(set(ref.unique()) | set(cur.unique()))


def binned_shares(ref: pd.Series, cur: pd.Series, *, numeric: bool) -> tuple[np.ndarray, np.ndarray]:
    """Shares per bin of two cleaned samples, as `get_binned_data` bins them (empty bins left at 0)."""
    if numeric and ref.nunique() > DISTINCT_FOR_STURGES:
        edges = np.histogram_bin_edges(np.asarray(pd.concat([ref, cur]).values), bins="sturges")
        return np.histogram(ref, edges)[0] / len(ref), np.histogram(cur, edges)[0] / len(cur)
    keys = _keys(ref, cur)
    ref_counts = {**dict.fromkeys(keys, 0), **dict(ref.value_counts())}
    cur_counts = {**dict.fromkeys(keys, 0), **dict(cur.value_counts())}
    return (
        np.array([ref_counts[k] / len(ref) for k in keys]),
        np.array([cur_counts[k] / len(cur) for k in keys]),
    )


def fill_empty(shares: np.ndarray) -> np.ndarray:
    """One side's empty bins at 1e-4, or at its smallest non-zero share / 1e6 when that is <= 1e-4."""
    smallest = shares[shares != 0].min()
    return np.where(shares == 0, smallest / 10**6 if smallest <= 0.0001 else 0.0001, shares)


def psi(ref: pd.Series, cur: pd.Series, *, numeric: bool) -> float:
    """Population stability index (Evidently's 'psi')."""
    r, c = (fill_empty(s) for s in binned_shares(ref, cur, numeric=numeric))
    return float(np.sum((r - c) * np.log(r / c)))


def kl_div(ref: pd.Series, cur: pd.Series, *, numeric: bool) -> float:
    """Kullback-Leibler divergence of the current from the reference (Evidently's 'kl_div')."""
    r, c = (fill_empty(s) for s in binned_shares(ref, cur, numeric=numeric))
    return float(stats.entropy(r, c))


def jensenshannon(ref: pd.Series, cur: pd.Series, *, numeric: bool) -> float:
    """Jensen-Shannon distance, natural log (Evidently's 'jensenshannon')."""
    return float(distance.jensenshannon(*binned_shares(ref, cur, numeric=numeric)))


def hellinger(ref: pd.Series, cur: pd.Series, *, numeric: bool) -> float:
    """Hellinger distance (Evidently's 'hellinger'): numeric samples in density histograms over
    Sturges bins of the distinct values, categorical ones per value."""
    keys = _keys(ref, cur)
    coefficient = 0.0
    if numeric:
        edges = np.histogram_bin_edges(keys, bins="sturges")
        h1 = np.histogram(ref.to_numpy(), bins=edges, density=True)[0]
        h2 = np.histogram(cur.to_numpy(), bins=edges, density=True)[0]
        width = (max(edges) - min(edges)) / (len(edges) - 1)
        for p1, p2 in zip(h1, h2, strict=True):
            coefficient += sqrt(float(p1) * float(p2)) * width
    else:
        ref_shares = (ref.value_counts() / len(ref)).to_dict()
        cur_shares = (cur.value_counts() / len(cur)).to_dict()
        for key in keys:
            coefficient += sqrt(float(ref_shares.get(key, 0)) * float(cur_shares.get(key, 0)))
    return sqrt(1 - float(np.clip(coefficient, 0, 1)))


def chisquare(ref: pd.Series, cur: pd.Series) -> float:
    """p-value of the goodness of fit of the current counts to the reference's (Evidently's 'chisquare')."""
    keys = _keys(ref, cur)
    ref_counts = {**dict.fromkeys(keys, 0), **dict(ref.value_counts())}
    cur_counts = {**dict.fromkeys(keys, 0), **dict(cur.value_counts())}
    scale = cur.shape[0] / ref.shape[0]
    expected = [ref_counts[k] * scale for k in keys]
    if any(e == 0 and cur_counts[k] > 0 for k, e in zip(keys, expected, strict=True)):
        return 0.0  # an unseen category: Evidently's statistic is infinite (scipy divides by 0)
    return float(stats.chisquare([cur_counts[k] for k in keys], expected).pvalue)


Score = Callable[..., float]


def _registered(score: Score, *, numeric: bool) -> Callable[..., StatResult]:
    """`score` on two raw samples, cleaned as Evidently cleans them, as a `StatResult` (a distance)."""

    def run(ref: Any, cur: Any, threshold: float = 0.1) -> StatResult:
        return StatResult.distance(score.__name__, score(*clean_pair(ref, cur), numeric=numeric), threshold)

    run.__doc__ = f"{score.__doc__} {'Numeric samples, binned.' if numeric else 'One bucket per category.'}"
    return run


def chisquare_test(ref: Any, cur: Any, threshold: float = 0.05) -> StatResult:
    """Evidently's categorical 'chisquare': goodness of fit of current counts to reference shares.

    Compatibility only: on identical distributions it alarms about half the time at n = 200-1000."""
    return StatResult.p_value("chisquare", chisquare(*clean_pair(ref, cur)), threshold)


# Evidently's stat tests by its names. KS and Wasserstein are scipy's, as in Evidently.
NUMERIC: dict[str, Callable[..., StatResult]] = {
    "ks": ks,
    "wasserstein": wasserstein,
    "psi": _registered(psi, numeric=True),
    "jensenshannon": _registered(jensenshannon, numeric=True),
    "hellinger": _registered(hellinger, numeric=True),
    "kl_div": _registered(kl_div, numeric=True),
}
CATEGORICAL: dict[str, Callable[..., StatResult]] = {
    "chisquare": chisquare_test,
    "psi": _registered(psi, numeric=False),
    "jensenshannon": _registered(jensenshannon, numeric=False),
    "hellinger": _registered(hellinger, numeric=False),
    "kl_div": _registered(kl_div, numeric=False),
}
