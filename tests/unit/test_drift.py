"""Per-feature drift (significant and relevant), the dataset verdict, and k-of-n persistence."""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from featureloop.monitoring.current import current_profile
from featureloop.monitoring.drift import FeatureDrift, dataset_verdict, feature_drift, persistent
from featureloop.monitoring.profiles import build_profile
from featureloop.monitoring.thresholds import DriftConfig

CONFIG = DriftConfig()


def _profiles(
    ref: pd.DataFrame, cur: pd.DataFrame, numeric: list[str], categorical: list[str]
) -> tuple[Any, Any]:
    reference = build_profile(ref, numeric, categorical)
    con = duckdb.connect()
    con.register("cur", cur)
    return reference, current_profile("cur", reference, con=con)


def _numeric_drift(shift: float, n_ref: int, n_cur: int, seed: int = 0) -> FeatureDrift:
    rng = np.random.default_rng(seed)
    ref, cur = pd.DataFrame({"x": rng.normal(0, 1, n_ref)}), pd.DataFrame({"x": rng.normal(shift, 1, n_cur)})
    reference, current = _profiles(ref, cur, ["x"], [])
    return feature_drift("x", reference["features"]["x"], current["features"]["x"], CONFIG)


def test_same_distribution_is_not_drift() -> None:
    result = _numeric_drift(0.0, 20_000, 2_000)
    assert not result.drifted and result.p_value > CONFIG.alpha


def test_half_a_standard_deviation_is_drift() -> None:
    result = _numeric_drift(0.5, 20_000, 2_000)
    assert result.drifted and result.p_value < 1e-10 and result.psi > 0.1


def test_a_significant_but_tiny_shift_on_a_huge_window_is_not_drift() -> None:
    result = _numeric_drift(0.03, 200_000, 200_000)
    assert result.p_value < CONFIG.alpha  # the test alone would alarm ...
    assert result.psi < CONFIG.min_psi and not result.drifted  # ... the effect floor does not


def test_unseen_categories_are_reported_with_their_share() -> None:
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"c": rng.choice(["a", "b"], 5000)})
    cur = pd.DataFrame({"c": np.concatenate([rng.choice(["a", "b"], 950), ["z"] * 50])})
    reference, current = _profiles(ref, cur, [], ["c"])
    result = feature_drift("c", reference["features"]["c"], current["features"]["c"], CONFIG)
    assert result.unseen_share == pytest.approx(0.05)
    assert any("never saw" in note for note in result.notes)


def test_the_unseen_share_counts_present_values_and_the_missing_share_counts_nulls() -> None:
    ref = pd.DataFrame({"c": ["a"] * 90 + [None] * 10})
    cur = pd.DataFrame({"c": ["a"] * 75 + ["z"] * 5 + [None] * 20})
    reference, current = _profiles(ref, cur, [], ["c"])
    result = feature_drift("c", reference["features"]["c"], current["features"]["c"], CONFIG)
    assert result.unseen_share == pytest.approx(5 / 80) and any("never saw" in n for n in result.notes)
    assert result.missing_share_change == pytest.approx(0.10)


def test_constant_reference_and_all_missing_current_are_named() -> None:
    ref = pd.DataFrame({"x": [1.0] * 500, "y": np.arange(500.0)})
    cur = pd.DataFrame({"x": [1.0] * 300, "y": [np.nan] * 300})
    reference, current = _profiles(ref, cur, ["x", "y"], [])
    x = feature_drift("x", reference["features"]["x"], current["features"]["x"], CONFIG)
    y = feature_drift("y", reference["features"]["y"], current["features"]["y"], CONFIG)
    assert any("constant in the reference" in n for n in x.notes)
    assert any("all values missing" in n for n in y.notes) and y.missing_share_change == pytest.approx(1.0)
    assert y.drifted and not x.drifted  # a feature that stops arriving is drift; a constant one is not


def test_null_values_are_missing_not_zeros_in_the_current_sample() -> None:
    ref = pd.DataFrame({"z": pd.array(np.arange(500), dtype="Int64")})
    cur = pd.DataFrame({"z": pd.array([None] * 290 + [7] * 10, dtype="Int64")})  # NULLs in DuckDB
    reference, current = _profiles(ref, cur, ["z"], [])
    assert current["features"]["z"]["sample"].tolist() == [7.0] * 10
    assert current["features"]["z"]["missing"] == 290
    z = feature_drift("z", reference["features"]["z"], current["features"]["z"], CONFIG)
    assert z.ks_p_value is not None and z.missing_share_change == pytest.approx(290 / 300)


def _f(name: str, drifted: bool) -> FeatureDrift:
    return FeatureDrift(name, drifted, 0.0 if drifted else 1.0, 0.2 if drifted else 0.0, 0.0, 0.0)


def test_too_small_a_window_gets_no_verdict_rather_than_no_drift() -> None:
    verdict = dataset_verdict([_f("a", True)], rows=50, config=CONFIG)
    assert verdict.drifted is None and "too small" in verdict.reason


def test_verdict_is_the_weighted_share_of_drifted_features() -> None:
    features = [_f("a", True), _f("b", False), _f("c", False)]
    assert dataset_verdict(features, 1000, CONFIG).drifted is False  # 1 of 3
    weighted = dataset_verdict(features, 1000, CONFIG, weights={"a": 0.6, "b": 0.3, "c": 0.1})
    assert weighted.drifted is True and weighted.share == pytest.approx(0.6)
    assert weighted.drifted_features == ["a"]


def test_persistence_needs_k_of_the_last_n_windows_with_a_verdict() -> None:
    history = [True, None, False, True]
    assert persistent(history, k=2, n=3)
    assert not persistent(history, k=3, n=3)
    assert not persistent([None, None], k=1, n=2)


@pytest.mark.parametrize(
    ("shift", "rows", "low", "high"),
    [
        (0.0, CONFIG.min_rows, 0.0, 0.05),  # no change, at the smallest window with a verdict
        (0.75, CONFIG.min_rows, 0.95, 1.0),  # three quarters of a standard deviation: found there
        (0.0, 5_000, 0.0, 0.05),
        (0.5, 5_000, 0.95, 1.0),
        (0.25, 5_000, 0.0, 0.05),  # a quarter (PSI ~0.06): significant, below the effect floor
    ],
)
def test_calibration_of_the_defaults_on_200_seeded_windows(
    shift: float, rows: int, low: float, high: float
) -> None:
    """The defaults' promise (docs/monitoring.md): at most 5% of no-change windows flagged; at least
    95% of windows after a shift of three quarters of a standard deviation from `min_rows` on, and
    of half of one on large windows; a quarter of one is reported, not counted."""
    rng = np.random.default_rng(2024)
    reference = build_profile(pd.DataFrame({"x": rng.normal(0, 1, 20_000)}), ["x"], [])
    con = duckdb.connect()
    flagged = 0
    for _ in range(200):
        con.register("cur", pd.DataFrame({"x": rng.normal(shift, 1, rows)}))
        current = current_profile("cur", reference, con=con)
        flagged += feature_drift("x", reference["features"]["x"], current["features"]["x"], CONFIG).drifted
    assert low <= flagged / 200 <= high
