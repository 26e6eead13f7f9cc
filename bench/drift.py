"""Benchmark: drift statistics on 1,000,000 rows x 25 columns, ours beside Evidently's DataDriftPreset.

Usage:
    uv sync --group dev --group bench        # Evidently is a benchmark-only dependency
    .venv/bin/python bench/drift.py [--rows 1000000]

Reference and current windows: 20 numeric columns (5 of them shifted in the current window) and
5 categorical columns (10 values, one of them re-weighted), seeded. Each side runs in its own
process (time and peak RSS of that process). Ours: the current window is read from parquet (as the
prediction log is) and profiled by DuckDB into the reference profile's bins, then per column the
chi-square test, PSI and Jensen-Shannon on the bins, plus KS and normalised Wasserstein on the raw
numeric values (from samples sorted once; the reference's at training). The reference profile and
sorted reference columns are computed once at training time and reported apart.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

NUMERIC = [f"n{i}" for i in range(20)]
CATEGORICAL = [f"c{i}" for i in range(5)]


def _window(rows: int, seed: int, drift: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data: dict[str, object] = {}
    for i, name in enumerate(NUMERIC):
        shift = 0.3 if drift and i < 5 else 0.0
        data[name] = rng.normal(i + shift, 1 + i / 10, rows)
    values = np.array([f"v{j}" for j in range(10)])
    for i, name in enumerate(CATEGORICAL):
        p = np.full(10, 0.1)
        if drift and i == 0:
            p = np.array([0.2] + [0.8 / 9] * 9)
        data[name] = rng.choice(values, rows, p=p)
    return pd.DataFrame(data)


def _ours(folder: Path) -> dict[str, object]:
    import duckdb
    import pyarrow.parquet as pq

    from featureloop.current_profile import current_profile
    from featureloop.drift import DriftConfig, feature_drift
    from featureloop.drift_stats import ks_wasserstein_sorted
    from featureloop.profile import build_profile

    reference = pd.read_parquet(folder / "reference.parquet")
    start = time.perf_counter()
    profile = build_profile(reference, NUMERIC, CATEGORICAL)
    # Stored with the profile at training time: each numeric column sorted once, and its std.
    ref_sorted = {name: np.sort(reference[name].to_numpy()) for name in NUMERIC}
    ref_std = {name: float(np.std(ref_sorted[name])) for name in NUMERIC}
    reference_seconds = time.perf_counter() - start
    del reference

    start = time.perf_counter()
    con = duckdb.connect()
    current = current_profile(f"read_parquet('{folder / 'current.parquet'}')", profile, con=con)
    config = DriftConfig()
    results = {
        name: feature_drift(name, profile["features"][name], cur, config)
        for name, cur in current["features"].items()
    }
    raw = pq.read_table(folder / "current.parquet", columns=NUMERIC)
    extra = {}
    for name in NUMERIC:
        cur = np.sort(raw.column(name).to_numpy())
        both = ks_wasserstein_sorted(ref_sorted[name], cur, ref_std=ref_std[name])
        extra[name] = (both.ks.score, both.wasserstein.score)
    seconds = time.perf_counter() - start
    drifted = sorted(name for name, r in results.items() if r.drifted)
    return {
        "seconds": seconds,
        "reference_profile_seconds": reference_seconds,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "drifted": drifted,
    }


def _evidently(folder: Path) -> dict[str, object]:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    reference = pd.read_parquet(folder / "reference.parquet")
    current = pd.read_parquet(folder / "current.parquet")
    start = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(current, reference)
    result = snapshot.dict()
    seconds = time.perf_counter() - start
    drifted = []
    for metric in result["metrics"]:
        if not metric["metric_name"].startswith("ValueDrift"):
            continue
        # Above 1,000 rows Evidently picks distances (normed Wasserstein, Jensen-Shannon): drift at >= threshold.
        threshold = float(metric["metric_name"].split("threshold=")[1].rstrip(")"))
        if float(metric["value"]) >= threshold:
            drifted.append(metric["config"]["column"])
    drifted.sort()
    return {
        "seconds": seconds,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "drifted": drifted,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--worker", choices=["ours", "evidently"])
    parser.add_argument("--folder")
    args = parser.parse_args()
    if args.worker:
        work = _ours if args.worker == "ours" else _evidently
        print(json.dumps(work(Path(args.folder))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _window(args.rows, 1, drift=False).to_parquet(folder / "reference.parquet")
        _window(args.rows, 2, drift=True).to_parquet(folder / "current.parquet")
        print(
            f"{args.rows:,} rows x 25 columns per window (20 numeric, 5 categorical); drift in n0-n4 and c0"
        )
        for side in ("ours", "evidently"):
            out = subprocess.run(
                [sys.executable, __file__, "--worker", side, "--folder", str(folder)],
                capture_output=True, text=True, check=True, timeout=1800,
            ).stdout.strip().splitlines()[-1]  # fmt: skip
            result = json.loads(out)
            extra = (
                f", reference profile (at training) {result['reference_profile_seconds']:.2f} s"
                if "reference_profile_seconds" in result
                else ""
            )
            print(f"{side:<10} {result['seconds']:8.2f} s  peak {result['peak_mb']:6.0f} MB{extra}")
            print(f"{'':<10} drifted: {', '.join(result['drifted'])}", flush=True)


if __name__ == "__main__":
    main()
