"""Benchmark: how often the drift verdict fires, per window size and PSI floor, on windows without
a change and on windows after one: the false-alarm and detection rates a project's monitoring
thresholds give at its volume.

Data: the scaffolded sensor project's synthetic fleet (`featureloop init`'s prepare.py: 30 sensors,
hourly, a firmware change on day 60 that makes half the fleet vibrate harder). Each reading is
joined with its sensor's rolling statistics as of the reading (what the model is served). The
reference is days 1-30 (a model's training window); "no change" windows are consecutive readings
of days 31-59, "after the change" windows of days 61-89. A window of n rows is n / 30 hours of the
fleet. Two kinds of "no change" are measured: the fleet's own (real time structure: each sensor's
maintenance cycle moves its statistics) and rows drawn at random from the reference period
(i.i.d.: the statistical floor of the tests).

Usage: .venv/bin/python bench/drift_window_sizes.py [--windows 60]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the project root, not bench/

from featureloop.monitoring.comparison import compare_window  # noqa: E402
from featureloop.monitoring.profiles import build_profile  # noqa: E402
from featureloop.monitoring.thresholds import DriftConfig  # noqa: E402
from featureloop.project.template.prepare import generate  # noqa: E402
from featureloop.sql import session  # noqa: E402

FEATURES = [
    "load",
    "ambient_temp",
    "vibration_mean_6h",
    "vibration_max_6h",
    "temperature_mean_6h",
    "temperature_mean_24h",
]
SIZES = (100, 200, 365, 500, 1000, 2000)
FLOORS = (0.02, 0.1, 0.2)


def served_rows() -> pd.DataFrame:
    tables = generate()
    stats = tables["sensor_stats"].rename(columns={"event_timestamp": "read_at"})
    return tables["readings"].merge(stats, on=["sensor_id", "read_at"], how="left")


def seasonal(rows: pd.DataFrame, starts: np.ndarray, n: int, config: DriftConfig) -> float:
    """Share of windows rows[s : s + n] flagged against the same hours a day earlier (30 rows an hour)."""
    day = 24 * 30
    return float(
        np.mean(
            [
                flagged(
                    build_profile(rows.iloc[s - day : s - day + n], FEATURES, []),
                    rows.iloc[s : s + n],
                    config,
                )
                for s in starts
            ]
        )
    )


def flagged(reference: dict, window: pd.DataFrame, config: DriftConfig, feature: str | None = None) -> bool:
    """The dataset verdict (or, with `feature`, that feature's) on one window."""
    with session() as con:
        con.register("w", window[FEATURES])
        compared = compare_window(reference, "w", config, con=con)
    if feature is None:
        return bool(compared["verdict"]["drifted"])
    return any(f["name"] == feature and f["drifted"] for f in compared["features"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--windows", type=int, default=60, help="windows per cell")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = served_rows()
    day = (rows["read_at"] - rows["read_at"].min()).dt.days
    reference_rows = rows[day < 30]
    reference = build_profile(reference_rows, FEATURES, [])
    periods = {
        "no change (fleet)": rows[(day >= 30) & (day < 59)],
        "after the change": rows[(day >= 61) & (day < 89)],
    }
    rng = np.random.default_rng(0)
    print(
        f"{'window rows':>11}  {'PSI floor':>9}  {'no change, i.i.d.':>17}  {'no change, fleet':>16}  "
        f"{'after the change':>16}  {'vibration, no change':>20}  {'vibration, after':>16}  "
        f"{'seasonal 24h: no change':>23}  {'at the change':>13}"
    )
    fleet_positions = np.flatnonzero(((day >= 30) & (day < 59)).to_numpy())
    change_positions = np.flatnonzero((day == 60).to_numpy())
    for n in SIZES:
        for floor in FLOORS:
            config = DriftConfig(min_rows=min(n, 1000), min_psi=floor)
            iid = [
                reference_rows.sample(n, random_state=int(rng.integers(1 << 31))) for _ in range(args.windows)
            ]
            windows = [
                [period.iloc[s : s + n] for s in rng.integers(0, len(period) - n, args.windows)]
                for period in periods.values()
            ]
            rates = [np.mean([flagged(reference, w, config) for w in chosen]) for chosen in [iid, *windows]]
            rates += [
                np.mean([flagged(reference, w, config, "vibration_mean_6h") for w in chosen])
                for chosen in windows
            ]
            rates.append(seasonal(rows, rng.choice(fleet_positions[: -n or None], args.windows), n, config))
            rates.append(seasonal(rows, rng.choice(change_positions, args.windows), n, config))
            print(
                f"{n:>11,}  {floor:>9}  {rates[0]:>17.0%}  {rates[1]:>16.0%}  {rates[2]:>16.0%}  "
                f"{rates[3]:>20.0%}  {rates[4]:>16.0%}  {rates[5]:>23.0%}  {rates[6]:>13.0%}",
                flush=True,
            )
    print(
        f"({args.windows} windows a cell; defaults otherwise: {DriftConfig().model_dump(exclude={'features'})}; "
        f"{time.perf_counter() - started:.0f} s)"
    )


if __name__ == "__main__":
    main()
