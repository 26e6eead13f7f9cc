"""Benchmark: point-in-time training sets, our ASOF offline store beside Feast's own DuckDB store.

Usage (after `make demo`, which prepares the data and applies the repo):
    .venv/bin/python bench/training_set.py [--rows 20000] [--feast-timeout 900] [--feast-full]

Each measurement runs in its own process (time and peak RSS of that process). Retrieval goes
through `FeatureStore.get_historical_features` with the `flight_delay_v1` service. Side by side:
a random sample of --rows landed 2013 flights through our store and through Feast's own DuckDB store;
then every landed 2013 flight through ours (Feast's only with --feast-full: on this 2-core, 24 GB
machine 20,000 rows already peak at ~20 GB in Feast's store). Last, two whole `featureloop train`
runs (January-February, and all of 2013) against a throwaway MLflow store.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path


def _worker(store_type: str, rows: int) -> None:
    import pandas as pd

    from featureloop.featurestore.store import open_store
    from featureloop.project.spec import load_spec
    from featureloop.settings import Settings
    from featureloop.training.dataset import build_entity_frame

    settings = Settings()
    store = open_store(settings, offline_store=None if store_type == "ours" else "duckdb")
    flights = pd.read_parquet(settings.offline_dir / "flights.parquet")
    entity = build_entity_frame(
        flights,
        load_spec(settings.feature_repo),
        datetime(2013, 1, 1, tzinfo=UTC),
        datetime(2014, 1, 2, tzinfo=UTC),
    )
    entity = entity.drop(columns="label")
    if rows:
        entity = entity.sample(rows, random_state=0) if rows < len(entity) else entity
    service = store.get_feature_service("flight_delay_v1")
    start = time.perf_counter()
    frame = store.get_historical_features(entity_df=entity, features=service).to_df()
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": len(frame), "columns": frame.shape[1], "seconds": seconds, "peak_mb": peak_mb}))


def _measure(store_type: str, rows: int, timeout: float) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--worker", store_type, "--rows", str(rows)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        return {"store": store_type, "rows": rows, "seconds": None, "note": f"killed after {timeout:.0f} s"}
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return {"store": store_type, **result}


def _train_seconds(start: str, end: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "FEATURELOOP_MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db"}
        cli = str(Path(sys.executable).parent / "featureloop")
        begin = time.perf_counter()
        subprocess.run(
            [cli, "train", "--start", start, "--end", end, "--no-promote"],
            env=env, check=True, capture_output=True, timeout=1800,
        )  # fmt: skip
        return time.perf_counter() - begin


def _fmt(result: dict[str, object]) -> str:
    if result.get("seconds") is None:
        return f"{result['store']:<6} rows={result['rows']!s:>7}  did not finish: {result['note']}"
    return (
        f"{result['store']:<6} rows={result['rows']:>7,}  {result['seconds']:8.2f} s  "
        f"peak {result['peak_mb']:7.0f} MB  ({result['rows'] / result['seconds']:,.0f} rows/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--worker", choices=["ours", "feast"])
    parser.add_argument("--rows", type=int, default=20_000, help="sample size for the side-by-side run")
    parser.add_argument("--feast-timeout", type=float, default=900.0)
    parser.add_argument("--feast-full", action="store_true", help="also run Feast's store on the full year")
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker, args.rows)
        return
    print("point-in-time training set, feature service flight_delay_v1 (6 views, 49 features)")
    runs = [("ours", args.rows, 600.0), ("feast", args.rows, args.feast_timeout), ("ours", 0, 600.0)]
    if args.feast_full:
        runs.append(("feast", 0, args.feast_timeout))
    for store, rows, timeout in runs:
        print(_fmt(_measure(store, rows, timeout)), flush=True)
    for label, start, end in (
        ("Jan-Feb 2013", "2013-01-01", "2013-03-01"),
        ("all of 2013", "2013-01-01", "2014-01-02"),
    ):
        print(
            f"featureloop train, {label}: {_train_seconds(start, end):.1f} s (whole command, fresh MLflow store)",
            flush=True,
        )


if __name__ == "__main__":
    main()
