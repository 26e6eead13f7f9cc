"""Benchmark: a point-in-time training set of 1,000,000 entity rows over 1,000,000 feature rows,
our ASOF offline store beside Feast's own DuckDB store (and with `--stores ours,feast,ray`, Feast's
Ray offline store on the cluster RAY_ADDRESS names), through `get_historical_features`.

Usage:
    .venv/bin/python bench/pit.py [--rows 1000000] [--per-entity 10] [--feast-timeout 1800]

A Feast repository of its own in a temporary folder: rows / per-entity customers with --per-entity
feature rows each over 60 days (three features, a created timestamp, some ties), a 7-day TTL; 1,000,000 entity rows at random times
(some before any feature row, some beyond the TTL). Each store runs in a process of its own (time
and peak RSS); the two results are then compared row for row after sorting.
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
from datetime import timedelta
from pathlib import Path

STORES = {"ours": "featureloop.featurestore.offline.AsofDuckDBOfflineStore", "feast": "duckdb", "ray": "ray"}


def _data(folder: Path, rows: int, per_entity: int) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(1)
    customers = max(rows // per_entity, 1)
    base = pd.Timestamp("2024-01-01", tz="UTC")
    features = pd.DataFrame(
        {
            "customer_id": np.repeat([f"c{i:06d}" for i in range(customers)], per_entity),
            "event_timestamp": base + pd.to_timedelta(rng.integers(0, 86_400 * 60, rows), unit="s"),
            "balance": rng.normal(100, 30, rows),
            "orders": rng.integers(0, 500, rows),
            "segment": rng.choice(["gold", "silver", "bronze", "new"], rows),
        }
    )
    features["created"] = features["event_timestamp"] + pd.to_timedelta(rng.integers(0, 3600, rows), unit="s")
    ties = features.index[::97]  # same entity and event time as the row before, another created time
    features.loc[ties, "event_timestamp"] = features["event_timestamp"].shift(1).loc[ties]
    features.to_parquet(folder / "features.parquet", index=False)
    entity = pd.DataFrame(
        {
            "customer_id": [f"c{i:06d}" for i in rng.integers(0, customers, rows)],
            "event_timestamp": base + pd.to_timedelta(rng.integers(-86_400 * 3, 86_400 * 70, rows), unit="s"),
        }
    )
    entity.to_parquet(folder / "entity.parquet", index=False)


def _worker(folder: Path, store_type: str) -> dict[str, float]:
    import pandas as pd
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource
    from feast.repo_config import RepoConfig
    from feast.types import Float64, Int64, String
    from feast.value_type import ValueType

    config = RepoConfig(
        project="bench",
        provider="local",
        registry=str(folder / f"registry-{store_type}.db"),
        online_store={"type": "sqlite", "path": str(folder / f"online-{store_type}.db")},
        offline_store=(
            # Feast's Ray offline store on the cluster RAY_ADDRESS names (`ray start --head`).
            {"type": "ray", "ray_address": os.environ["RAY_ADDRESS"], "storage_path": str(folder / "ray")}
            if store_type == "ray"
            else {"type": STORES[store_type]}
        ),
        entity_key_serialization_version=3,
    )
    store = FeatureStore(config=config)
    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)
    source = FileSource(
        path=str(folder / "features.parquet"),
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
    )
    view = FeatureView(
        name="customer_stats", entities=[customer], ttl=timedelta(days=7), source=source,
        schema=[Field(name="balance", dtype=Float64), Field(name="orders", dtype=Int64),
                Field(name="segment", dtype=String)],
    )  # fmt: skip
    store.apply([customer, view])
    entity = pd.read_parquet(folder / "entity.parquet")
    start = time.perf_counter()
    frame = store.get_historical_features(
        entity_df=entity,
        features=["customer_stats:balance", "customer_stats:orders", "customer_stats:segment"],
    ).to_df()
    seconds = time.perf_counter() - start
    frame.sort_values(["customer_id", "event_timestamp"], kind="stable").reset_index(drop=True).to_parquet(
        folder / f"result-{store_type}.parquet"
    )
    return {
        "seconds": seconds,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rows": len(frame),
    }


def _same(folder: Path, first: str, other: str) -> bool:
    import pandas as pd

    ours, theirs = (pd.read_parquet(folder / f"result-{s}.parquet") for s in (first, other))
    columns = ["customer_id", "event_timestamp", "balance", "orders", "segment"]
    ours, theirs = ours[columns], theirs[columns]
    ours = ours.sort_values(columns, kind="stable", na_position="first").reset_index(drop=True)
    theirs = theirs.sort_values(columns, kind="stable", na_position="first").reset_index(drop=True)
    try:
        pd.testing.assert_frame_equal(ours, theirs, check_dtype=False)
    except AssertionError as exc:
        print(exc)
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--per-entity", type=int, default=10, help="feature rows per customer (density)")
    parser.add_argument("--feast-timeout", type=int, default=1800)
    parser.add_argument("--worker", choices=["data", *STORES])
    parser.add_argument(
        "--stores", default="ours,feast", help="which, comma-separated (ray: needs RAY_ADDRESS)"
    )
    parser.add_argument("--folder")
    args = parser.parse_args()
    if args.worker == "data":
        _data(Path(args.folder), args.rows, args.per_entity)
        return
    if args.worker:
        print(json.dumps(_worker(Path(args.folder), args.worker)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        run = [
            sys.executable,
            __file__,
            "--folder",
            tmp,
            "--rows",
            str(args.rows),
            "--per-entity",
            str(args.per_entity),
        ]
        subprocess.run([*run, "--worker", "data"], check=True, timeout=1800)
        print(
            f"{args.rows:,} entity rows over {args.rows:,} feature rows ({args.per_entity} per customer; "
            "3 features, 7-day TTL, created-time ties)"
        )
        stores = args.stores.split(",")
        for store in stores:
            try:
                out = subprocess.run(
                    [*run, "--worker", store], capture_output=True, text=True, check=True,
                    timeout=args.feast_timeout if store != "ours" else 3600,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                print(f"{store:<6} did not finish in {args.feast_timeout} s")
                stores.remove(store)
                continue
            result = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{store:<6} {result['seconds']:8.2f} s  peak {result['peak_mb']:6.0f} MB  {result['rows']:,} rows",
                  flush=True)  # fmt: skip
        for other in stores[1:]:
            print(
                f"{other} identical to {stores[0]} row for row (after sorting): {_same(Path(tmp), stores[0], other)}"
            )


if __name__ == "__main__":
    main()
