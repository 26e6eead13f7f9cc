"""Current-window profiles in the reference's bins, computed by DuckDB, and merged across partitions.

A drift run never reloads the training set: the reference profile (stored with the model) fixes the
bins, and the current window is counted into the same bins by one DuckDB aggregate over the
prediction log's parquet files (streaming, bounded memory). Profiles of partitions merge by adding
counts, so the same code covers data that no single read holds.
"""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np

from featureloop.sql import quote_identifier, session

SAMPLE_SIZE = 100_000


def _bucket_sql(column: str, inner_edges: list[float]) -> str:
    """The reference bin of a value, as np.histogram assigns it with open outer bins; -1 when missing."""
    col = quote_identifier(column)
    cases = " ".join(f"WHEN {col} < {edge!r} THEN {i}" for i, edge in enumerate(inner_edges))
    return f"CASE WHEN {col} IS NULL OR isnan({col}::DOUBLE) THEN -1 {cases} ELSE {len(inner_edges)} END"


def current_profile(
    relation: str,
    reference: dict[str, Any],
    *,
    con: duckdb.DuckDBPyConnection | None = None,
    sample_size: int = SAMPLE_SIZE,
) -> dict[str, Any]:
    """Count a relation (a table name or `read_parquet(...)`) into the reference profile's bins.

    Numeric features: counts per reference bin, missing count, sum and sum of squares (mergeable
    moments) and, under `sample`, a sorted numpy array of at most `sample_size` finite values (a seeded
    reservoir sample: all of them in windows that small) for KS and Wasserstein; it is not JSON and
    reports drop it. Categorical: counts of every value seen (unseen ones included), missing count.
    A feature the reference has but the relation lacks is listed under `absent`.
    """
    con = con or session()
    columns = {row[0] for row in con.sql(f"DESCRIBE SELECT * FROM {relation}").fetchall()}
    present = {n: ref for n, ref in reference["features"].items() if n in columns}
    absent = sorted(set(reference["features"]) - set(present))
    # One scan for every feature's counts and moments, one for the sample (not one per feature:
    # a window spread over hundreds of log files is then listed and read twice, not 150 times).
    aggregates = ["count(*)"]
    for name, ref in present.items():
        col = quote_identifier(name)
        if ref["kind"] == "numeric":
            finite = f"CASE WHEN NOT isnan({col}::DOUBLE) THEN {col}::DOUBLE END"
            aggregates += [
                f"histogram({_bucket_sql(name, list(ref['edges'][1:-1]))})",
                f"sum({finite})",
                f"sum({finite} * {finite})",
            ]
        else:
            aggregates += [f"histogram({col}::VARCHAR)", f"count(*) - count({col})"]
    values = list(con.execute(f"SELECT {', '.join(aggregates)} FROM {relation}").fetchall()[0])
    rows = int(values.pop(0))
    numeric = [n for n, ref in present.items() if ref["kind"] == "numeric"]
    samples: dict[str, np.ndarray] = {}
    if numeric:
        picked = ", ".join(f"{quote_identifier(n)}::DOUBLE AS {quote_identifier(n)}" for n in numeric)
        drawn = con.execute(
            f"SELECT {picked} FROM {relation} USING SAMPLE reservoir({int(sample_size)} ROWS) REPEATABLE (7)"
        ).fetchnumpy()
        for name in numeric:
            # fetchnumpy returns masked arrays for columns with NULLs: NULL must not read as a value.
            column = np.ma.filled(np.ma.asarray(drawn[name]).astype(float), np.nan)
            samples[name] = np.sort(column[np.isfinite(column)])
    features: dict[str, Any] = {}
    for name, ref in present.items():
        if ref["kind"] == "numeric":
            buckets, total, squares = values.pop(0), values.pop(0), values.pop(0)
            counts = [0] * (len(ref["edges"][1:-1]) + 1)
            for b, n in (buckets or {}).items():
                if b >= 0:
                    counts[int(b)] = int(n)
            features[name] = {
                "kind": "numeric", "n": rows, "missing": int((buckets or {}).get(-1, 0)), "counts": counts,
                "sum": float(total or 0.0), "sum_sq": float(squares or 0.0), "sample": samples[name],
            }  # fmt: skip
        else:
            histogram, missing = values.pop(0), values.pop(0)
            features[name] = {
                "kind": "categorical", "n": rows, "missing": int(missing),
                "counts": {str(v): int(n) for v, n in sorted((histogram or {}).items())},
            }  # fmt: skip
    return {"rows": rows, "features": features, "absent": absent}


def merge_profiles(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The profile of the union of two partitions' rows (counts and moments add)."""
    features: dict[str, Any] = {}
    for name in sorted(set(a["features"]) | set(b["features"])):
        fa, fb = a["features"].get(name), b["features"].get(name)
        if fa is None or fb is None:
            features[name] = fa or fb
            continue
        merged = {"kind": fa["kind"], "n": fa["n"] + fb["n"], "missing": fa["missing"] + fb["missing"]}
        if fa["kind"] == "numeric":
            merged["counts"] = [x + y for x, y in zip(fa["counts"], fb["counts"], strict=True)]
            merged["sum"], merged["sum_sq"] = fa["sum"] + fb["sum"], fa["sum_sq"] + fb["sum_sq"]
            merged["sample"] = _merge_samples(fa, fb)
        else:
            keys = sorted(set(fa["counts"]) | set(fb["counts"]))
            merged["counts"] = {k: fa["counts"].get(k, 0) + fb["counts"].get(k, 0) for k in keys}
        features[name] = merged
    absent = sorted(set(a.get("absent", [])) & set(b.get("absent", [])))
    return {"rows": a["rows"] + b["rows"], "features": features, "absent": absent}


def _merge_samples(a: dict[str, Any], b: dict[str, Any], size: int = SAMPLE_SIZE) -> np.ndarray:
    """A sample of the union: both samples when they fit, else each side's share of `size` in
    proportion to its finite values (seeded), so the merged sample stays representative."""
    sa, sb = np.asarray(a.get("sample", []), dtype=float), np.asarray(b.get("sample", []), dtype=float)
    if len(sa) + len(sb) <= size:
        return np.sort(np.concatenate([sa, sb]))
    na, nb = a["n"] - a["missing"], b["n"] - b["missing"]
    take_a = min(len(sa), round(size * na / max(na + nb, 1)))
    take_b = min(len(sb), size - take_a)
    rng = np.random.default_rng(7)
    return np.sort(
        np.concatenate([rng.choice(sa, take_a, replace=False), rng.choice(sb, take_b, replace=False)])
    )
