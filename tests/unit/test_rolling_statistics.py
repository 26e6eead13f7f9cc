"""Rolling statistics are point-in-time correct: a value at t uses only flights at the gate by t."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from data.rolling import ROLLING, compute_rolling, rolling_feature_names
from data.tables import build_flights

CARRIER = next(spec for spec in ROLLING if spec.key == "carrier")
T0 = pd.Timestamp("2013-03-01T10:00:00Z")


def _events() -> pd.DataFrame:
    rows = [  # (minutes after T0 when the outcome became known, dep_delay, arr_delay)
        (0, 10, 20),
        (30, 30, 0),
        (120, 5, 30),
    ]
    return pd.DataFrame(
        {
            "carrier": "AA",
            "outcome_known_ts": [T0 + pd.Timedelta(minutes=m) for m, _, _ in rows],
            "dep_delay": [float(d) for _, d, _ in rows],
            "arr_delay": [float(a) for _, _, a in rows],
        }
    )


def _as_of(stats: pd.DataFrame, when: pd.Timestamp) -> pd.Series | None:
    """What Feast's point-in-time join returns: the latest row at or before `when`."""
    before = stats[stats["event_timestamp"] <= when]
    return None if before.empty else before.iloc[-1]


@pytest.fixture(scope="module")
def stats() -> pd.DataFrame:
    return compute_rolling(_events(), CARRIER)


def test_columns_are_named_by_prefix_statistic_and_window(stats: pd.DataFrame) -> None:
    assert list(stats.columns) == ["carrier", "event_timestamp", *rolling_feature_names("carrier")]


def test_nothing_is_known_before_the_first_landing(stats: pd.DataFrame) -> None:
    assert _as_of(stats, T0 - pd.Timedelta(seconds=1)) is None


@pytest.mark.parametrize(
    ("minutes", "n_1h", "mean_1h", "share_1h", "n_24h", "mean_24h"),
    [
        (0, 1, 10.0, 1.0, 1, 10.0),  # the first landing, known at exactly t, counts
        (45, 2, 20.0, 0.5, 2, 20.0),
        (60, 1, 30.0, 0.0, 2, 20.0),  # the window is (t - 1h, t]: the 10:00 landing has left it
        (90, 0, None, None, 2, 20.0),  # empty window: no mean, no share
        (119, 0, None, None, 2, 20.0),  # the 12:00 landing is still in the future
        (120, 1, 5.0, 1.0, 3, 15.0),
        (24 * 60, 0, None, None, 2, 17.5),  # a day later the 10:00 landing has left the 24h window
    ],
)
def test_value_at_t_uses_exactly_the_flights_landed_in_the_window(
    stats: pd.DataFrame,
    minutes: int,
    n_1h: int,
    mean_1h: float | None,
    share_1h: float | None,
    n_24h: int,
    mean_24h: float,
) -> None:
    row = _as_of(stats, T0 + pd.Timedelta(minutes=minutes))
    assert row is not None
    assert row["carrier_flights_1h"] == n_1h
    assert row["carrier_flights_24h"] == n_24h
    assert row["carrier_dep_delay_mean_24h"] == pytest.approx(mean_24h)
    if mean_1h is None:
        assert math.isnan(row["carrier_dep_delay_mean_1h"]) and math.isnan(row["carrier_delayed_share_1h"])
    else:
        assert row["carrier_dep_delay_mean_1h"] == pytest.approx(mean_1h)
        assert row["carrier_delayed_share_1h"] == pytest.approx(share_1h)


def test_after_every_window_has_emptied_the_counts_are_zero(stats: pd.DataFrame) -> None:
    row = _as_of(stats, T0 + pd.Timedelta(days=30))
    assert row is not None
    assert (row["carrier_flights_1h"], row["carrier_flights_24h"], row["carrier_flights_7d"]) == (0, 0, 0)


def _raw_flight(dep_delay: float, sched_arr_time: int, arr_delay: float | None) -> dict[str, object]:
    return {
        "year": 2013,
        "month": 3,
        "day": 1,
        "dep_time": 900.0,
        "sched_dep_time": 900,
        "dep_delay": dep_delay,
        "arr_time": 1200.0,
        "sched_arr_time": sched_arr_time,
        "arr_delay": arr_delay,
        "carrier": "AA",
        "flight": 1,
        "tailnum": "N1",
        "origin": "JFK",
        "dest": "BOS",
        "air_time": 45.0,
        "distance": 187.0,
        "hour": 9,
        "minute": 0,
        "time_hour": pd.Timestamp("2013-03-01T14:00:00Z"),
    }


BOS = pd.DataFrame(
    [{"faa": "BOS", "name": "Logan", "lat": 42.4, "lon": -71.0, "alt": 19.0, "tz": -5.0, "dst": "A",
      "tzone": "America/New_York"}]
)  # fmt: skip


def test_a_flight_outcome_is_known_at_its_gate_arrival_never_at_or_before_its_scheduled_departure() -> None:
    flights = build_flights(
        pd.DataFrame([_raw_flight(-5.0, 910, -30.0), _raw_flight(15.0, 1015, 20.0), _raw_flight(0.0, 1015, None)]),
        BOS,
    )  # fmt: skip
    known, sched = flights["outcome_known_ts"], flights["sched_dep_ts"]
    # Due at the gate at 09:10 and 30 minutes early: before its own 09:00 departure, so clipped.
    assert known.iloc[0] == sched.iloc[0] + pd.Timedelta(minutes=1)
    # The gate arrival: 10:15 New York time + 20 minutes (not gate departure + air time + 30).
    assert known.iloc[1] == pd.Timestamp("2013-03-01T10:35", tz="America/New_York")
    assert pd.isna(known.iloc[2])  # no arrival, no outcome: it feeds no statistic
    assert (known.dropna() > sched[known.notna()]).all()
