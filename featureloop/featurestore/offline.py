"""A DuckDB offline store whose point-in-time join is a DuckDB `ASOF` join.

Feast's DuckDB store joins every entity row to every feature row of the same key within the TTL,
then keeps the latest: its cost grows with entity rows x feature rows per key. An `ASOF` join finds
the latest feature row at or before each entity row directly. The semantics are Feast's:
- the latest row with `event_timestamp <= entity time` (ties on the event time: the latest
  `created_timestamp`), per join key;
- null when that row is older than `entity time - ttl` (TTL 0: no limit);
- every entity row kept, with nulls where nothing matches.
Plugged in through `feature_store.yaml` (`offline_store: type: featureloop.featurestore.offline.AsofDuckDBOfflineStore`)
so `get_historical_features`, `feast` and our flows all use it. Whatever it does not cover (SQL entity
frames, on-demand views, non-parquet sources, `filter_by_created_timestamp`) goes to Feast's own path.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from feast.data_format import ParquetFormat
from feast.feature_view import FeatureView
from feast.infra.offline_stores.duckdb import DuckDBOfflineStore, DuckDBOfflineStoreConfig
from feast.infra.offline_stores.file_source import FileSource, SavedDatasetFileStorage
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata
from feast.infra.offline_stores.offline_utils import infer_event_timestamp_from_entity_df
from feast.infra.registry.base_registry import BaseRegistry
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.repo_config import RepoConfig
from feast.saved_dataset import SavedDatasetStorage

from featureloop.sql import quote_identifier, quote_literal, session

ROW_ID = "__featureloop_row"


class AsofDuckDBOfflineStoreConfig(DuckDBOfflineStoreConfig):
    """Same options as Feast's DuckDB offline store."""

    type: str = "featureloop.featurestore.offline.AsofDuckDBOfflineStore"


class ArrowRetrievalJob(RetrievalJob):
    """A retrieval whose result is computed once, on first use, as an Arrow table."""

    def __init__(self, compute: Any, full_feature_names: bool, metadata: RetrievalMetadata | None) -> None:
        super().__init__()
        self._compute = compute
        self._table: pa.Table | None = None
        self._full_feature_names = full_feature_names
        self._metadata = metadata

    def _arrow(self) -> pa.Table:
        if self._table is None:
            self._table = self._compute()
        return self._table

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return self._arrow().to_pandas(timestamp_as_object=False)

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        return self._arrow()

    @property
    def full_feature_names(self) -> bool:
        return self._full_feature_names

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        return []

    @property
    def metadata(self) -> RetrievalMetadata | None:
        return self._metadata

    def persist(
        self, storage: SavedDatasetStorage, allow_overwrite: bool = False, timeout: int | None = None
    ) -> None:
        if not isinstance(storage, SavedDatasetFileStorage):
            raise ValueError(f"can only persist to file storage, not {type(storage).__name__}")
        pq.write_table(self._arrow(), storage.file_options.uri)


def _eligible(
    feature_views: list[FeatureView], feature_refs: list[str], entity_df: Any, created_cutoff: bool
) -> bool:
    if not isinstance(entity_df, pd.DataFrame) or created_cutoff:
        return False
    names = {fv.projection.name_to_use() for fv in feature_views}
    if any(ref.split(":")[0] not in names for ref in feature_refs):
        return False  # an on-demand view is requested
    for fv in feature_views:
        source = fv.batch_source
        if not isinstance(source, FileSource) or not (
            isinstance(source.file_format, ParquetFormat)
            or (source.file_format is None and source.path.endswith(".parquet"))
        ):
            return False
        if "://" in source.path:
            return False
    return True


def _view_sql(
    fv: FeatureView,
    feature_refs: list[str],
    full_feature_names: bool,
    timestamp_col: str,
    entity_times: tuple[pd.Timestamp, pd.Timestamp],
) -> tuple[str, list[str]]:
    """SQL for one view: (row id, features) for every entity row, and the output column names.

    Only feature rows that can be some entity row's answer are read: none after the latest entity
    time, none before the earliest minus the TTL (such a row is expired for every entity row, and
    a newer row, if any, is kept): a training window reads its part of a year-long table."""
    source = fv.batch_source
    assert isinstance(source, FileSource)
    prefix = fv.projection.name_to_use()
    base = fv.projection.name_alias or fv.name
    features = [ref.split(":", 1)[1] for ref in feature_refs if ref.split(":", 1)[0] == prefix]
    to_source: dict[str, str] = {
        v: k for k, v in (source.field_mapping or {}).items()
    }  # feature/key name -> source column
    join_map = fv.projection.join_key_map or {e.name: e.name for e in fv.entity_columns}
    ts_field, created = source.timestamp_field or "event_timestamp", source.created_timestamp_column

    def src(name: str) -> str:
        return quote_identifier(to_source.get(name) or name)

    key_cols = [f"{src(k)} AS {quote_identifier('k_' + k)}" for k in join_map]
    feature_cols = [f"{src(f)} AS {quote_identifier('f_' + f)}" for f in features]
    order = f"{quote_identifier(ts_field)} DESC" + (f", {quote_identifier(created)} DESC" if created else "")
    partition = ", ".join([src(k) for k in join_map] + [quote_identifier(ts_field)])
    ttl = fv.ttl or timedelta(0)
    first, last = entity_times
    ts = f"{quote_identifier(ts_field)}::TIMESTAMPTZ"
    # No entity rows: nothing to read.
    window = "FALSE" if pd.isna(last) else f"{ts} <= {quote_literal(last.isoformat())}::TIMESTAMPTZ"
    if ttl > timedelta(0) and not pd.isna(first):
        window += f" AND {ts} >= {quote_literal((first - ttl).isoformat())}::TIMESTAMPTZ"
    table = f"""
        SELECT {", ".join([*key_cols, f"{ts} AS __ts", *feature_cols])}
        FROM read_parquet({quote_literal(source.path)})
        WHERE {window}
        QUALIFY row_number() OVER (PARTITION BY {partition} ORDER BY {order}) = 1
    """
    on = " AND ".join(
        [
            f"e.{quote_identifier(entity_col)} = f.{quote_identifier('k_' + key)}"
            for key, entity_col in join_map.items()
        ]
        + [f"e.{quote_identifier(timestamp_col)} >= f.__ts"]
    )
    alive = (
        f"f.__ts >= e.{quote_identifier(timestamp_col)} - to_microseconds({int(ttl.total_seconds() * 1_000_000)})"
        if ttl > timedelta(0)
        else "f.__ts IS NOT NULL"
    )
    names = [f"{base}__{f}" if full_feature_names else f for f in features]
    selected = [
        f"CASE WHEN {alive} THEN f.{quote_identifier('f_' + f)} END AS {quote_identifier(name)}"
        for f, name in zip(features, names, strict=True)
    ]
    sql = f"SELECT e.{ROW_ID}, {', '.join(selected)} FROM entity AS e ASOF LEFT JOIN ({table}) AS f ON {on}"
    return sql, names


def asof_historical_features(
    feature_views: list[FeatureView],
    feature_refs: list[str],
    entity_df: pd.DataFrame,
    full_feature_names: bool,
) -> pa.Table:
    """Entity rows (in their order) with the point-in-time features of `feature_refs`."""
    entity_schema = dict(zip(entity_df.columns, entity_df.dtypes, strict=True))
    timestamp_col = infer_event_timestamp_from_entity_df(entity_schema)
    entity = entity_df.copy()
    ts = pd.to_datetime(entity[timestamp_col], utc=True)
    entity[timestamp_col] = ts
    entity[ROW_ID] = range(len(entity))
    with session() as con:
        con.register("entity", entity)
        parts, columns = [], []
        for i, fv in enumerate(feature_views):
            sql, names = _view_sql(fv, feature_refs, full_feature_names, timestamp_col, (ts.min(), ts.max()))
            if names:
                parts.append((f"v{i}", sql, names))
                columns += names
        ctes = ", ".join(f"{alias} AS ({sql})" for alias, sql, _ in parts)
        joins = " ".join(f"LEFT JOIN {alias} USING ({ROW_ID})" for alias, _, _ in parts)
        select = ", ".join(
            [f"e.{quote_identifier(c)}" for c in entity_df.columns]
            + [f"{alias}.{quote_identifier(n)}" for alias, _, names in parts for n in names]
        )
        query = (
            f"{'WITH ' + ctes if ctes else ''} SELECT {select} FROM entity AS e {joins} ORDER BY e.{ROW_ID}"
        )
        return con.sql(query).to_arrow_table()


class AsofDuckDBOfflineStore(DuckDBOfflineStore):
    """Feast's DuckDB offline store with an `ASOF` point-in-time join."""

    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str | None,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
    ) -> RetrievalJob:
        if entity_df is None:
            raise ValueError("get_historical_features needs an entity frame or an SQL query of entity rows")
        if not _eligible(feature_views, feature_refs, entity_df, filter_by_created_timestamp):
            return DuckDBOfflineStore.get_historical_features(
                config, feature_views, feature_refs, entity_df, registry, project,
                full_feature_names, filter_by_created_timestamp,
            )  # fmt: skip
        assert isinstance(entity_df, pd.DataFrame)
        entity_schema = dict(zip(entity_df.columns, entity_df.dtypes, strict=True))
        timestamp_col = infer_event_timestamp_from_entity_df(entity_schema)
        ts = pd.to_datetime(entity_df[timestamp_col], utc=True)
        metadata = RetrievalMetadata(
            features=feature_refs,
            keys=[c for c in entity_df.columns if c != timestamp_col],
            min_event_timestamp=ts.min().to_pydatetime() if len(ts) else None,
            max_event_timestamp=ts.max().to_pydatetime() if len(ts) else None,
        )
        return ArrowRetrievalJob(
            lambda: asof_historical_features(feature_views, feature_refs, entity_df, full_feature_names),
            full_feature_names,
            metadata,
        )
