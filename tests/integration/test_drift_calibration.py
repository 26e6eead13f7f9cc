"""Calibration of the drift decision on the synthetic generator's flights (what the model sees).

Each window is the first `min_rows` flights of a freshly seeded synthetic dataset, joined with its
weather as the feature views join them. Reference: a long no-drift dataset of another seed.
"""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from data.synthetic import Drift, SyntheticSpec, generate
from data.tables import WEATHER_KNOWN_AFTER
from featureloop.monitoring.comparison import compare_window
from featureloop.monitoring.profiles import build_profile
from featureloop.monitoring.thresholds import DriftConfig

pytestmark = pytest.mark.integration  # 400 seeded datasets: ~25 s, kept out of the unit tier

CONFIG = DriftConfig()  # the defaults: min_rows 100, PSI floor 0.2, share threshold 0.5
NUMERIC = [
    "temp",
    "dewp",
    "humid",
    "wind_dir",
    "wind_speed",
    "precip",
    "pressure",
    "visib",
    "distance",
    "hour",
]
CATEGORICAL = ["carrier", "origin", "dest"]
WINDOWS = 200


def _model_view(spec: SyntheticSpec) -> pd.DataFrame:
    tables = generate(spec)
    weather = tables["weather"].drop(columns=["year", "month", "day", "hour"])
    # The view serves a reading from the end of its hour on: a flight gets the hour before's.
    known = pd.to_datetime(weather["time_hour"]) + WEATHER_KNOWN_AFTER
    weather = weather.assign(time_hour=known.dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    flights = tables["flights"].merge(weather, on=["origin", "time_hour"], how="left")
    return flights[["time_hour", *NUMERIC, *CATEGORICAL]]


@pytest.fixture(scope="module")
def reference() -> dict[str, object]:
    frame = _model_view(SyntheticSpec(days=90, seed=10_000))
    return build_profile(frame, NUMERIC, CATEGORICAL)


def _window(
    frame: pd.DataFrame, con: duckdb.DuckDBPyConnection, reference: dict[str, object]
) -> dict[str, object]:
    assert len(frame) >= CONFIG.min_rows
    con.register("current_window", frame.head(CONFIG.min_rows))
    return compare_window(reference, "current_window", CONFIG, con=con)  # type: ignore[arg-type]


def test_no_drift_windows_rarely_get_a_drift_verdict(reference: dict[str, object]) -> None:
    con = duckdb.connect()
    verdicts = [
        _window(_model_view(SyntheticSpec(days=11, seed=seed)), con, reference)["verdict"]["drifted"]
        for seed in range(WINDOWS)
    ]
    assert None not in verdicts
    assert sum(verdicts) / WINDOWS <= 0.05


def test_a_three_quarter_sd_shift_in_the_most_important_feature_is_found(
    reference: dict[str, object],
) -> None:
    """visib drives the synthetic delays (5 minutes per mile of visibility lost)."""
    con = duckdb.connect()
    start = pd.Timestamp("2013-01-01", tz="America/New_York")
    found = 0
    for seed in range(WINDOWS):
        spec = SyntheticSpec(
            days=24, seed=seed, drift=Drift(at=start + pd.Timedelta(days=12), features=("visib",), shift=0.75)
        )
        frame = _model_view(spec)
        after = frame[pd.to_datetime(frame["time_hour"]) >= spec.drift.at.tz_convert("UTC")]  # type: ignore[union-attr]
        features = {f["name"]: f for f in _window(after, con, reference)["features"]}  # type: ignore[index]
        found += features["visib"]["drifted"]
    assert found / WINDOWS >= 0.95


def test_an_unseen_category_at_five_percent_is_reported(reference: dict[str, object]) -> None:
    frame = _model_view(SyntheticSpec(days=11, seed=3)).head(CONFIG.min_rows).copy()
    frame.loc[frame.index[::20], "carrier"] = "ZZ"  # 5% of the rows
    report = _window(frame, duckdb.connect(), reference)
    carrier = next(f for f in report["features"] if f["name"] == "carrier")  # type: ignore[attr-defined]
    assert carrier["unseen_share"] == pytest.approx(0.05)
    assert "5.0% of current values are categories the reference never saw" in carrier["notes"]
