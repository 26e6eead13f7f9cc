"""The replay's requests: every flight in its hourly step, as /predict rows; a fixed sample."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

HOUR = timedelta(hours=1)


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
    every = Requests(flights, start, start + 48 * HOUR, HOUR)
    assert len(every) == 400
    assert [len(every.at(i)) for i in range(3)] == [9, 9, 8]  # minutes 0-56, 63-119, 126-175
    assert (
        every.at(0)[0]["event_timestamp"] == "2013-03-01T05:00:00+00:00" and every.at(0)[0]["tailnum"] is None
    )
    half = Requests(flights, start, start + 48 * HOUR, HOUR, share=0.5)
    again = Requests(flights, start, start + 48 * HOUR, HOUR, share=0.5)
    assert 150 < len(half) < 250 and [r["flight_id"] for r in half.rows] == [
        r["flight_id"] for r in again.rows
    ]
    with pytest.raises(ValueError, match="share"):
        Requests(flights, start, start + HOUR, HOUR, share=0)
