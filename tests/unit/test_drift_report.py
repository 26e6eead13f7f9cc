"""A drift window read from prediction-log partitions with DuckDB."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from featureloop.monitoring.comparison import compare_window, log_window
from featureloop.monitoring.profiles import build_profile
from featureloop.monitoring.thresholds import DriftConfig


def _log(folder: Path, day: str, n: int, shift: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "event_timestamp": pd.date_range(f"{day}T00:00:00Z", periods=n, freq="min"),
            "visib": rng.normal(8 + shift, 1, n),
            "temp": rng.normal(40, 5, n),
            "carrier": rng.choice(["UA", "DL"], n),
        }
    )
    (folder / f"date={day}").mkdir(parents=True)
    frame.to_parquet(folder / f"date={day}" / "part-0.parquet")


def test_window_report_names_the_drifted_feature_and_respects_the_window(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    reference = build_profile(
        pd.DataFrame({"visib": rng.normal(8, 1, 20000), "temp": rng.normal(40, 5, 20000),
                      "carrier": rng.choice(["UA", "DL"], 20000), "seats": rng.integers(50, 200, 20000)}),
        ["visib", "temp", "seats"], ["carrier"],
    )  # fmt: skip
    _log(tmp_path, "2013-03-01", 1440, 0.0, 1)  # a day like the reference
    _log(tmp_path, "2013-03-02", 1440, -1.0, 2)  # a foggy day: visibility down one sd
    config = DriftConfig()
    calm = compare_window(
        reference,
        log_window(tmp_path, datetime(2013, 3, 1, tzinfo=UTC), datetime(2013, 3, 2, tzinfo=UTC)),
        config,
    )
    foggy = compare_window(
        reference,
        log_window(tmp_path, datetime(2013, 3, 2, tzinfo=UTC), datetime(2013, 3, 3, tzinfo=UTC)),
        config,
    )
    assert calm["rows"] == foggy["rows"] == 1440
    assert calm["verdict"]["drifted_features"] == []
    assert foggy["verdict"]["drifted_features"] == ["visib"] and foggy["features"][0]["name"] == "visib"
    assert foggy["absent"] == ["seats"]
    weighted = compare_window(
        reference, log_window(tmp_path, datetime(2013, 3, 2, tzinfo=UTC), datetime(2013, 3, 3, tzinfo=UTC)),
        config, weights={"visib": 0.7, "temp": 0.2, "carrier": 0.1},
    )  # fmt: skip
    assert weighted["verdict"]["drifted"] is True and foggy["verdict"]["drifted"] is False
