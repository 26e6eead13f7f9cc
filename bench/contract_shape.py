"""Benchmark: /predict's row shaping, generated from the project's spec (serving/contract.py), beside
the hand-written flight shaping it replaced (kept here as the anchor), for 1 and 100 rows.

Usage: .venv/bin/python bench/contract_shape.py
"""

from __future__ import annotations

import sys
import timeit
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The project root, not bench/ (whose serving.py would shadow the serving package).
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from featureloop.project.spec import load_spec  # noqa: E402
from featureloop.settings import PROJECT_ROOT  # noqa: E402
from serving.contract import build_contract  # noqa: E402

ROW = {
    "flight_id": "UA1", "tailnum": "N1", "origin": "EWR", "dest": "IAH", "carrier": "UA", "distance": 1400.0,
    "sched_hour": 5, "day_of_week": 1, "event_timestamp": "2013-12-30T10:00:00Z",
}  # fmt: skip


def hand_written(body: Any, now: datetime) -> list[dict[str, Any]]:
    """The shaping serving/predictor.py had before the contract (issue 18), for the worked example."""
    return [
        {
            "flight_id": f.flight_id,
            "tailnum": f.tailnum or "",
            "origin": f.origin,
            "carrier": f.carrier,
            "route": f"{f.origin}-{f.dest}",
            "dest": f.dest,
            "distance": f.distance,
            "sched_hour": f.sched_hour,
            "day_of_week": f.day_of_week,
            "event_timestamp": (f.event_timestamp or now).astimezone(UTC),
        }
        for f in body.flights
    ]


def main() -> None:
    contract = build_contract(load_spec(PROJECT_ROOT / "feature_repo"))
    now = datetime.now(UTC)
    for n in (1, 100):
        body = contract.request_model.model_validate({"flights": [ROW] * n})
        for name, shape in (("hand-written (before)", hand_written), ("generated contract", contract.shape)):
            best = min(timeit.repeat(lambda s=shape, b=body: s(b, now), number=2000, repeat=5)) / 2000
            print(f"{n:>3} rows  {name:<22} {best * 1e6:7.2f} us")


if __name__ == "__main__":
    main()
