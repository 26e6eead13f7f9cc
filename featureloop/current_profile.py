"""Current-window profiles in the reference's bins, computed by DuckDB, and merged across partitions.

A drift run never reloads the training set: the reference profile (stored with the model) fixes the
bins, and the current window is counted into the same bins by one DuckDB aggregate over the
prediction log's parquet files (streaming, bounded memory). Profiles of partitions merge by adding
counts, so the same code covers data that no single read holds.
"""

from __future__ import annotations

from typing import Any

import duckdb

from featureloop.sql import quote_identifier


def _bucket_sql(column: str, inner_edges: list[float]) -> str:
    """The reference bin of a value, as np.histogram assigns it with open outer bins; -1 when missing."""
    col = quote_identifier(column)
    cases = " ".join(f"WHEN {col} < {edge!r} THEN {i}" for i, edge in enumerate(inner_edges))
    return f"CASE WHEN {col} IS NULL OR isnan({col}::DOUBLE) THEN -1 {cases} ELSE {len(inner_edges)} END"


def current_profile(
    relation: str, reference: dict[str, Any], *, con: duckdb.DuckDBPyConnection | None = None
) -> dict[str, Any]:
    """Count a relation (a table name or `read_parquet(...)`) into the reference profile's bins.

    Numeric features: counts per reference bin, missing count, sum and sum of squares (mergeable
    moments). Categorical: counts of every value seen (unseen ones included), missing count.
    A feature the reference has but the relation lacks is listed under `absent`.
    """
    con = con or duckdb.connect()
    columns = {row[0] for row in con.sql(f"DESCRIBE SELECT * FROM {relation}").fetchall()}
    (rows,) = con.execute(f"SELECT count(*) FROM {relation}").fetchall()[0]
    features: dict[str, Any] = {}
    absent = []
    for name, ref in reference["features"].items():
        if name not in columns:
            absent.append(name)
            continue
        col = quote_identifier(name)
        if ref["kind"] == "numeric":
            inner = list(ref["edges"][1:-1])
            bucket = _bucket_sql(name, inner)
            counts = [0] * (len(inner) + 1)
            missing = 0
            for b, n in con.sql(f"SELECT {bucket} AS b, count(*) FROM {relation} GROUP BY b").fetchall():
                if b < 0:
                    missing = int(n)
                else:
                    counts[int(b)] = int(n)
            total, squares = con.execute(
                f"SELECT sum({col}::DOUBLE), sum({col}::DOUBLE * {col}::DOUBLE) FROM {relation} "
                f"WHERE {col} IS NOT NULL AND NOT isnan({col}::DOUBLE)"
            ).fetchall()[0]
            features[name] = {
                "kind": "numeric", "n": int(rows), "missing": missing, "counts": counts,
                "sum": float(total or 0.0), "sum_sq": float(squares or 0.0),
            }  # fmt: skip
        else:
            values = con.sql(f"SELECT {col}::VARCHAR AS v, count(*) FROM {relation} GROUP BY v").fetchall()
            missing = sum(int(n) for v, n in values if v is None)
            features[name] = {
                "kind": "categorical", "n": int(rows), "missing": missing,
                "counts": {str(v): int(n) for v, n in sorted(values, key=lambda x: str(x[0])) if v is not None},
            }  # fmt: skip
    return {"rows": int(rows), "features": features, "absent": sorted(absent)}


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
        else:
            keys = sorted(set(fa["counts"]) | set(fb["counts"]))
            merged["counts"] = {k: fa["counts"].get(k, 0) + fb["counts"].get(k, 0) for k in keys}
        features[name] = merged
    absent = sorted(set(a.get("absent", [])) & set(b.get("absent", [])))
    return {"rows": a["rows"] + b["rows"], "features": features, "absent": absent}
