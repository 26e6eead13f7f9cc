"""Benchmark: materialising 1,000,000 entities into SQLite, our engine beside Feast's local engine.

Usage:
    .venv/bin/python bench/materialize.py [--entities 1000000] [--redis]

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
import os
import resource
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.integration import materialize_repo  # noqa: E402  (the repository the engine tests use)

ENGINES = {"ours": "featureloop.featurestore.engine.FastComputeEngine", "feast": "local", "ray": "ray.engine"}


REDIS_DB = {"ours": 1, "feast": 2, "ray": 3}


def _store(folder: Path, engine: str, redis: str | None) -> Any:
    online = {"type": "redis", "connection_string": f"{redis},db={REDIS_DB[engine]}"} if redis else None
    config: dict[str, Any] = {"type": ENGINES[engine]}
    if engine == "ray":  # Feast's Ray compute engine on the cluster RAY_ADDRESS names (`ray start --head`)
        config["ray_address"] = os.environ["RAY_ADDRESS"]
    return materialize_repo.store(folder, f"online-{engine}.db", config, online)


def _worker(folder: Path, engine: str, redis: str | None) -> dict[str, float]:
    store = _store(folder, engine, redis)
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
    parser.add_argument(
        "--ray", action="store_true", help="also Feast's Ray compute engine (RAY_ADDRESS: a cluster's head)"
    )
    parser.add_argument(
        "--redis", action="store_true", help="into Redis (Debian's redis-server, started here)"
    )
    parser.add_argument("--redis-address", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "data":
        materialize_repo.write_data(Path(args.folder), args.entities)
        return
    if args.worker:
        print(json.dumps(_worker(Path(args.folder), args.worker, args.redis_address)))
        return
    with tempfile.TemporaryDirectory() as tmp, _redis(args.redis) as redis:
        folder = Path(tmp)
        run = [sys.executable, __file__, "--folder", tmp, "--entities", str(args.entities)]
        subprocess.run([*run, "--worker", "data"], check=True, timeout=1800)
        if redis:
            run += ["--redis-address", redis]
        target = "Redis" if redis else "SQLite"
        print(f"{args.entities:,} entities x 3 features (Float64, Int64, String) into {target}")
        engines = ["ours", *([] if args.skip_feast else ["feast"]), *(["ray"] if args.ray else [])]
        for engine in engines:
            out = subprocess.run(
                [*run, "--worker", engine], capture_output=True, text=True, check=True, timeout=3600
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            size = _redis_size(redis, REDIS_DB[engine]) if redis else _rows(folder / f"online-{engine}.db")
            print(f"{engine:<6} {result['seconds']:8.2f} s  peak {result['peak_mb']:6.0f} MB  "
                  f"{args.entities / result['seconds']:10,.0f} entities/s  {size:,} {'keys' if redis else 'rows'}",
                  flush=True)  # fmt: skip
        if not args.skip_feast:
            same = (
                _redis_same(redis) if redis else _same(folder / "online-ours.db", folder / "online-feast.db")
            )
            print(f"online stores identical: {same}")
        if args.ray and not redis:
            print(
                f"ray's online store identical to ours: {_same(folder / 'online-ours.db', folder / 'online-ray.db')}"
            )


@contextlib.contextmanager
def _redis(wanted: bool) -> Iterator[str | None]:
    if not wanted:
        yield None
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _client(address: str, db: int) -> Any:
    import redis

    host, port = address.split(":")
    return redis.Redis(host=host, port=int(port), db=db)


def _redis_size(address: str, db: int) -> int:
    return int(_client(address, db).dbsize())


def _redis_same(address: str) -> bool:
    ours, theirs = _client(address, REDIS_DB["ours"]), _client(address, REDIS_DB["feast"])
    keys = list(ours.scan_iter(count=10_000))
    if len(keys) != theirs.dbsize():
        return False
    for start in range(0, len(keys), 10_000):
        chunk = keys[start : start + 10_000]
        a, b = ours.pipeline(transaction=False), theirs.pipeline(transaction=False)
        for key in chunk:
            a.hgetall(key)
            b.hgetall(key)
        if a.execute() != b.execute():
            return False
    return True


if __name__ == "__main__":
    main()
