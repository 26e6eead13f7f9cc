"""Benchmark: the drift defaults, calibrated. The share of windows the dataset verdict flags, per
window size and rule (PSI floor / share of drifted features), on four data sets: windows without a change (false alarms) and windows
after one (detection).

- `shifts` (synthetic, i.i.d.): 5 normal features and one categorical; the reference 20,000 rows;
  windows from the same distribution (no change) and with every numeric feature shifted by 0.25,
  0.5 and 1 standard deviation. The statistical floor: what the tests detect at each size.
- `sensors` (`featureloop init`'s generator: 30 sensors, hourly, a firmware change on day 60 makes
  half the fleet vibrate harder): reference days 1-30 (a training window); no change: windows of
  days 31-59; after the change: windows of days 61-89.
- `flights` (the worked example, `make demo`'s prepared data: every flight's point-in-time row,
  what serving answers): reference 1 January - 14 February 2013; no change: windows of 15-28
  February (the same season); after the change: windows of 15 June - 15 August, the summer on
  which the demo's first model decays (bench/policy_whatif.py).
- `txhousing` (the second worked example, 46 cities, monthly): reference 2002-2004 (the backtest's
  first model); no change: 2005; after the change: 2008-2011, the bust of the housing cycle. Its
  month of the year is ignored, as the project's spec says.

A window is what a project serves in one monitoring window (the spec's `monitoring.window`: 2 days,
7 days, a quarter), starting at a random time, n of its rows at random: a project that serves n
predictions a window. (A cell is "-" where a window holds fewer than n rows.) Every real set also
gets "i.i.d." windows drawn from a held-out half of its reference period: the false alarms of the
tests alone, without time structure. `min_rows` is set to 1 while measuring, so every size gets a
verdict; the defaults' `min_rows` decides which sizes get one in use.

Usage: .venv/bin/python bench/drift_calibration.py [--windows 40] [--data shifts sensors ...]
(flights needs `featureloop prepare && featureloop apply` first; txhousing the examples group.)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # the project root, not bench/

from featureloop.monitoring.comparison import compare_window  # noqa: E402
from featureloop.monitoring.profiles import build_profile  # noqa: E402
from featureloop.monitoring.thresholds import DriftConfig, FeatureOverride  # noqa: E402
from featureloop.sql import session  # noqa: E402

SIZES = (50, 100, 130, 200, 500, 1000, 5000)
RULES = ("0.02/0.5", "0.1/0.5", "0.2/0.5", "0.2/0.3")  # PSI floor / share of drifted features

WEEK, QUARTER = pd.Timedelta(days=7), pd.Timedelta(days=92)
Windows = Callable[[int, np.random.Generator], pd.DataFrame]


@dataclass
class DataSet:
    """A reference and, per column of the table, a way to draw a window of n rows."""

    reference: pd.DataFrame
    numeric: list[str]
    categorical: list[str]
    windows: dict[str, Windows]
    ignore: list[str] = field(default_factory=list)


def in_windows(rows: pd.DataFrame, time: str, span: pd.Timedelta) -> Windows:
    """n rows served within one monitoring window (`span`, the project's `monitoring.window`) of a
    period: a window starting at a random time, n of its rows at random (a project that serves n
    predictions a window). Fewer than n rows in the window: no cell."""

    def draw(n: int, rng: np.random.Generator) -> pd.DataFrame:
        times = rows[time]
        latest = times.max() - span
        start = times.min() + (latest - times.min()) * float(rng.random())
        window = rows[(times >= start) & (times < start + span)]
        return (
            window.sample(n, random_state=int(rng.integers(1 << 31))) if n <= len(window) else rows.iloc[:0]
        )

    return draw


def random_rows(rows: pd.DataFrame) -> Windows:
    def draw(n: int, rng: np.random.Generator) -> pd.DataFrame:
        return rows.sample(n, random_state=int(rng.integers(1 << 31))) if n <= len(rows) else rows.iloc[:0]

    return draw


def split_reference(rows: pd.DataFrame, in_reference: pd.Series) -> tuple[pd.DataFrame, Windows]:
    """Half of the reference period builds the profile; i.i.d. windows come from the other half."""
    period = rows[in_reference.to_numpy()]
    held_out = period.sample(frac=0.5, random_state=0)
    return period.drop(held_out.index), random_rows(held_out)


def shifts() -> DataSet:
    rng = np.random.default_rng(1)
    numeric = [f"x{i}" for i in range(5)]

    def frame(n: int, shift: float, rng: np.random.Generator) -> pd.DataFrame:
        out = pd.DataFrame(rng.normal(shift, 1.0, (n, 5)), columns=numeric)
        return out.assign(kind=rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1]))

    return DataSet(
        frame(20_000, 0.0, rng),
        numeric,
        ["kind"],
        {
            "no change": lambda n, r: frame(n, 0.0, r),
            "0.25 sd": lambda n, r: frame(n, 0.25, r),
            "0.5 sd": lambda n, r: frame(n, 0.5, r),
            "1 sd": lambda n, r: frame(n, 1.0, r),
        },
    )


def sensors() -> DataSet:
    from featureloop.project.template.prepare import generate

    tables = generate()
    stats = tables["sensor_stats"].rename(columns={"event_timestamp": "read_at"})
    rows = tables["readings"].merge(stats, on=["sensor_id", "read_at"], how="left").sort_values("read_at")
    rows = rows.reset_index(drop=True)
    day = (rows["read_at"] - rows["read_at"].min()).dt.days
    numeric = ["load", "ambient_temp", "vibration_mean_6h", "vibration_max_6h"]
    numeric += ["temperature_mean_6h", "temperature_mean_24h"]
    reference, iid = split_reference(rows, day < 30)
    return DataSet(
        reference,
        numeric,
        [],
        {
            "no change, i.i.d.": iid,
            "no change": in_windows(rows[(day >= 30) & (day < 59)], "read_at", pd.Timedelta(days=2)),
            "after the change": in_windows(rows[(day >= 61) & (day < 89)], "read_at", pd.Timedelta(days=2)),
        },
    )


def typed(frame: pd.DataFrame, names: list[str]) -> tuple[list[str], list[str]]:
    numeric = [c for c in names if pd.api.types.is_numeric_dtype(frame[c]) and frame[c].dtype != bool]
    return numeric, [c for c in names if c not in numeric]


def flights() -> DataSet:
    from featureloop.featurestore.store import import_feast_unchecked, open_store
    from featureloop.params import TrainParams
    from featureloop.settings import Settings
    from featureloop.training.dataset import TIME_COLUMN
    from featureloop.training.training_set import load_training_set

    import_feast_unchecked()
    settings = Settings()
    found = load_training_set(
        open_store(settings),
        settings.offline_dir,
        TrainParams(
            train_start=pd.Timestamp("2013-01-01", tz="UTC"), train_end=pd.Timestamp("2013-08-16", tz="UTC")
        ),
    )
    rows = found.frame.sort_values(TIME_COLUMN, kind="stable").reset_index(drop=True)
    t = pd.to_datetime(rows[TIME_COLUMN], utc=True)
    numeric, categorical = typed(rows, found.service_features + found.request_features)
    reference, iid = split_reference(rows, t < pd.Timestamp("2013-02-15", tz="UTC"))
    return DataSet(
        reference,
        numeric,
        categorical,
        {
            "no change, i.i.d.": iid,
            "no change": in_windows(rows[(t >= pd.Timestamp("2013-02-15", tz="UTC")) & (t < pd.Timestamp("2013-03-01", tz="UTC"))], TIME_COLUMN, WEEK),
            "after the change": in_windows(rows[t >= pd.Timestamp("2013-06-15", tz="UTC")], TIME_COLUMN, WEEK),
        },
    )  # fmt: skip


def txhousing() -> DataSet:
    sys.path.insert(0, str(ROOT / "examples" / "txhousing"))
    from prepare import load, tables  # type: ignore[import-not-found]

    written = tables(load())
    rows = written["forecasts"].merge(
        written["city_market"].rename(columns={"event_timestamp": "predicted_at"}),
        on=["city", "predicted_at"],
        how="left",
    )
    rows = rows.sort_values("predicted_at", kind="stable").reset_index(drop=True)
    year = rows["predicted_at"].dt.year
    names = [c for c in written["city_market"].columns if c not in ("city", "event_timestamp")]
    reference, iid = split_reference(rows, (year >= 2002) & (year <= 2004))
    return DataSet(
        reference,
        [*names, "month_of_year"],
        [],
        {
            "no change, i.i.d.": iid,
            "no change": in_windows(rows[year == 2005], "predicted_at", QUARTER),
            "after the change": in_windows(rows[(year >= 2008) & (year <= 2011)], "predicted_at", QUARTER),
        },
        ignore=["month_of_year"],
    )


DATA = {"shifts": shifts, "sensors": sensors, "flights": flights, "txhousing": txhousing}


def flag_rate(data: DataSet, profile: dict, draw: Windows, n: int, config: DriftConfig, count: int) -> str:
    rng = np.random.default_rng(n)
    verdicts = []
    with session() as con:
        for _ in range(count):
            window = draw(n, rng)
            if window.empty:
                return "-"
            con.register("w", window[data.numeric + data.categorical])
            verdicts.append(bool(compare_window(profile, "w", config, con=con)["verdict"]["drifted"]))
    return f"{np.mean(verdicts):.0%}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--windows", type=int, default=40, help="windows per cell")
    parser.add_argument("--data", nargs="+", choices=sorted(DATA), default=list(DATA))
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--rules", nargs="+", default=list(RULES), help="PSI floor/share threshold")
    args = parser.parse_args()
    started = time.perf_counter()
    for name in args.data:
        data = DATA[name]()
        profile = build_profile(data.reference, data.numeric, data.categorical)
        print(
            f"\n## {name}: reference {len(data.reference):,} rows, {len(data.numeric + data.categorical)} features"
        )
        print("| window rows | PSI floor / share | " + " | ".join(data.windows) + " |", flush=True)
        print("|---|---|" + "---|" * len(data.windows))
        for n in args.sizes:
            for rule in args.rules:
                floor, share = (float(x) for x in rule.split("/"))
                config = DriftConfig(
                    min_rows=1,
                    min_psi=floor,
                    share_threshold=share,
                    features={f: FeatureOverride(ignore=True) for f in data.ignore},
                )
                cells = [
                    flag_rate(data, profile, draw, n, config, args.windows) for draw in data.windows.values()
                ]
                print(f"| {n:,} | {rule} | " + " | ".join(cells) + " |", flush=True)
    defaults = DriftConfig().model_dump(exclude={"features", "min_psi", "share_threshold"})
    print(f"\n({args.windows} windows a cell; thresholds otherwise the defaults: {defaults}; "
          f"{time.perf_counter() - started:.0f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
