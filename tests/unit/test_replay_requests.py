"""The replay's requests: every prediction event of the spine in its hourly step, as /predict rows
with the keys serving reads; a fixed sample."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from featureloop.project.spec import load_spec
from featureloop.settings import PROJECT_ROOT

HOUR = timedelta(hours=1)
SPEC = load_spec(PROJECT_ROOT / "feature_repo")  # the worked example's spine, request and keys


def test_requests_sample_is_fixed_and_every_flight_lands_in_its_step() -> None:
    from featureloop.backtest.replay import Requests

    flights = pd.DataFrame(
        {
            "flight_id": [f"F{i}" for i in range(400)],
            "sched_dep_ts": pd.Timestamp("2013-03-01T05:00Z") + pd.to_timedelta(np.arange(400) * 7, unit="min"),
            "tailnum": [None if i % 10 == 0 else f"N{i % 7}" for i in range(400)],
            "origin": "EWR", "dest": "BOS", "carrier": "UA", "distance": 200.0, "sched_hour": 8, "day_of_week": 4,
        }
    )  # fmt: skip
    start = datetime(2013, 3, 1, 5, tzinfo=UTC)
    every = Requests(flights, SPEC, start, start + 48 * HOUR, HOUR)
    assert len(every) == 400
    assert [len(every.at(i)) for i in range(3)] == [9, 9, 8]  # minutes 0-56, 63-119, 126-175
    assert (
        every.at(0)[0]["event_timestamp"] == "2013-03-01T05:00:00+00:00" and every.at(0)[0]["tailnum"] is None
    )
    assert set(every.at(0)[1]) == {"flight_id", "tailnum", "origin", "dest", "carrier", "distance", "sched_hour",
                                   "day_of_week", "event_timestamp"}  # fmt: skip
    keys = every.keys.to_pydict()
    assert keys["route"][:2] == ["EWR-BOS", "EWR-BOS"] and keys["tailnum"][0] == ""  # as serving reads them
    half = Requests(flights, SPEC, start, start + 48 * HOUR, HOUR, share=0.5)
    again = Requests(flights, SPEC, start, start + 48 * HOUR, HOUR, share=0.5)
    assert 150 < len(half) < 250 and [r["flight_id"] for r in half.rows] == [
        r["flight_id"] for r in again.rows
    ]
    with pytest.raises(ValueError, match="share"):
        Requests(flights, SPEC, start, start + HOUR, HOUR, share=0)
