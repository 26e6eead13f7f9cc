"""Benchmark: materialising 1,000,000 entities into SQLite, our engine beside Feast's local engine.

Usage:
    .venv/bin/python bench/materialize.py [--entities 1000000]

A Feast repository of its own in a temporary folder: one entity (a string id), one feature view
with three features (Float64, Int64, String) over a parquet file with one row per entity, our ASOF
DuckDB offline store, a SQLite online store. Each side runs `FeatureStore.materialize` over the
whole range in a process of its own (time, and peak RSS of that process), into its own online
store; then the two SQLite files are compared row for row.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ENGINES = {"ours": "featureloop.feast_engine.FastComputeEngine", "feast": "local"}


def _store(folder: Path, engine: str) -> object:
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource
    from feast.repo_config import RepoConfig
    from feast.types import Float64, Int64, String
    from feast.value_type import ValueType

    config = RepoConfig(
        project="bench",
        provider="local",
        registry=str(folder / f"registry-{engine}.db"),
        online_store={"type": "sqlite", "path": str(folder / f"online-{engine}.db")},
        offline_store={"type": "featureloop.feast_offline.AsofDuckDBOfflineStore"},
        batch_engine={"type": ENGINES[engine]},
        entity_key_serialization_version=3,
        materialization={"pull_latest_features": True, "online_write_batch_size": 10_000},
    )
    store = FeatureStore(config=config)
    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)
    source = FileSource(path=str(folder / "features.parquet"), timestamp_field="event_timestamp")
    view = FeatureView(
        name="customer_stats",
        entities=[customer],
        schema=[Field(name="balance", dtype=Float64), Field(name="orders", dtype=Int64),
                Field(name="segment", dtype=String)],
        source=source,
        online=True,
    )  # fmt: skip
    store.apply([customer, view])
    return store


def _data(folder: Path, entities: int) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i:07d}" for i in range(entities)],
            "balance": rng.normal(100, 30, entities),
            "orders": rng.integers(0, 500, entities),
            "segment": rng.choice(["gold", "silver", "bronze", "new"], entities),
            "event_timestamp": pd.Timestamp("2024-01-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 86_400 * 30, entities), unit="s"),
        }
    )
    frame.loc[frame.index[::50], "balance"] = np.nan
    frame.to_parquet(folder / "features.parquet", index=False)


def _worker(folder: Path, engine: str) -> dict[str, float]:
    store = _store(folder, engine)
    start = time.perf_counter()
    store.materialize(start_date=datetime(2023, 12, 1, tzinfo=UTC), end_date=datetime(2024, 2, 1, tzinfo=UTC))  # type: ignore[attr-defined]
    return {
        "seconds": time.perf_counter() - start,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _rows(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as con:
        return int(con.execute('SELECT count(*) FROM "bench_customer_stats"').fetchone()[0])


def _same(a: Path, b: Path) -> bool:
    query = 'SELECT entity_key, feature_name, value, value_text, event_ts, created_ts FROM "bench_customer_stats" ORDER BY 1, 2'
    with contextlib.closing(sqlite3.connect(a)) as x, contextlib.closing(sqlite3.connect(b)) as y:
        cx, cy = x.execute(query), y.execute(query)
        while True:
            rx, ry = cx.fetchmany(100_000), cy.fetchmany(100_000)
            if rx != ry:
                return False
            if not rx:
                return True


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument("--worker", choices=["data", *ENGINES])
    parser.add_argument("--folder")
    parser.add_argument("--skip-feast", action="store_true", help="only ours (Feast's engine takes minutes)")
    args = parser.parse_args()
    if args.worker == "data":
        _data(Path(args.folder), args.entities)
        return
    if args.worker:
        print(json.dumps(_worker(Path(args.folder), args.worker)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        run = [sys.executable, __file__, "--folder", tmp, "--entities", str(args.entities)]
        subprocess.run([*run, "--worker", "data"], check=True, timeout=1800)
        print(f"{args.entities:,} entities x 3 features (Float64, Int64, String) into SQLite")
        for engine in ENGINES if not args.skip_feast else ["ours"]:
            out = subprocess.run(
                [*run, "--worker", engine], capture_output=True, text=True, check=True, timeout=3600
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            rows = _rows(folder / f"online-{engine}.db")
            print(f"{engine:<6} {result['seconds']:8.2f} s  peak {result['peak_mb']:6.0f} MB  "
                  f"{args.entities / result['seconds']:10,.0f} entities/s  {rows:,} rows", flush=True)  # fmt: skip
        if not args.skip_feast:
            same = _same(folder / "online-ours.db", folder / "online-feast.db")
            print(f"online stores identical row for row: {same}")


if __name__ == "__main__":
    main()
