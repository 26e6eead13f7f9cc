"""Reference profiles: what the training data looked like, stored with the model for drift checks.

A profile keeps, per feature, enough to compare a later window without reloading the training set:
numeric bin edges (reference deciles) with counts, quantiles, mean, std, missing share and a bounded
sorted sample;
categorical value counts (the most frequent values plus an `__other__` bucket) and missing share.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
NUMERIC_BINS = 10
MAX_CATEGORIES = 50
OTHER = "__other__"
# A seeded random sample of each numeric reference column, sorted, for the exact two-sample KS test
# and the Wasserstein distance (the bins serve chi-square, PSI and Jensen-Shannon).
SAMPLE_SIZE = 2000


def numeric_profile(values: pd.Series) -> dict[str, Any]:
    """Bin edges from the reference's own quantiles (open-ended outer bins) and per-bin counts."""
    n = len(values)
    clean = pd.to_numeric(values, errors="coerce").astype(float)
    clean = clean[np.isfinite(clean)]
    out: dict[str, Any] = {"kind": "numeric", "n": n, "missing_share": (n - len(clean)) / n if n else 0.0}
    if clean.empty:
        return {**out, "edges": [], "counts": [], "quantiles": {}, "mean": None, "std": None, "sample": []}
    inner = np.unique(np.quantile(clean, np.linspace(0, 1, NUMERIC_BINS + 1)[1:-1]))
    edges = [-np.inf, *inner.tolist(), np.inf]
    counts, _ = np.histogram(clean, bins=np.asarray(edges))
    sample = clean.to_numpy()
    if len(sample) > SAMPLE_SIZE:
        sample = np.random.default_rng(0).choice(sample, SAMPLE_SIZE, replace=False)
    return {
        **out,
        "sample": np.sort(sample).tolist(),
        "edges": [_finite_or_none(e) for e in edges],
        "counts": counts.astype(int).tolist(),
        "quantiles": {str(q): float(np.quantile(clean, q)) for q in QUANTILES},
        "mean": float(clean.mean()),
        "std": float(clean.std(ddof=0)),
        "min": float(clean.min()),
        "max": float(clean.max()),
    }


def categorical_profile(values: pd.Series) -> dict[str, Any]:
    """Counts of the most frequent values; the rest are summed under `__other__`."""
    n = len(values)
    present = values.dropna().astype(str)
    counts = present.value_counts(sort=True)
    top = counts.iloc[:MAX_CATEGORIES]
    out = {str(k): int(v) for k, v in sorted(top.items())}
    rest = int(counts.iloc[MAX_CATEGORIES:].sum())
    if rest:
        out[OTHER] = rest
    return {
        "kind": "categorical",
        "n": n,
        "missing_share": (n - len(present)) / n if n else 0.0,
        "counts": out,
    }


def build_profile(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> dict[str, Any]:
    """The reference profile of a training set, JSON-serialisable."""
    return {
        "rows": len(frame),
        "features": {
            **{c: numeric_profile(frame[c]) for c in numeric},
            **{c: categorical_profile(frame[c]) for c in categorical},
        },
    }


def _finite_or_none(value: float) -> float | None:
    # JSON has no infinity: open-ended outer bins are written as null.
    return float(value) if np.isfinite(value) else None
