"""Outcomes and weather enter the features only once they can be known: a flight's outcome when it
reaches the gate (its scheduled arrival in the destination's time zone plus the arrival delay), a
weather reading at the end of its hour."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from data.arrival import BOUND, OFFSET, ZONE
from data.rolling import ROLLING, WINDOWS, RollingSpec, compute_rolling
from data.synthetic import DEST_ZONES, SyntheticSpec, generate
from data.tables import WEATHER_KNOWN_AFTER, build_flights, build_weather

AIRPORTS = pd.DataFrame(
    [
        ("JFK", "John F Kennedy Intl", 40.6, -73.8, 13.0, -5.0, "A", "America/New_York"),
        ("BOS", "Logan", 42.4, -71.0, 19.0, -5.0, "A", "America/New_York"),
        ("LAX", "Los Angeles Intl", 33.9, -118.4, 126.0, -8.0, "A", "America/Los_Angeles"),
        ("ORD", "Chicago Ohare Intl", 42.0, -87.9, 668.0, -6.0, "A", "\\N"),
        ("MDW", "Chicago Midway", 41.8, -87.8, 620.0, -6.0, "A", None),
        ("HNL", "Honolulu Intl", 21.3, -157.9, 13.0, -10.0, "N", "Pacific/Honolulu"),
    ],
    columns=["faa", "name", "lat", "lon", "alt", "tz", "dst", "tzone"],
)  # SJU (Puerto Rico, UTC-4) is missing, as in the real table


def _flight(
    departs: str, dest: str, sched_arr_time: int, arr_delay: float | None, **change: Any
) -> dict[str, Any]:
    """A JFK departure at `departs` (New York time) to `dest`."""
    local = pd.Timestamp(departs, tz="America/New_York")
    return {
        "year": local.year, "month": local.month, "day": local.day,
        "dep_time": float(local.hour * 100 + local.minute), "sched_dep_time": local.hour * 100 + local.minute,
        "dep_delay": 0.0, "arr_time": np.nan, "sched_arr_time": sched_arr_time, "arr_delay": arr_delay,
        "carrier": "AA", "flight": 1, "tailnum": "N1", "origin": "JFK", "dest": dest, "air_time": 60.0,
        "distance": 1000.0, "hour": local.hour, "minute": local.minute,
        "time_hour": local.floor("h").tz_convert("UTC"),
        **change,
    }  # fmt: skip


def _built(flight: dict[str, Any]) -> pd.Series:
    return build_flights(pd.DataFrame([flight]), AIRPORTS).iloc[0]


def _at(text: str, zone: str = "UTC") -> pd.Timestamp:
    return pd.Timestamp(text, tz=zone).tz_convert("UTC")


@pytest.mark.parametrize(
    ("departs", "dest", "sched_arr_time", "arr_delay", "gate"),
    [
        # Scheduled 11:10 in Los Angeles, 12 minutes late.
        ("2013-01-15 08:00", "LAX", 1110, 12.0, _at("2013-01-15 11:22", "America/Los_Angeles")),
        # Overnight: 22:30 from New York, at the gate in Los Angeles at 01:50 the next day.
        ("2013-01-15 22:30", "LAX", 150, 0.0, _at("2013-01-16 01:50", "America/Los_Angeles")),
        # Leaves at 23:59 and lands after midnight on the same clock: the next day too.
        ("2013-06-30 23:59", "BOS", 105, -4.0, _at("2013-07-01 01:01", "America/New_York")),
        # Leaves at 00:30 in New York, when it is still yesterday in Hawaii: the arrival is today.
        ("2013-01-16 00:30", "HNL", 520, 0.0, _at("2013-01-16 05:20", "Pacific/Honolulu")),
        # Summer time in the destination.
        ("2013-07-04 17:00", "LAX", 1955, 30.0, _at("2013-07-04 20:25", "America/Los_Angeles")),
        # 01:30 happens twice on 3 November in Los Angeles: read as the later one (standard time).
        ("2013-11-02 22:45", "LAX", 130, 0.0, _at("2013-11-03 09:30")),
        # 02:30 does not exist on 10 March in Boston: read as standard time, 02:30 EST.
        ("2013-03-10 01:00", "BOS", 230, 0.0, _at("2013-03-10 07:30")),
    ],
)
def test_gate_arrival_is_the_scheduled_arrival_in_the_destinations_zone_plus_the_delay(
    departs: str, dest: str, sched_arr_time: int, arr_delay: float, gate: pd.Timestamp
) -> None:
    row = _built(_flight(departs, dest, sched_arr_time, arr_delay))
    assert row["gate_arr_ts"] == gate
    assert row["outcome_known_ts"] == gate
    assert row["arr_zone_rule"] == ZONE


def test_a_tzone_that_is_not_a_zone_falls_back_to_the_standard_offset_never_earlier() -> None:
    # Chicago is on summer time (UTC-5) in July: reading 12:00 at the standard UTC-6 is an hour late.
    for dest in ("ORD", "MDW"):  # tzone "\N" and a missing tzone
        row = _built(_flight("2013-07-10 10:00", dest, 1200, 0.0))
        assert row["arr_zone_rule"] == OFFSET
        assert row["gate_arr_ts"] == _at("2013-07-10 12:00", "America/Chicago") + pd.Timedelta(hours=1)
    winter = _built(_flight("2013-01-10 10:00", "ORD", 1200, 0.0))
    assert winter["gate_arr_ts"] == _at("2013-01-10 12:00", "America/Chicago")  # exact in winter


def test_an_airport_missing_from_the_table_is_read_at_the_westernmost_offset_never_earlier() -> None:
    truth = _at("2013-01-10 13:45", "America/Puerto_Rico")  # UTC-4, all year
    row = _built(_flight("2013-01-10 09:00", "SJU", 1345, 5.0))
    assert row["arr_zone_rule"] == BOUND
    assert row["gate_arr_ts"] == _at("2013-01-10 13:50", "Pacific/Honolulu")  # UTC-10: 6 hours late
    assert row["outcome_known_ts"] >= truth + pd.Timedelta(minutes=5)


def test_the_rebuilt_arrival_is_checked_against_arr_time_where_the_zone_is_known() -> None:
    right = _built(_flight("2013-01-15 08:00", "LAX", 1110, 12.0, arr_time=1122.0))
    wrong = _built(_flight("2013-01-15 08:00", "LAX", 1110, 12.0, arr_time=1222.0))
    midnight = _built(_flight("2013-01-15 20:50", "BOS", 2350, 10.0, arr_time=2400.0))
    unknown = _built(_flight("2013-01-10 09:00", "SJU", 1345, 5.0, arr_time=1350.0))
    assert bool(right["arr_time_agrees"]) and not bool(wrong["arr_time_agrees"])
    assert bool(midnight["arr_time_agrees"])  # arr_time 2400 is 00:00
    assert pd.isna(unknown["arr_time_agrees"])  # a bound is not the destination's clock


@pytest.mark.parametrize(
    "change",
    [
        {"dep_time": np.nan, "dep_delay": np.nan, "air_time": np.nan},  # cancelled
        {"arr_time": 1400.0, "air_time": np.nan},  # diverted: it arrived, but not at its destination
    ],
)
def test_a_flight_that_did_not_reach_its_destination_has_no_outcome(change: dict[str, Any]) -> None:
    row = _built(_flight("2013-01-15 08:00", "LAX", 1110, None, **change))
    assert pd.isna(row["gate_arr_ts"]) and pd.isna(row["outcome_known_ts"]) and pd.isna(row["arr_zone_rule"])


def test_a_weather_reading_is_known_at_the_end_of_its_hour() -> None:
    hours = pd.date_range("2013-01-15T09:00Z", periods=3, freq="h")
    weather = pd.DataFrame({"origin": "JFK", "time_hour": hours, "temp": [30.0, 31.0, 32.0]})
    weather = weather.assign(**{c: 0.0 for c in ("dewp", "humid", "wind_dir", "wind_speed", "wind_gust",
                                                 "precip", "pressure", "visib")})  # fmt: skip
    stamped = build_weather(weather)
    assert (stamped["event_timestamp"] == hours + WEATHER_KNOWN_AFTER).all()
    assert (stamped["event_timestamp"].dt.minute == 0).all()  # still whole hours: the hourly replay holds
    # A flight at 10:10 gets the 09:00 reading (observed up to 09:51), not its own hour's (up to 10:51).
    flight = pd.DataFrame({"origin": ["JFK"], "event_timestamp": [pd.Timestamp("2013-01-15T10:10Z")]})
    flight["event_timestamp"] = flight["event_timestamp"].astype(stamped["event_timestamp"].dtype)
    seen = pd.merge_asof(flight, stamped, on="event_timestamp", by="origin")
    assert seen["temp"].iloc[0] == 30.0


# --- No statistic valid at t counts an outcome that reaches the gate after t (synthetic data) -----

SPEC = SyntheticSpec(days=6, flights_per_hour=4, n_aircraft=12, seed=3)


def _typed(raw: pd.DataFrame) -> pd.DataFrame:
    """The generator's flights as `prepare` reads them (time_hour as a UTC timestamp)."""
    return raw.assign(time_hour=pd.to_datetime(raw["time_hour"], utc=True)).reset_index(drop=True)


def _gate_from_arr_time(flights: pd.DataFrame) -> pd.Series:
    """The reported gate arrival, independently of data/arrival.py: the first instant at or after gate
    departure + air time at which the destination's real clock (the generator's zones, not the
    airports table) reads `arr_time`."""
    sched = flights["time_hour"] + pd.to_timedelta(flights["minute"], unit="min")
    airborne = sched + pd.to_timedelta(flights["dep_delay"] + flights["air_time"], unit="min")
    gate = pd.Series(pd.NaT, index=flights.index, dtype="datetime64[ns, UTC]")
    for dest, rows in flights[flights["arr_time"].notna()].groupby("dest").groups.items():
        local = airborne.loc[rows].dt.tz_convert(DEST_ZONES[str(dest)]).dt.tz_localize(None)
        hhmm = flights.loc[rows, "arr_time"].astype("int64")
        reading = local.dt.floor("D") + pd.to_timedelta(hhmm // 100 * 60 + hhmm % 100, unit="min")
        reading = reading.where(reading >= local, reading + pd.Timedelta(days=1))
        gate.loc[rows] = reading.dt.tz_localize(DEST_ZONES[str(dest)]).dt.tz_convert("UTC")
    return gate


@dataclass(frozen=True)
class Synthetic:
    raw: pd.DataFrame  # the generator's flights, typed as `prepare` reads them
    airports: pd.DataFrame
    flights: pd.DataFrame  # build_flights' output, with `gate` from arr_time beside it
    stats: dict[str, pd.DataFrame]  # each entity's rolling statistics, by join key


def _statistics(flights: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {spec.key: compute_rolling(flights, spec) for spec in ROLLING}


@pytest.fixture(scope="module")
def synthetic() -> Synthetic:
    tables = generate(SPEC)
    raw = _typed(tables["flights"])
    sched = raw["time_hour"] + pd.to_timedelta(raw["minute"], unit="min")
    ids = (
        raw["carrier"]
        + raw["flight"].astype(str)
        + "-"
        + raw["origin"]
        + "-"
        + sched.dt.strftime("%Y%m%dT%H%MZ")
    )
    gate = pd.Series(_gate_from_arr_time(raw).to_numpy(), index=ids)
    flights = build_flights(raw, tables["airports"])
    flights["gate"] = gate.reindex(flights["flight_id"]).to_numpy()
    return Synthetic(raw, tables["airports"], flights, _statistics(flights))


def test_no_synthetic_outcome_is_known_before_the_flight_reaches_the_gate(synthetic: Synthetic) -> None:
    flights = synthetic.flights
    landed = flights[flights["outcome_known_ts"].notna()]
    assert len(landed) > 0.95 * len(flights) and set(landed["arr_zone_rule"]) == {ZONE, OFFSET, BOUND}
    assert (landed["outcome_known_ts"] >= landed["gate"]).all()
    exact = landed[landed["arr_zone_rule"] == ZONE]
    assert (exact["outcome_known_ts"] == exact["gate"]).all()  # the destination's own zone: exact


@pytest.mark.parametrize("spec", ROLLING, ids=[spec.key for spec in ROLLING])
def test_every_outcome_in_a_statistic_valid_at_t_reached_the_gate_by_t(
    synthetic: Synthetic, spec: RollingSpec
) -> None:
    """At every change point t of every entity's statistics and in every window: the flights counted
    are exactly those whose outcome was known in (t - w, t], and the latest of their gate arrivals
    (from arr_time on the destination's clock) is at or before t."""
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.register("stats", synthetic.stats[spec.key])
        con.register("flights", synthetic.flights)
        for window, interval in WINDOWS.items():
            rows = con.sql(f"""
                SELECT s.{spec.key}, s.{spec.prefix}_flights_{window} AS counted, count(f.gate) AS known,
                       max(f.gate) AS latest_gate, s.event_timestamp AS t
                FROM stats AS s LEFT JOIN flights AS f
                  ON f.{spec.key} = s.{spec.key}
                 AND f.outcome_known_ts > s.event_timestamp - INTERVAL {interval}
                 AND f.outcome_known_ts <= s.event_timestamp
                GROUP BY ALL
            """).df()  # fmt: skip
            assert (rows["counted"] == rows["known"]).all(), window
            assert (rows["latest_gate"].isna() | (rows["latest_gate"] <= rows["t"])).all(), window
            assert rows["known"].sum() > 0


def _as_of(stats: pd.DataFrame, key: str, t: pd.Timestamp) -> pd.DataFrame:
    """Every entity's statistics valid at `t` (Feast's point-in-time join: the latest row <= t)."""
    valid = stats[stats["event_timestamp"] <= t].groupby(key, sort=True).tail(1)
    return valid.sort_values(key).reset_index(drop=True)


@pytest.mark.parametrize("rank", [0, 1, 2])
def test_statistics_valid_at_t_stay_the_same_when_outcomes_after_t_change(
    synthetic: Synthetic, rank: int
) -> None:
    """t is one minute before a flight reaches the gate: one of those that spent the longest on the
    ground (gate arrival - gate departure - air time), the hardest to time from departure. Rewrite
    every outcome that reaches the gate after t (later still, other delays): every carrier, route,
    origin and aircraft statistic valid at t stays exactly the same."""
    flights = synthetic.flights
    airborne = pd.to_timedelta(flights["dep_delay"] + flights["air_time"], unit="min")
    ground = flights["gate"] - (flights["sched_dep_ts"] + airborne)
    t = flights.loc[ground.sort_values(ascending=False).index[rank], "gate"] - pd.Timedelta(minutes=1)
    raw = synthetic.raw
    later = _gate_from_arr_time(raw) > t
    assert later.any() and (~later & raw["arr_delay"].notna()).any()
    rewritten = raw.copy()
    rewritten.loc[later, "arr_delay"] += 120
    rewritten.loc[later, "dep_delay"] += 60
    changed = _statistics(build_flights(rewritten, synthetic.airports))
    for key, stats in synthetic.stats.items():
        pd.testing.assert_frame_equal(_as_of(stats, key, t), _as_of(changed[key], key, t), obj=key)
