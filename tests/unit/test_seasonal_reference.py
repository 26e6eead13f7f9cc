"""The seasonal reference: a window of a few hours of a daily cycle against the training reference
(the whole day) drifts every time; against the same hours a day earlier it does not, and a real
change still does. Without enough rows a season earlier, the training reference is used, and said."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from featureloop.monitoring.checks import Champion, check_window
from featureloop.monitoring.profiles import build_profile
from featureloop.monitoring.thresholds import DriftConfig
from featureloop.params import DriftParams

RNG = np.random.default_rng(7)


def _hours(hours: np.ndarray, shift: float = 0.0) -> pd.DataFrame:
    """Readings at the given hours of the day: a daily cycle, noise, and a group field."""
    n = len(hours)
    return pd.DataFrame(
        {
            "load": 100 + 30 * np.sin(2 * np.pi * hours / 24) + RNG.normal(0, 3, n) + shift,
            "site": RNG.choice(["a", "b"], n),
        }
    )


def _champion() -> Any:
    day = _hours(np.repeat(np.arange(24), 200))  # the training reference: whole days
    reference = build_profile(day, ["load"], ["site"])
    return Champion(version=None, reference=reference, holdout={}, label=None)  # type: ignore[arg-type]


def _check(window: pd.DataFrame, earlier: pd.DataFrame | None) -> dict[str, Any]:
    params = DriftParams(seasonal_reference_hours=24, drift=DriftConfig(min_rows=500, share_threshold=0.5))
    table = pa.Table.from_pandas(window)
    return check_window(
        _champion(), table, params, None if earlier is None else pa.Table.from_pandas(earlier)
    )


def test_a_few_hours_of_a_daily_cycle_drift_against_the_whole_day_not_against_yesterdays_same_hours() -> None:
    morning = np.repeat(np.arange(6, 10), 250)  # 06:00-10:00, 1,000 rows
    today, yesterday = _hours(morning), _hours(morning)
    assert _check(today, None)["verdict"]["drifted"] is True  # the training reference: the whole day
    seasonal = _check(today, yesterday)
    assert seasonal["verdict"]["drifted"] is False
    assert seasonal["reference"] == "seasonal: the 1,000 rows served 24 h earlier"
    changed = _check(_hours(morning, shift=15.0), yesterday)  # a real change of the same hours
    assert changed["verdict"]["drifted"] is True and "load" in changed["verdict"]["drifted_features"]


def test_too_few_rows_a_season_earlier_fall_back_to_the_training_reference_and_say_so() -> None:
    morning = np.repeat(np.arange(6, 10), 250)
    result = _check(_hours(morning), _hours(np.arange(6, 10)))  # 4 rows yesterday
    assert result["reference"] == "training (the window 24 h earlier holds 4 rows < min_rows 500)"
