"""How fast serving answers when its online store goes away, and how fast it is back.

Usage (after `make demo`; the embedded profile's SQLite store, or FEATURELOOP_DATA_DIR's):
    .venv/bin/python bench/faults.py [--times 50]

Starts the serving app as `make serve` does on a free loopback port, then for each fault, `--times`
times: the fault, one /predict (timed: the 503 and its body), the fault undone, one /predict
(timed: the first 200 after it). Faults: the SQLite file locked by another process's exclusive
transaction; the file removed (renamed away, and renamed back). Prints p50 and max per fault and
leaves the store as it found it.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from featureloop.operations.base import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _body() -> bytes:
    import pandas as pd

    from featureloop.settings import Settings

    flights = pd.read_parquet(Settings().offline_dir / "flights.parquet").dropna(subset=["tailnum"])
    r = flights.sort_values("sched_dep_ts").iloc[-1]
    flight = {"flight_id": r.flight_id, "tailnum": r.tailnum, "origin": r.origin, "dest": r.dest,
              "carrier": r.carrier, "distance": float(r.distance), "sched_hour": int(r.sched_hour),
              "day_of_week": int(r.day_of_week), "event_timestamp": r.sched_dep_ts.isoformat()}  # fmt: skip
    return json.dumps({"flights": [flight]}).encode()


def _timed(client: httpx.Client, body: bytes) -> tuple[int, float, str]:
    start = time.perf_counter()
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    return response.status_code, (time.perf_counter() - start) * 1000, response.text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--times", type=int, default=50)
    args = parser.parse_args()

    from featureloop.settings import Settings

    settings = Settings()
    store = settings.feast_dir / "online.db"
    if not store.exists():
        raise SystemExit(f"{store} does not exist: run `make demo` first (or set FEATURELOOP_DATA_DIR)")
    body = _body()
    port = free_port()
    command = [str(BIN / "uvicorn"), "serving.app:create_app", "--factory", "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1", "--log-level", "warning"]  # fmt: skip
    server = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the serving app did not become ready")
            time.sleep(0.5)

        parked = store.with_name(store.name + ".parked")

        def lock() -> Callable[[], None]:
            holder = sqlite3.connect(store, isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")

            def undo() -> None:
                holder.execute("ROLLBACK")
                holder.close()

            return undo

        def remove() -> Callable[[], None]:
            os.replace(store, parked)
            return lambda: os.replace(parked, store)

        with httpx.Client(base_url=url, timeout=30) as client:
            for _ in range(20):  # warm
                _timed(client, body)
            print(f"serving at {url}; each fault {args.times} times (ms: p50 / max)")
            for name, fault in (("SQLite file locked", lock), ("SQLite file removed", remove)):
                down, back = [], []
                detail = ""
                for _ in range(args.times):
                    undo = fault()
                    try:
                        status, ms, text = _timed(client, body)
                    finally:
                        undo()
                    if status != 503:
                        raise SystemExit(f"{name}: expected a 503, got {status}: {text[:200]}")
                    down.append(ms)
                    detail = json.loads(text)["detail"]
                    status, ms, text = _timed(client, body)
                    if status != 200:
                        raise SystemExit(
                            f"{name}: not back after the fault was undone: {status} {text[:200]}"
                        )
                    back.append(ms)
                print(
                    f"{name:<22} 503 in {statistics.median(down):6.1f} / {max(down):6.1f}   "
                    f"first 200 after in {statistics.median(back):6.1f} / {max(back):6.1f}\n"
                    f"  503 body: {detail}"
                )
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
