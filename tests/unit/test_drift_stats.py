"""Drift statistics: Evidently's golden vectors in compatibility mode, scipy's KS, hand-computed values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from featureloop.drift_stats import (
    CATEGORICAL,
    NUMERIC,
    chi_square,
    ks,
    missing_share_change,
    numeric_shares,
    psi_shares,
    unseen_share,
)

GOLDEN = Path(__file__).parent / "golden" / "evidently_golden_vectors.json"


def _golden() -> tuple[dict[str, float], dict[str, float]]:
    numeric, categorical = json.loads(GOLDEN.read_text()).values()
    return numeric, categorical


def _numeric_samples() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(42)
    return rng.normal(0, 1, 10000), rng.normal(0.2, 1.1, 10000)


def _categorical_samples() -> tuple[pd.Series, pd.Series]:
    rng = np.random.default_rng(7)
    ref = rng.choice(["a", "b", "c"], 5000, p=[0.5, 0.3, 0.2])
    cur = rng.choice(["a", "b", "c", "d"], 5000, p=[0.45, 0.3, 0.2, 0.05])
    return pd.Series(ref), pd.Series(cur)


@pytest.mark.parametrize("name", ["psi", "wasserstein", "jensenshannon", "ks", "hellinger", "kl_div"])
def test_numeric_statistics_match_evidentlys_golden_vectors(name: str) -> None:
    ref, cur = _numeric_samples()
    kwargs = {"binning": "evidently"} if name in ("psi", "jensenshannon", "hellinger", "kl_div") else {}
    expected = _golden()[0][name]
    assert NUMERIC[name](ref, cur, **kwargs).score == pytest.approx(expected, abs=1e-9, rel=1e-9)


@pytest.mark.parametrize("name", ["psi", "jensenshannon", "chisquare", "hellinger", "kl_div"])
def test_categorical_statistics_match_evidentlys_golden_vectors(name: str) -> None:
    ref, cur = _categorical_samples()
    assert CATEGORICAL[name](ref, cur).score == pytest.approx(_golden()[1][name], abs=1e-9, rel=1e-9)


def test_ks_is_scipys_two_sample_test() -> None:
    ref, cur = _numeric_samples()
    result = ks(ref[:500], cur[:700])
    assert result.score == stats.ks_2samp(ref[:500], cur[:700]).pvalue
    assert result.drifted == (result.score < 0.05)


def test_psi_of_hand_computed_shares() -> None:
    r, c = np.array([0.5, 0.5]), np.array([0.25, 0.75])
    expected = (0.5 - 0.25) * math.log(0.5 / 0.25) + (0.5 - 0.75) * math.log(0.5 / 0.75)
    assert psi_shares(r, c).score == pytest.approx(expected)


def test_quantile_bins_hold_a_tenth_of_the_reference_each() -> None:
    ref, cur = _numeric_samples()
    r, c = numeric_shares(ref, cur, "quantile")
    assert len(r) == 10 and np.allclose(r, 0.1) and c.sum() == pytest.approx(1.0)


def test_two_sample_chi_square_does_not_alarm_on_identical_distributions() -> None:
    rng = np.random.default_rng(3)
    alarms = 0
    for _ in range(200):
        ref = pd.Series(rng.choice(["a", "b", "c"], 300, p=[0.5, 0.3, 0.2]))
        cur = pd.Series(rng.choice(["a", "b", "c"], 300, p=[0.5, 0.3, 0.2]))
        alarms += chi_square(ref, cur).drifted
    assert alarms <= 20  # ~5% expected; Evidently's goodness-of-fit version alarms far more often here


def test_unseen_categories_and_missing_share_change() -> None:
    ref = pd.Series(["a"] * 90 + [None] * 10)
    cur = pd.Series(["a"] * 75 + ["z"] * 5 + [None] * 20)
    assert unseen_share(ref, cur).score == pytest.approx(5 / 80)
    assert unseen_share(ref, cur).drifted
    assert missing_share_change(ref, cur).score == pytest.approx(0.10)


@pytest.mark.parametrize("n", [300, 2_000, 20_000])
def test_sorted_ks_and_wasserstein_equal_scipys(n: int) -> None:
    """Exact KS p-values for small samples, asymptotic ones (scipy's `asymp`) for large ones."""
    from featureloop.drift_stats import EXACT_KS_PAIRS, ks_wasserstein_sorted, wasserstein

    rng = np.random.default_rng(n)
    ref = np.round(rng.normal(0, 1, n), 2)  # rounded: ties, as real data has
    cur = np.round(rng.normal(0.05, 1.1, n + 137), 2)
    both = ks_wasserstein_sorted(np.sort(ref), np.sort(cur), ref_std=float(np.std(ref)))
    method = "exact" if len(ref) * len(cur) <= EXACT_KS_PAIRS else "asymp"
    expected = stats.ks_2samp(ref, cur, method=method)
    assert both.ks.score == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert both.wasserstein.score == pytest.approx(wasserstein(ref, cur).score, rel=1e-9)
