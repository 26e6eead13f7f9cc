"""One drift window: the prediction log's rows in [start, end) against the model's reference profile."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import duckdb

from featureloop.monitoring.current import current_profile
from featureloop.monitoring.drift import dataset_verdict, feature_drift
from featureloop.monitoring.thresholds import DriftConfig
from featureloop.sql import quote_literal


def log_window(log_dir: Path, start: datetime, end: datetime) -> str:
    """A DuckDB relation of the prediction log rows whose prediction time falls in [start, end),
    whichever version answered them (decay keeps the champion's own: `window.champion_rows`)."""
    pattern = quote_literal(str(log_dir / "**" / "*.parquet"))
    return (
        f"(SELECT * FROM read_parquet({pattern}, union_by_name = true) "
        f"WHERE event_timestamp >= {quote_literal(start.isoformat())}::TIMESTAMPTZ "
        f"AND event_timestamp < {quote_literal(end.isoformat())}::TIMESTAMPTZ)"
    )


def histogram(reference: dict[str, Any], current: dict[str, Any], top: int = 20) -> dict[str, Any]:
    """Shares per reference bin (numeric) or per category (the `top` most frequent) for plotting."""
    if reference["kind"] == "numeric":
        inner = list(reference["edges"][1:-1])
        labels = (
            [
                f"< {inner[0]:.4g}",
                *[f"{a:.4g} to {b:.4g}" for a, b in pairwise(inner)],
                f">= {inner[-1]:.4g}",
            ]
            if inner
            else ["all"]
        )
        ref, cur = list(reference["counts"]) or [0], list(current["counts"]) or [0]
    else:
        keys = sorted(set(reference["counts"]) | set(current["counts"]),
                      key=lambda k: -(reference["counts"].get(k, 0) + current["counts"].get(k, 0)))[:top]  # fmt: skip
        labels, ref = keys, [reference["counts"].get(k, 0) for k in keys]
        cur = [current["counts"].get(k, 0) for k in keys]
    ref_total, cur_total = max(sum(ref), 1), max(sum(cur), 1)
    return {
        "labels": labels,
        "reference": [n / ref_total for n in ref],
        "current": [n / cur_total for n in cur],
    }


def compare_window(
    reference: dict[str, Any],
    relation: str,
    config: DriftConfig,
    *,
    weights: dict[str, float] | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> dict[str, Any]:
    """Per-feature results (most drifted first), the dataset verdict, and the features the window lacks."""
    current = current_profile(relation, reference, con=con)
    results = [
        feature_drift(name, reference["features"][name], profile, config)
        for name, profile in current["features"].items()
    ]
    verdict = dataset_verdict(results, current["rows"], config, weights)
    return {
        "rows": current["rows"],
        "histograms": {
            name: histogram(reference["features"][name], profile)
            for name, profile in current["features"].items()
        },
        "verdict": asdict(verdict),
        "features": [asdict(r) for r in sorted(results, key=lambda r: (-r.drifted, -r.psi))],
        "absent": current["absent"],
        "config": config.model_dump(),
    }
