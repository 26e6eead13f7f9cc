"""This project's prepare step (`featureloop prepare` runs it; project.yaml names it): a small
synthetic sensor fleet, written as one dataset version of the offline store. Replace it with the
step that reads your own data and returns the same kind of tables.

- `readings` (the spine): one row per prediction event. A reading of a sensor at `read_at`, with
  what the caller sends (`sensor_id`, `load`, `ambient_temp`) and the outcome: `wear_next_6h`, the
  wear the sensor accumulates over the next six hours (known six hours after the reading).
- `sensor_stats` (a feature view's source): per sensor and hour, rolling statistics of its own
  vibration and temperature over the readings up to that hour (point-in-time correct).

Deterministic: the same seed writes the same bytes, so the same dataset version. From day 60 a
firmware update makes half of the fleet vibrate harder and wear faster under load: the data drifts
and a model trained before it decays.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

SENSORS = 30
DAYS = 90
CHANGE_DAY = 60
START = pd.Timestamp("2024-01-01", tz="UTC")


def generate(seed: int = 7) -> dict[str, pd.DataFrame]:
    """The two tables, hourly readings of every sensor over DAYS days."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(START, periods=DAYS * 24, freq="h")
    hours = np.arange(len(times))
    frames = []
    for s in range(SENSORS):
        age = (hours + rng.integers(0, 24 * 30)) % (24 * 30)  # maintained every 30 days
        health = 1.0 - age / (24 * 30)  # 1 right after maintenance, towards 0 before the next
        load = rng.uniform(0, 1, len(hours))
        ambient = 15 + 8 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 1.5, len(hours))
        updated = (hours >= CHANGE_DAY * 24) & (s % 2 == 0)
        vibration = 1 + 2 * (1 - health) + rng.normal(0, 0.3, len(hours)) + np.where(updated, 0.8, 0.0)
        temperature = 40 + 20 * load + 5 * (1 - health) + 0.5 * ambient + rng.normal(0, 1.0, len(hours))
        rate = 0.05 + 0.3 * load * (1.2 - health) * np.where(updated, 2.0, 1.0)
        wear = pd.Series(rate).rolling(6).sum().shift(-6).to_numpy() + rng.normal(0, 0.05, len(hours))
        frames.append(
            pd.DataFrame(
                {
                    "reading_id": [f"s{s:02d}-{h}" for h in hours],
                    "read_at": times,
                    "sensor_id": f"s{s:02d}",
                    "load": load.round(4),
                    "ambient_temp": ambient.round(2),
                    "vibration": vibration,
                    "temperature": temperature,
                    "wear_next_6h": wear.round(4),  # NaN for the last six hours: not known yet
                }
            )
        )
    readings = pd.concat(frames, ignore_index=True).sort_values(["read_at", "sensor_id"], kind="stable")
    stats = []
    for sensor, rows in readings.groupby("sensor_id", sort=True):
        rolled = rows.set_index("read_at")
        stats.append(
            pd.DataFrame(
                {
                    "sensor_id": sensor,
                    "event_timestamp": rolled.index,
                    "vibration_mean_6h": rolled["vibration"].rolling("6h").mean().round(4).to_numpy(),
                    "vibration_max_6h": rolled["vibration"].rolling("6h").max().round(4).to_numpy(),
                    "temperature_mean_6h": rolled["temperature"].rolling("6h").mean().round(4).to_numpy(),
                    "temperature_mean_24h": rolled["temperature"].rolling("24h").mean().round(4).to_numpy(),
                }
            )
        )
    spine = readings.drop(columns=["vibration", "temperature"]).reset_index(drop=True)
    return {"readings": spine, "sensor_stats": pd.concat(stats, ignore_index=True)}


def prepare(context: Any) -> dict[str, Any]:
    """Write the tables as one dataset version (`context`: a featureloop.project.prepare.PrepareContext)
    and say what was written: the version, its files and the time range."""
    context.report(f"generating {SENSORS} sensors x {DAYS} days of hourly readings")
    tables = generate()
    return dict(context.write(tables, tables["readings"]["read_at"], "synthetic sensor fleet"))
