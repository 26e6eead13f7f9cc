"""Benchmark: materialising 1,000,000 entities into SQLite, our engine beside Feast's local engine.

Usage:
    .venv/bin/python bench/materialize.py [--entities 1000000]

A Feast repository of its own in a temporary folder (the one the engine tests use,
tests/integration/materialize_repo.py): one entity (a string id), one feature view with three
features (Float64, Int64, String) over a parquet file with one row per entity, our ASOF DuckDB
offline store, a SQLite online store. Each side runs `FeatureStore.materialize` over the
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.integration import materialize_repo  # noqa: E402  (the repository the engine tests use)

ENGINES = {"ours": "featureloop.feast_engine.FastComputeEngine", "feast": "local"}


def _store(folder: Path, engine: str) -> Any:
    return materialize_repo.store(folder, f"online-{engine}.db", {"type": ENGINES[engine]})


def _worker(folder: Path, engine: str) -> dict[str, float]:
    store = _store(folder, engine)
    start = time.perf_counter()
    store.materialize(start_date=materialize_repo.START, end_date=materialize_repo.END)
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
        materialize_repo.write_data(Path(args.folder), args.entities)
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
