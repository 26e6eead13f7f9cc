"""Benchmark: the online feed of a replay, hour by hour: many small materialisations in a row.

Usage:
    .venv/bin/python bench/materialize_windows.py [--hours 48] [--engine ours|feast|both]

The worked example's feature repository (its six views) over synthetic flights (24 days, 16 flights
an hour, 30 aircraft), loaded as of a start, then `hours` one-hour windows one after another, each
through `materialize_window` (all views; what `featureloop backtest`'s feed and the integration
test of the loop do). Each engine runs in a process of its own, into its own SQLite file: ours
(featureloop's compute engine) and Feast's own `local` engine, the anchor. Prints ms per window.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2013, 1, 15, 5, tzinfo=UTC)


def run_one(engine: str, hours: int) -> dict[str, float]:
    """In this process: prepare, apply, load as of START, then time `hours` one-hour windows."""
    sys.path.insert(0, str(ROOT))
    from data.prepare import prepare_dataset
    from data.synthetic import SyntheticSpec, generate, write_raw
    from featureloop.featurestore.materialization import materialize_window
    from featureloop.featurestore.store import apply_repo, open_store
    from featureloop.settings import Settings

    root = Path(tempfile.mkdtemp(prefix="featureloop-matwin-"))
    raw = write_raw(
        generate(SyntheticSpec(days=24, flights_per_hour=16, n_aircraft=30, seed=21)), root / "raw"
    )
    settings = Settings(data_dir=root / "data", raw_dir=raw)
    prepare_dataset(raw, settings.versions_dir, settings.offline_dir)
    apply_repo(settings)
    store = open_store(settings, batch_engine=None if engine == "ours" else "local")
    materialize_window(store, START)
    step = timedelta(hours=1)
    began = time.perf_counter()
    for i in range(hours):
        end = START + (i + 1) * step
        materialize_window(store, end, start=end - step)
    seconds = time.perf_counter() - began
    return {"windows": hours, "seconds": round(seconds, 2), "ms_per_window": round(1000 * seconds / hours, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=48)
    parser.add_argument("--engine", choices=["ours", "feast", "both"], default="both")
    parser.add_argument("--json", action="store_true", help="(internal) run one engine, print JSON")
    args = parser.parse_args()
    if args.json:
        print(json.dumps(run_one(args.engine, args.hours)))
        return
    engines = ["ours", "feast"] if args.engine == "both" else [args.engine]
    print(f"{args.hours} one-hour windows of the worked example's six views, one after another")
    for engine in engines:
        done = subprocess.run(
            [sys.executable, __file__, "--engine", engine, "--hours", str(args.hours), "--json"],
            capture_output=True, text=True, check=True, cwd=ROOT,
        )  # fmt: skip
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"{engine:<6} {result['ms_per_window']:>7.1f} ms a window  ({result['seconds']:.2f} s for {result['windows']})"
        )


if __name__ == "__main__":
    main()
