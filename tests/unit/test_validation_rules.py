"""Each row rule quarantines its bad row with its reason; read = accepted + quarantined."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.schema import AIRPORTS, FLIGHTS, PLANES, WEATHER, TableSpec
from data.validate import validate_table


def _good_flight() -> dict[str, object]:
    return {
        "year": 2013,
        "month": 1,
        "day": 1,
        "dep_time": 517.0,
        "sched_dep_time": 515,
        "dep_delay": 2.0,
        "arr_time": 830.0,
        "sched_arr_time": 819,
        "arr_delay": 11.0,
        "carrier": "UA",
        "flight": 1545,
        "tailnum": "N14228",
        "origin": "EWR",
        "dest": "IAH",
        "air_time": 227.0,
        "distance": 1400.0,
        "hour": 5,
        "minute": 15,
        "time_hour": pd.Timestamp("2013-01-01T10:00:00Z"),
    }


def _good_weather() -> dict[str, object]:
    return {
        "origin": "EWR",
        "year": 2013,
        "month": 1,
        "day": 1,
        "hour": 1,
        "temp": 39.0,
        "dewp": 26.0,
        "humid": 59.4,
        "wind_dir": 270.0,
        "wind_speed": 10.4,
        "wind_gust": np.nan,
        "precip": 0.0,
        "pressure": 1012.0,
        "visib": 10.0,
        "time_hour": pd.Timestamp("2013-01-01T06:00:00Z"),
    }


def _good_plane() -> dict[str, object]:
    return {
        "tailnum": "N10156",
        "year": 2004.0,
        "type": "Fixed wing multi engine",
        "manufacturer": "EMBRAER",
        "model": "EMB-145XR",
        "engines": 2,
        "seats": 55,
        "speed": np.nan,
        "engine": "Turbo-fan",
    }


def _good_airport() -> dict[str, object]:
    return {
        "faa": "IAH",
        "name": "George Bush Intercontinental",
        "lat": 29.98,
        "lon": -95.34,
        "alt": 97.0,
        "tz": -6.0,
        "dst": "A",
        "tzone": "America/Chicago",
    }


FLIGHT_CASES = {
    "time_hour_present": {"time_hour": pd.NaT},
    "time_hour_in_2013": {"time_hour": pd.Timestamp("2012-12-31T12:00:00Z")},
    "known_origin": {"origin": "XYZ"},
    "carrier_present": {"carrier": None},
    "dest_present": {"dest": None},
    "distance_non_negative": {"distance": -5.0},
    "minute_valid": {"minute": 75},
    "dep_delay_sane": {"dep_delay": 5000.0},
    "arr_delay_sane": {"arr_delay": -500.0},
    "air_time_positive": {"air_time": 0.0},
    "flown_has_tailnum": {"tailnum": None},
    "sched_arr_time_valid": {"sched_arr_time": 1275},
}
WEATHER_CASES = {
    "time_hour_present": {"time_hour": pd.NaT},
    "time_hour_in_2013": {"time_hour": pd.Timestamp("2014-03-01T00:00:00Z")},
    "known_origin": {"origin": "BOS"},
    "temp_sane": {"temp": 300.0},
    "humid_sane": {"humid": 140.0},
    "wind_dir_sane": {"wind_dir": 400.0},
    "wind_speed_sane": {"wind_speed": 1048.0},
    "wind_gust_sane": {"wind_gust": -1.0},
    "precip_sane": {"precip": 20.0},
    "pressure_sane": {"pressure": 10.0},
    "visib_sane": {"visib": -1.0},
}
PLANE_CASES = {
    "tailnum_present": {"tailnum": None},
    "year_sane": {"year": 2050.0},
    "seats_positive": {"seats": 0},
    "engines_sane": {"engines": 12},
}
AIRPORT_CASES = {
    "faa_present": {"faa": None},
    "lat_sane": {"lat": 95.0},
    "lon_sane": {"lon": -200.0},
    "tz_sane": {"tz": -20.0},
    "dst_code": {"dst": "X"},
}


# A second row that differs from the good one on the table's key, so only the rule under test fires.
DISTINCT_KEY: dict[str, dict[str, object]] = {
    "flights": {"flight": 9999},
    "weather": {"time_hour": pd.Timestamp("2013-01-01T07:00:00Z")},
    "planes": {"tailnum": "N99999"},
    "airports": {"faa": "ZZZ"},
}


def _cases(spec: TableSpec, good: dict[str, object], cases: dict[str, dict[str, object]]) -> list[object]:
    return [
        pytest.param(spec, good, rule, change, id=f"{spec.name}-{rule}") for rule, change in cases.items()
    ]


@pytest.mark.parametrize(
    ("spec", "good", "rule", "change"),
    _cases(FLIGHTS, _good_flight(), FLIGHT_CASES)
    + _cases(WEATHER, _good_weather(), WEATHER_CASES)
    + _cases(PLANES, _good_plane(), PLANE_CASES)
    + _cases(AIRPORTS, _good_airport(), AIRPORT_CASES),
)
def test_rule_quarantines_its_bad_row_with_its_reason(
    spec: TableSpec, good: dict[str, object], rule: str, change: dict[str, object]
) -> None:
    frame = pd.DataFrame([good, {**good, **DISTINCT_KEY[spec.name], **change}])
    result = validate_table(spec, frame)
    assert result.read == 2 == len(result.accepted) + len(result.quarantined)
    assert len(result.quarantined) == 1
    bad = result.quarantined.iloc[0]
    assert bad["rule"] == rule
    description = next(r.description for r in spec.rules if r.name == rule)
    assert description in bad["reason"]
    assert bad["source_row"] == 3  # header is line 1, the good row line 2
    assert len(result.accepted) == 1


@pytest.mark.parametrize(
    ("spec", "good", "rule"),
    [
        (FLIGHTS, _good_flight(), "duplicate_flight"),
        (WEATHER, _good_weather(), "duplicate_observation"),
        (PLANES, _good_plane(), "duplicate_tailnum"),
        (AIRPORTS, _good_airport(), "duplicate_faa"),
    ],
)
def test_duplicate_key_keeps_the_first_row_and_quarantines_the_rest(
    spec: TableSpec, good: dict[str, object], rule: str
) -> None:
    result = validate_table(spec, pd.DataFrame([good, good, good]))
    assert len(result.accepted) == 1
    assert result.quarantined["rule"].tolist() == [rule, rule]


def test_a_row_breaking_several_rules_names_them_all() -> None:
    frame = pd.DataFrame([{**_good_flight(), "origin": "XYZ", "distance": -1.0}])
    result = validate_table(FLIGHTS, frame)
    assert result.quarantined.loc[0, "rule"] == "known_origin,distance_non_negative"


def test_evening_flights_of_31_december_are_in_2013_new_york_time() -> None:
    late = {**_good_flight(), "time_hour": pd.Timestamp("2014-01-01T04:00:00Z")}
    assert len(validate_table(FLIGHTS, pd.DataFrame([late])).accepted) == 1


def test_cancelled_flight_without_aircraft_is_accepted() -> None:
    cancelled = {
        **_good_flight(),
        "dep_time": np.nan,
        "dep_delay": np.nan,
        "arr_delay": np.nan,
        "tailnum": None,
    }
    assert len(validate_table(FLIGHTS, pd.DataFrame([cancelled])).accepted) == 1


@pytest.mark.parametrize("tzone", [None, "\\N", "Mars/Olympus_Mons"])
def test_an_airport_without_a_usable_tzone_is_accepted_its_tz_still_places_it(tzone: str | None) -> None:
    airport = {**_good_airport(), "tzone": tzone}
    assert len(validate_table(AIRPORTS, pd.DataFrame([airport])).accepted) == 1


def test_a_scheduled_arrival_missing_is_quarantined_midnight_is_not() -> None:
    frame = pd.DataFrame(
        [{**_good_flight(), "sched_arr_time": 0}, {**_good_flight(), "flight": 2, "sched_arr_time": None}]
    )
    result = validate_table(FLIGHTS, frame)
    assert result.accepted["sched_arr_time"].tolist() == [0]
    assert result.quarantined["rule"].tolist() == ["sched_arr_time_valid"]
