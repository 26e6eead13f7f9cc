"""Generated reference/current pairs on which the Evidently-compatible statistics are checked.

Each case is seeded, so `bench/evidently_compat.py` (with Evidently installed) and the unit tests
(without it) build the same samples; the golden values in `golden/evidently_compat_cases.json` are
Evidently 0.7.23's own scores on them. The cases cover what Evidently bins differently: numeric
columns with at most 20 distinct reference values (one bin per value), empty bins on either side,
unseen values, ties, nulls and infinities, small windows, shares below 1e-4 (where the fill of
empty bins differs per side), and KS beyond its exact-method sizes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

Kind = Literal["numeric", "categorical"]
NUMERIC_STATS = ("psi", "jensenshannon", "kl_div", "hellinger", "ks", "wasserstein")
CATEGORICAL_STATS = ("psi", "jensenshannon", "kl_div", "hellinger", "chisquare")
Maker = Callable[[np.random.Generator], tuple[pd.Series, pd.Series]]


@dataclass(frozen=True)
class Case:
    """A named pair of samples and how Evidently types the column."""

    name: str
    kind: Kind
    reference: pd.Series
    current: pd.Series

    @property
    def stats(self) -> tuple[str, ...]:
        return NUMERIC_STATS if self.kind == "numeric" else CATEGORICAL_STATS


def _continuous_shifted(rng: np.random.Generator) -> tuple[pd.Series, pd.Series]:
    return pd.Series(rng.normal(0, 1, 2000)), pd.Series(rng.normal(0.3, 1.2, 500))


def _empty_bins_both_sides(rng: np.random.Generator) -> tuple[pd.Series, pd.Series]:
    # The current window sits in a narrow band plus one far outlier: most pooled bins are empty in
    # the current, and the outlier's bins are empty in the reference.
    ref = rng.normal(0, 1, 2000)
    cur = np.r_[rng.uniform(0.5, 0.8, 299), 40.0]
    return pd.Series(ref), pd.Series(cur)


def _low_cardinality_unseen(rng: np.random.Generator) -> tuple[pd.Series, pd.Series]:
    # 10 distinct reference values (Poisson counts); the current adds 13 and 15, never seen.
    ref = np.minimum(rng.poisson(3, 2000), 9)
    cur = np.r_[np.minimum(rng.poisson(3.5, 295), 9), [13, 13, 15, 13, 15]]
    return pd.Series(ref), pd.Series(cur)


def _twenty_distinct(rng: np.random.Generator) -> tuple[pd.Series, pd.Series]:
    # Exactly 20 distinct reference values: still one bin per value.
    return pd.Series(rng.integers(0, 20, 1500)), pd.Series(rng.integers(2, 20, 400))


def _twenty_one_distinct(rng: np.random.Generator) -> tuple[pd.Series, pd.Series]:
    # 21 distinct reference values: Sturges bins over the pooled sample.
    return pd.Series(rng.integers(0, 21, 1500)), pd.Series(rng.integers(2, 21, 400))


def _binary_with_nulls(rng: np.random.Generator) -> tuple[pd.Series, pd.Series]:
    ref = pd.Series(rng.choice([0.0, 1.0, np.nan], 1000, p=[0.7, 0.2, 0.1]))
    cur = pd.Series(rng.choice([0.0, 1.0, np.nan], 50, p=[0.5, 0.4, 0.1]))
    return ref, cur


def _ties_many_values(rng: np.random.Generator) -> tuple[pd.Series, pd.Series]:
    # Rounded values: many ties, so the distinct values Hellinger bins are far fewer than the rows.
    return pd.Series(np.round(rng.normal(0, 1, 3000), 1)), pd.Series(np.round(rng.normal(0.1, 1, 700), 1))


def _small_window(rng: np.random.Generator) -> tuple[pd.Series, pd.Series]:
    return pd.Series(rng.normal(0, 1, 40)), pd.Series(rng.normal(0.5, 1, 10))


def _nulls_and_infinities(rng: np.random.Generator) -> tuple[pd.Series, pd.Series]:
    ref = rng.exponential(2, 1200)
    ref[rng.choice(1200, 60, replace=False)] = np.nan
    ref[:3] = [np.inf, -np.inf, np.inf]
    cur = rng.exponential(2.4, 300)
    cur[rng.choice(300, 30, replace=False)] = np.nan
    cur[0] = np.inf
    return pd.Series(ref), pd.Series(cur)


def _same_values_resampled(rng: np.random.Generator) -> tuple[pd.Series, pd.Series]:
    ref = np.round(rng.normal(0, 1, 2000), 2)
    return pd.Series(ref), pd.Series(rng.choice(ref, 600))


def _large_asymptotic_ks(rng: np.random.Generator) -> tuple[pd.Series, pd.Series]:
    # More than 10,000 values on a side: scipy's default KS method is then asymptotic.
    return pd.Series(rng.normal(0, 1, 12000)), pd.Series(rng.normal(0.02, 1, 11000))


def _categories_unseen(rng: np.random.Generator) -> tuple[pd.Series, pd.Series]:
    # The current misses "c" and brings two values the reference never saw.
    ref = rng.choice(["a", "b", "c", "d"], 2000, p=[0.5, 0.3, 0.15, 0.05])
    cur = np.r_[rng.choice(["a", "b", "d"], 297, p=[0.5, 0.35, 0.15]), ["x", "y", "x"]]
    return pd.Series(ref), pd.Series(cur)


def _categories_nulls_small(rng: np.random.Generator) -> tuple[pd.Series, pd.Series]:
    values = np.array(["EWR", "JFK", "LGA", None], dtype=object)
    ref = pd.Series(rng.choice(values, 800, p=[0.35, 0.3, 0.3, 0.05]))
    cur = pd.Series(rng.choice(values, 20, p=[0.5, 0.2, 0.2, 0.1]))
    return ref, cur


def _categories_many(rng: np.random.Generator) -> tuple[pd.Series, pd.Series]:
    # 60 categories with Zipf-like shares: rare ones are absent from the current window.
    names = np.array([f"v{i:02d}" for i in range(60)])
    p = 1 / np.arange(1, 61)
    ref = rng.choice(names, 5000, p=p / p.sum())
    q = 1 / np.arange(1, 61) ** 1.3
    cur = rng.choice(names, 400, p=q / q.sum())
    return pd.Series(ref), pd.Series(cur)


def _categories_integer_codes(rng: np.random.Generator) -> tuple[pd.Series, pd.Series]:
    return pd.Series(rng.choice([1, 2, 3, 7], 900)), pd.Series(rng.choice([1, 2, 3, 7, 9], 150))


def _categories_identical(rng: np.random.Generator) -> tuple[pd.Series, pd.Series]:
    ref = pd.Series(rng.choice(["a", "b", "c"], 1000, p=[0.5, 0.3, 0.2]))
    return ref, ref.sample(frac=1.0, random_state=1).reset_index(drop=True)


def _large_reference_far_outlier(rng: np.random.Generator) -> tuple[pd.Series, pd.Series]:
    # One reference value in 15,000 far out: its share is below 1e-4, so the reference's empty bins
    # are filled far lower than the current's (each side is filled from its own smallest share).
    return pd.Series(np.r_[rng.normal(0, 1, 14999), 30.0]), pd.Series(rng.normal(0.2, 1, 300))


def _categories_rare_in_large_reference(rng: np.random.Generator) -> tuple[pd.Series, pd.Series]:
    # 20,000 reference rows with five categories seen once (share 5e-5), a 200-row current window
    # that misses many categories and brings an unseen one.
    names = np.array([f"t{i:02d}" for i in range(40)])
    ref = np.r_[rng.choice(names, 19995), [f"rare{i}" for i in range(5)]]
    cur = np.r_[rng.choice(names[:25], 199), ["t99"]]
    return pd.Series(ref), pd.Series(cur)


_NUMERIC: dict[str, Maker] = {
    "continuous_shifted": _continuous_shifted,
    "empty_bins_both_sides": _empty_bins_both_sides,
    "low_cardinality_unseen": _low_cardinality_unseen,
    "twenty_distinct": _twenty_distinct,
    "twenty_one_distinct": _twenty_one_distinct,
    "binary_with_nulls": _binary_with_nulls,
    "ties_many_values": _ties_many_values,
    "small_window": _small_window,
    "nulls_and_infinities": _nulls_and_infinities,
    "same_values_resampled": _same_values_resampled,
    "large_asymptotic_ks": _large_asymptotic_ks,
    "large_reference_far_outlier": _large_reference_far_outlier,
}
_CATEGORICAL: dict[str, Maker] = {
    "categories_unseen": _categories_unseen,
    "categories_nulls_small": _categories_nulls_small,
    "categories_many": _categories_many,
    "categories_integer_codes": _categories_integer_codes,
    "categories_identical": _categories_identical,
    "categories_rare_in_large_reference": _categories_rare_in_large_reference,
}


def generated_cases(seed: int = 16) -> list[Case]:
    """Every case, each drawn from its own generator seeded from `seed` and the case's position."""
    groups: tuple[tuple[Kind, dict[str, Maker]], ...] = (("numeric", _NUMERIC), ("categorical", _CATEGORICAL))
    cases = []
    for k, (kind, makers) in enumerate(groups):
        for i, (name, make) in enumerate(makers.items()):
            ref, cur = make(np.random.default_rng([seed, k, i]))
            cases.append(Case(name, kind, ref, cur))
    return cases


def evidently_score(case: Case, name: str) -> float:
    """Evidently's registered stat test on the pair, cleaned as its column drift cleans it (needs
    Evidently: the `bench` dependency group)."""
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest
    from evidently.legacy.core import ColumnType

    kind = ColumnType.Numerical if case.kind == "numeric" else ColumnType.Categorical
    ref = case.reference.replace([-np.inf, np.inf], np.nan).dropna()
    cur = case.current.replace([-np.inf, np.inf], np.nan).dropna()
    with np.errstate(divide="ignore"):  # its chisquare divides by an expected 0 for an unseen value
        return float(get_registered_stattest(name, kind)(ref, cur, kind, None).drift_score)


def our_score(case: Case, name: str) -> float:
    """Ours in Evidently-compatible mode."""
    from featureloop.monitoring.evidently import CATEGORICAL, NUMERIC

    registry = CATEGORICAL if case.kind == "categorical" else NUMERIC
    return registry[name](case.reference, case.current).score
