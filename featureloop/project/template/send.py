"""Send the spine's readings of a time window to the serving app's /predict, as the product that
asks for predictions would: what `featureloop drift` then checks. Usage (serving running):

    python send.py --start 2024-03-12 --end 2024-03-14 [--url http://127.0.0.1:8000]
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.request
from pathlib import Path

import pandas as pd

BATCH = 500


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--start", required=True, help="first reading time (ISO, UTC)")
    parser.add_argument("--end", required=True, help="end of the window (ISO, UTC, exclusive)")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    args = parser.parse_args()
    data = Path(os.environ.get("FEATURELOOP_DATA_DIR", Path(__file__).resolve().parent / "data"))
    readings = pd.read_parquet(data / "offline" / "readings.parquet")
    start, end = pd.Timestamp(args.start, tz="UTC"), pd.Timestamp(args.end, tz="UTC")
    due = readings[(readings["read_at"] >= start) & (readings["read_at"] < end)]
    rows = [
        {
            "reading_id": str(r["reading_id"]),
            "sensor_id": str(r["sensor_id"]),
            "load": float(r["load"]),
            "ambient_temp": float(r["ambient_temp"]),
            "event_timestamp": pd.Timestamp(r["read_at"]).isoformat(),
        }
        for r in due.to_dict("records")
    ]
    headers = {"content-type": "application/json"}
    token = os.environ.get("FEATURELOOP_SERVING_TOKEN")
    if token:
        headers["authorization"] = f"Bearer {token}"
    answered = 0
    for i in range(0, len(rows), BATCH):
        body = json.dumps({"readings": rows[i : i + BATCH]}).encode()
        request = urllib.request.Request(f"{args.url}/predict", data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            answered += len(json.loads(response.read())["predictions"])
        print(f"sent {min(i + BATCH, len(rows)):,} of {len(rows):,}", flush=True)
    print(f"{answered:,} predictions for the readings of {start} .. {end}")


if __name__ == "__main__":
    main()
