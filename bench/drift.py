"""Benchmark: drift statistics on 1,000,000 rows x 25 columns, ours beside Evidently's DataDriftPreset.

Usage:
    uv sync --group dev --group bench        # Evidently is a benchmark-only dependency
    .venv/bin/python bench/drift.py [--rows 1000000]

Reference and current windows: 20 numeric columns (5 of them shifted in the current window) and
5 categorical columns (10 values, one of them re-weighted), seeded. Each side runs in its own
process (time and peak RSS of that process). Ours: the current window is read from parquet (as the
prediction log is) and profiled by DuckDB into the reference profile's bins in one scan, plus a
100,000-row reservoir sample; then per column the chi-square test, PSI and Jensen-Shannon on the
bins, KS and normalised Wasserstein on the samples (the reference's: 2,000 values sorted at training),
unseen and missing shares. The reference profile is made once at training and reported apart.
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


def _reference(folder: Path) -> dict[str, object]:
    """Training time, once per model: the reference profile (bins, counts, a sorted sample)."""
    from featureloop.monitoring.profiles import build_profile

    reference = pd.read_parquet(folder / "reference.parquet")
    start = time.perf_counter()
    profile = build_profile(reference, NUMERIC, CATEGORICAL)
    seconds = time.perf_counter() - start
    (folder / "profile.json").write_text(json.dumps(profile))
    return {"seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _ours(folder: Path) -> dict[str, object]:
    """A drift run: the stored profile against the window, in a process of its own (as the flow's)."""
    import duckdb

    from featureloop.monitoring.current import current_profile
    from featureloop.monitoring.drift import feature_drift
    from featureloop.monitoring.thresholds import DriftConfig

    start = time.perf_counter()
    profile = json.loads((folder / "profile.json").read_text())
    con = duckdb.connect()
    current = current_profile(f"read_parquet('{folder / 'current.parquet'}')", profile, con=con)
    config = DriftConfig()
    results = {
        name: feature_drift(name, profile["features"][name], cur, config)
        for name, cur in current["features"].items()
    }
    # Every statistic per column: chi-square, PSI, Jensen-Shannon, KS and Wasserstein (reference sample
    # against a 100,000-row reservoir sample of the window), unseen and missing shares.
    assert all(r.ks_p_value is not None for name, r in results.items() if name in NUMERIC)
    seconds = time.perf_counter() - start
    drifted = sorted(name for name, r in results.items() if r.drifted)
    return {
        "seconds": seconds,
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
    parser.add_argument("--worker", choices=["data", "reference", "ours", "evidently"])
    parser.add_argument("--folder")
    args = parser.parse_args()
    if args.worker == "data":
        # In a process of its own: Linux keeps a process's peak RSS across exec, so a parent that held
        # the frames would lend its peak to every worker it starts.
        _window(args.rows, 1, drift=False).to_parquet(Path(args.folder) / "reference.parquet")
        _window(args.rows, 2, drift=True).to_parquet(Path(args.folder) / "current.parquet")
        return
    if args.worker:
        work = {"reference": _reference, "ours": _ours, "evidently": _evidently}[args.worker]
        print(json.dumps(work(Path(args.folder))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        subprocess.run(
            [sys.executable, __file__, "--worker", "data", "--folder", str(folder), "--rows", str(args.rows)],
            check=True, timeout=1800,
        )  # fmt: skip
        print(
            f"{args.rows:,} rows x 25 columns per window (20 numeric, 5 categorical); drift in n0-n4 and c0"
        )
        for side in ("reference", "ours", "evidently"):
            out = subprocess.run(
                [sys.executable, __file__, "--worker", side, "--folder", str(folder)],
                capture_output=True, text=True, check=True, timeout=1800,
            ).stdout.strip().splitlines()[-1]  # fmt: skip
            result = json.loads(out)
            label = {"reference": "ours: reference profile (once, at training)", "ours": "ours: drift run",
                     "evidently": "Evidently DataDriftPreset"}[side]  # fmt: skip
            print(f"{label:<44} {result['seconds']:8.2f} s  peak {result['peak_mb']:6.0f} MB")
            if "drifted" in result:
                print(f"{'':<44} drifted: {', '.join(result['drifted'])}", flush=True)


if __name__ == "__main__":
    main()
