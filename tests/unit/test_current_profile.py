"""Current profiles: DuckDB counts equal numpy's in the reference bins, and partitions merge exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from featureloop.monitoring.current import current_profile, merge_profiles
from featureloop.monitoring.profiles import build_profile


def _frame(seed: int, n: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1, n)
    x[rng.random(n) < 0.05] = np.nan
    c = rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1]).astype(object)
    c[rng.random(n) < 0.03] = None
    return pd.DataFrame({"x": x, "c": c})


@pytest.fixture()
def reference() -> dict:  # type: ignore[type-arg]
    return build_profile(_frame(1, 5000), ["x"], ["c"])


def test_duckdb_counts_equal_numpy_in_the_reference_bins(tmp_path: Path, reference: dict) -> None:  # type: ignore[type-arg]
    current = _frame(2, 3000, shift=0.3)
    current.to_parquet(tmp_path / "cur.parquet")
    profile = current_profile(f"read_parquet('{tmp_path / 'cur.parquet'}')", reference)
    edges = np.array([-np.inf if e is None and i == 0 else np.inf if e is None else e
                      for i, e in enumerate(reference["features"]["x"]["edges"])])  # fmt: skip
    finite = current["x"].dropna().to_numpy()
    x = profile["features"]["x"]
    assert x["counts"] == np.histogram(finite, edges)[0].tolist()
    assert x["missing"] == int(current["x"].isna().sum()) and x["n"] == 3000
    assert x["sum"] == pytest.approx(finite.sum()) and x["sum_sq"] == pytest.approx((finite**2).sum())
    c = profile["features"]["c"]
    assert c["counts"] == current["c"].dropna().value_counts().sort_index().to_dict()
    assert c["missing"] == int(current["c"].isna().sum())


def test_profiles_of_partitions_merge_into_the_profile_of_the_union(tmp_path: Path, reference: dict) -> None:  # type: ignore[type-arg]
    _frame(3, 1000).to_parquet(tmp_path / "a.parquet")
    _frame(4, 1500, shift=1.0).to_parquet(tmp_path / "b.parquet")
    a = current_profile(f"read_parquet('{tmp_path / 'a.parquet'}')", reference)
    b = current_profile(f"read_parquet('{tmp_path / 'b.parquet'}')", reference)
    union = current_profile(f"read_parquet('{tmp_path}/*.parquet')", reference)
    merged = merge_profiles(a, b)
    assert merged["rows"] == union["rows"] == 2500
    assert merged["features"]["x"]["counts"] == union["features"]["x"]["counts"]
    assert merged["features"]["x"]["sum"] == pytest.approx(union["features"]["x"]["sum"])
    assert merged["features"]["c"] == union["features"]["c"]


def test_a_feature_missing_from_the_current_data_is_named(tmp_path: Path, reference: dict) -> None:  # type: ignore[type-arg]
    _frame(5, 100)[["x"]].to_parquet(tmp_path / "only_x.parquet")
    profile = current_profile(f"read_parquet('{tmp_path / 'only_x.parquet'}')", reference)
    assert profile["absent"] == ["c"] and "c" not in profile["features"]
