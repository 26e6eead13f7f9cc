"""Drift statistics: Evidently's golden values in compatibility mode (and Evidently itself when it is
installed), scipy's KS, hand-computed values, the drift check's statistics on profile bins."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from featureloop.monitoring import evidently as evidently_stats
from featureloop.monitoring.evidently import CATEGORICAL, NUMERIC
from featureloop.monitoring.profiles import numeric_profile
from featureloop.monitoring.statistics import BIN_STATISTICS, ks
from tests.unit.evidently_cases import Case, evidently_score, generated_cases, our_score

GOLDEN = Path(__file__).parent / "golden" / "evidently_golden_vectors.json"
COMPAT_GOLDEN = Path(__file__).parent / "golden" / "evidently_compat_cases.json"


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
    expected = _golden()[0][name]
    assert NUMERIC[name](ref, cur).score == pytest.approx(expected, abs=1e-9, rel=1e-9)


@pytest.mark.parametrize("name", ["psi", "jensenshannon", "chisquare", "hellinger", "kl_div"])
def test_categorical_statistics_match_evidentlys_golden_vectors(name: str) -> None:
    ref, cur = _categorical_samples()
    assert CATEGORICAL[name](ref, cur).score == pytest.approx(_golden()[1][name], abs=1e-9, rel=1e-9)


def _disagreements(case: Case, expected: dict[str, float]) -> dict[str, tuple[float, float]]:
    found = {}
    for name in case.stats:
        ours, theirs = our_score(case, name), expected[name]
        if name == "hellinger":
            # Evidently sums over a Python set; for text categories its order follows the process's
            # hash seed, and near 0 the square root turns a last-bit difference into 1e-8.
            ours, theirs = ours**2, theirs**2
        if ours != pytest.approx(theirs, abs=1e-9, rel=1e-9):
            found[name] = (ours, theirs)
    return found


@pytest.mark.parametrize("case", generated_cases(), ids=lambda case: case.name)
def test_compatible_mode_matches_evidentlys_golden_values(case: Case) -> None:
    """Evidently 0.7.23's scores, written by `bench/evidently_compat.py --write-golden`."""
    expected = json.loads(COMPAT_GOLDEN.read_text())["cases"][case.name]
    assert set(expected) == set(case.stats)
    assert _disagreements(case, expected) == {}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Evidently's imports (numpy.core, ...)
@pytest.mark.parametrize("seed", [1, 2])
def test_compatible_mode_equals_evidently_itself_on_fresh_frames(seed: int) -> None:
    """Bit for bit: the same operations in the same order (skipped without the `bench` group)."""
    pytest.importorskip("evidently")
    for case in generated_cases(seed):
        found = {n: (our_score(case, n), evidently_score(case, n)) for n in case.stats}
        assert {n: pair for n, pair in found.items() if pair[0] != pair[1]} == {}, case.name


def test_numeric_reference_with_at_most_20_distinct_values_gets_a_bin_per_value() -> None:
    def shares(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return evidently_stats.binned_shares(*evidently_stats.clean_pair(ref, cur), numeric=True)

    ref, cur = np.tile([0.0, 0.0, 1.0, 1.0], 5), np.tile([0.0, 1.0, 1.0, 1.0], 5)
    assert sorted(zip(*shares(ref, cur), strict=True)) == [(0.5, 0.25), (0.5, 0.75)]
    expected = 0.25 * math.log(2) + 0.25 * math.log(1.5)
    assert NUMERIC["psi"](ref, cur).score == pytest.approx(expected)
    assert len(shares(np.arange(20.0), np.arange(20.0))[0]) == 20
    # 21 distinct values: Sturges over the 42 pooled values, ceil(log2(42) + 1) = 7 bins.
    assert len(shares(np.arange(21.0), np.arange(21.0))[0]) == 7


def test_empty_bins_are_filled_per_side_with_that_sides_smallest_share() -> None:
    assert list(evidently_stats.fill_empty(np.array([0.0, 0.5, 0.5]))) == [1e-4, 0.5, 0.5]
    assert evidently_stats.fill_empty(np.array([0.0, 5e-5, 1 - 5e-5]))[0] == pytest.approx(5e-11)
    # Reference: "c" once in 20,000 (5e-5), so its empty "b" gets 5e-11; the current's empty "c" 1e-4.
    ref, cur = pd.Series(["a"] * 19_999 + ["c"]), pd.Series(["a"] * 50 + ["b"] * 50)
    r, c = [1 - 5e-5, 5e-11, 5e-5], [0.5, 0.5, 1e-4]
    expected = sum((ri - ci) * math.log(ri / ci) for ri, ci in zip(r, c, strict=True))
    assert CATEGORICAL["psi"](ref, cur).score == pytest.approx(expected, rel=1e-12)


def test_hellinger_is_one_minus_bhattacharyya_for_both_kinds() -> None:
    """Numeric: Sturges bins over the distinct values 0 and 1 are [0, .5) and [.5, 1]."""
    expected = math.sqrt(1 - math.sqrt(0.5 * 0.25) - math.sqrt(0.5 * 0.75))
    ref, cur = [0.0] * 50 + [1.0] * 50, [0.0] * 25 + [1.0] * 75
    assert NUMERIC["hellinger"](ref, cur).score == pytest.approx(expected)
    assert CATEGORICAL["hellinger"](pd.Series(ref), pd.Series(cur)).score == pytest.approx(expected)


def test_evidentlys_chisquare_is_goodness_of_fit_and_zero_for_an_unseen_category() -> None:
    ref, cur = pd.Series(["a"] * 50 + ["b"] * 50), pd.Series(["a"] * 30 + ["b"] * 70)
    # Expected 50 and 50: statistic (20^2 + 20^2) / 50 = 16, one degree of freedom.
    assert CATEGORICAL["chisquare"](ref, cur).score == pytest.approx(math.erfc(math.sqrt(16 / 2)))
    assert CATEGORICAL["chisquare"](ref, pd.Series(["a"] * 99 + ["z"])).score == 0.0


def test_compatible_mode_refuses_an_empty_sample_as_evidently_does() -> None:
    with pytest.raises(ValueError, match="reference sample"):
        NUMERIC["psi"]([np.nan, np.inf], [1.0])
    with pytest.raises(ValueError, match="current sample"):
        CATEGORICAL["chisquare"](pd.Series(["a"]), pd.Series([None]))


def test_ks_is_scipys_two_sample_test() -> None:
    ref, cur = _numeric_samples()
    result = ks(ref[:500], cur[:700])
    assert result.score == stats.ks_2samp(ref[:500], cur[:700]).pvalue
    assert result.drifted == (result.score < 0.05)


def test_psi_of_hand_computed_shares() -> None:
    r, c = np.array([0.5, 0.5]), np.array([0.25, 0.75])
    expected = (0.5 - 0.25) * math.log(0.5 / 0.25) + (0.5 - 0.75) * math.log(0.5 / 0.75)
    assert BIN_STATISTICS["psi"](r, c).score == pytest.approx(expected)
    assert BIN_STATISTICS["psi"](np.array([50.0, 50.0]), np.array([25.0, 75.0])).score == pytest.approx(
        expected
    )


def test_decile_bins_hold_a_tenth_of_the_reference_each() -> None:
    ref, _ = _numeric_samples()
    counts = numeric_profile(pd.Series(ref))["counts"]
    assert len(counts) == 10 and np.allclose(np.array(counts) / len(ref), 0.1)


def test_two_sample_chi_square_does_not_alarm_on_identical_distributions() -> None:
    rng = np.random.default_rng(3)
    alarms = 0
    for _ in range(200):
        ref = np.bincount(rng.choice(3, 300, p=[0.5, 0.3, 0.2]), minlength=3).astype(float)
        cur = np.bincount(rng.choice(3, 300, p=[0.5, 0.3, 0.2]), minlength=3).astype(float)
        alarms += BIN_STATISTICS["chi_square"](ref, cur, 0.05).drifted
    assert alarms <= 20  # ~5% expected; Evidently's goodness-of-fit version alarms far more often here


def test_chi_square_rejects_nothing_without_two_bins_on_both_sides() -> None:
    assert BIN_STATISTICS["chi_square"](np.array([10.0, 0.0]), np.array([5.0, 0.0])).score == 1.0
    assert BIN_STATISTICS["chi_square"](np.array([10.0, 10.0]), np.array([0.0, 0.0])).score == 1.0
    p = BIN_STATISTICS["chi_square"](np.array([50.0, 50.0, 0.0]), np.array([30.0, 70.0, 0.0])).score
    assert p == pytest.approx(stats.chi2_contingency([[50, 50], [30, 70]]).pvalue)


@pytest.mark.parametrize("n", [300, 2_000, 20_000])
def test_sorted_ks_and_wasserstein_equal_scipys(n: int) -> None:
    """Exact KS p-values for small samples, asymptotic ones (scipy's `asymp`) for large ones."""
    from featureloop.monitoring.statistics import EXACT_KS_PAIRS, ks_wasserstein_sorted, wasserstein

    rng = np.random.default_rng(n)
    ref = np.round(rng.normal(0, 1, n), 2)  # rounded: ties, as real data has
    cur = np.round(rng.normal(0.05, 1.1, n + 137), 2)
    both = ks_wasserstein_sorted(np.sort(ref), np.sort(cur), ref_std=float(np.std(ref)))
    method = "exact" if len(ref) * len(cur) <= EXACT_KS_PAIRS else "asymp"
    expected = stats.ks_2samp(ref, cur, method=method)
    assert both.ks.score == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert both.wasserstein.score == pytest.approx(wasserstein(ref, cur).score, rel=1e-9)
