"""Online/offline skew: do the online store's values equal what the offline store says they should be?

For each feature view of a service, a seeded sample of entities is drawn from the offline source;
for each, the value Feast's materialisation should have written is computed with DuckDB (the latest
row inside the view's materialised intervals, ties broken as Feast does) and compared with what the
online store holds (read through the provider, as serving reads it). Every mismatch is counted per
feature and the first few are shown, so a broken load, a partial write or a hand-edited store is
found rather than served.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import duckdb

from featureloop.featurestore.dummy import key_select, real_keys
from featureloop.sql import quote_identifier, quote_literal, session

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

EXAMPLES = 3


def _same(offline: Any, online: Any) -> bool:
    if offline is None or (isinstance(offline, float) and math.isnan(offline)):
        return online is None or (isinstance(online, float) and math.isnan(online))
    if online is None:
        return False
    if isinstance(offline, int | float) and isinstance(online, int | float):
        return math.isclose(float(offline), float(online), rel_tol=1e-9, abs_tol=1e-9)
    return bool(offline == online)


def _expected_rows(
    view: FeatureView,
    keys: list[str],
    features: list[str],
    sample: int,
    seed: int,
    con: duckdb.DuckDBPyConnection,
) -> list[dict[str, Any]]:
    """The latest offline row per sampled entity inside the materialised intervals."""
    source: Any = view.batch_source  # a FileSource: the repo's views read parquet files
    ts = quote_identifier(source.timestamp_field)
    created = source.created_timestamp_column
    order = f"{ts} DESC" + (f", {quote_identifier(created)} DESC" if created else "")
    inside = " OR ".join(
        f"({ts} >= {quote_literal(_utc(s).isoformat())}::TIMESTAMPTZ AND {ts} <= {quote_literal(_utc(e).isoformat())}::TIMESTAMPTZ)"
        for s, e in view.materialization_intervals
    )
    key_list = ", ".join(quote_identifier(k) for k in real_keys(keys))
    columns = ", ".join([*(key_select(k) for k in keys), *(quote_identifier(c) for c in features)])
    partition = f"PARTITION BY {key_list} " if key_list else ""
    latest = (
        f"SELECT {columns}, {ts} AS __ts, row_number() OVER ({partition}ORDER BY {order}) AS __rank "
        f"FROM read_parquet({quote_literal(str(source.path))}) WHERE {inside}"
    )
    # The sample is drawn after the filter (USING SAMPLE applies to the FROM clause, before WHERE).
    query = (
        f"SELECT * FROM (SELECT * EXCLUDE (__rank) FROM ({latest}) WHERE __rank = 1) "
        f"USING SAMPLE reservoir({int(sample)} ROWS) REPEATABLE ({int(seed)})"
    )
    frame = con.execute(query).df()
    records: list[dict[str, Any]] = frame.astype(object).where(frame.notna(), None).to_dict("records")  # type: ignore[assignment]
    return records


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def check_view(
    store: FeatureStore, view_name: str, features: list[str], *, sample: int = 200, seed: int = 0
) -> dict[str, Any]:
    """Online against offline for a sample of one view's entities: mismatches per feature."""
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values

    view = store.get_feature_view(view_name)
    if not view.materialization_intervals:
        return {"view": view_name, "checked": 0, "note": "never materialised: nothing online to compare"}
    entity_columns = sorted(view.entity_columns, key=lambda c: c.name)
    keys = [c.name for c in entity_columns]
    value_types = [c.dtype.to_value_type() for c in entity_columns]
    with session() as con:
        expected = _expected_rows(view, keys, features, sample, seed, con)
    protos = [
        EntityKey(
            join_keys=keys,
            entity_values=[
                python_values_to_proto_values([row[k]], t)[0] for k, t in zip(keys, value_types, strict=True)
            ],
        )
        for row in expected
    ]
    read = store._get_provider().online_read(  # a copy of the names: Feast's Redis store appends to it
        config=store.config, table=view, entity_keys=protos, requested_features=list(features)
    )
    mismatches = {name: 0 for name in features}
    examples: list[dict[str, Any]] = []
    absent = stale_timestamp = 0
    for row, (stamp, values) in zip(expected, read, strict=True):
        entity = {k: row[k] for k in keys}
        if values is None:
            absent += 1
        elif stamp is not None and _utc(stamp) != _utc(row["__ts"].to_pydatetime()):
            stale_timestamp += 1
        for name in features:
            online = feast_value_type_to_python_type(values[name]) if values and name in values else None
            if not _same(row[name], online):
                mismatches[name] += 1
                if len(examples) < EXAMPLES:
                    examples.append(
                        {"entity": entity, "feature": name, "offline": row[name], "online": online}
                    )
    checked = len(expected)
    return {
        "view": view_name,
        "checked": checked,
        "materialised_until": max(_utc(e) for _, e in view.materialization_intervals).isoformat(),
        "absent_online": absent,
        "timestamp_mismatches": stale_timestamp,
        "features": {
            name: {"mismatches": n, "rate": n / checked if checked else 0.0} for name, n in mismatches.items()
        },
        "examples": examples,
    }


def check_service(store: FeatureStore, service: str, *, sample: int = 200, seed: int = 0) -> dict[str, Any]:
    """Skew of every view of a feature service; `mismatches` totals what any view found."""
    views = [
        check_view(store, p.name, [f.name for f in p.features], sample=sample, seed=seed)
        for p in store.get_feature_service(service).feature_view_projections
    ]
    total = sum(f["mismatches"] for v in views for f in v.get("features", {}).values())
    checked = sum(v.get("checked", 0) for v in views)
    return {"service": service, "views": views, "checked": checked, "mismatches": total, "skewed": total > 0}
