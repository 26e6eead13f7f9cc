"""Online features for the rows of a request, with each value's status (present, missing, stale).

A `ServiceReader` is built once per feature service. It reads each feature view once per distinct
entity of the batch, skipping the generic request bookkeeping of `get_online_features`, through
`serving.online_store` (SQLite: one query per view on Feast's own connection; Redis: one pipeline for
all views), and decodes the stored values straight to Python (`featureloop.featurestore.codec`).
Values, statuses and TTL handling are tested equal to `FeatureStore.get_online_features`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from featureloop.featurestore.codec import decode_value
from serving.online_layout import ViewTable
from serving.online_store import OnlineTables
from serving.sqlite_store import SqliteStoreFile

if TYPE_CHECKING:
    from feast import FeatureStore

PRESENT, MISSING, STALE = "present", "missing", "stale"
DUMMY_ENTITY_ID, DUMMY_ENTITY_VALUE = "__dummy_id", ""  # feast.feature_view's, for entity-less views


@dataclass(frozen=True)
class ServedFeatures:
    """Feature values by column (stale ones blanked, as in training) and, per row, the names of the
    features that were missing or stale (a feature named in neither was present)."""

    columns: dict[str, list[Any]]
    missing: list[list[str]]
    stale: list[list[str]]

    @property
    def values(self) -> pd.DataFrame:
        return pd.DataFrame(self.columns)

    @property
    def status(self) -> pd.DataFrame:
        """The status of every value (present, missing, stale) as a frame shaped like `values`."""
        rows = []
        for missing, stale in zip(self.missing, self.stale, strict=True):
            row = dict.fromkeys(self.columns, PRESENT)
            row.update(dict.fromkeys(missing, MISSING))
            row.update(dict.fromkeys(stale, STALE))
            rows.append(row)
        return pd.DataFrame(rows, columns=list(self.columns))

    def status_counts(self) -> dict[str, int]:
        missing = sum(len(names) for names in self.missing)
        stale = sum(len(names) for names in self.stale)
        return {
            PRESENT: len(self.missing) * len(self.columns) - missing - stale,
            MISSING: missing,
            STALE: stale,
        }


class ServiceReader:
    """Reads a feature service's online values for a batch of entity rows."""

    def __init__(
        self,
        store: FeatureStore,
        service: str,
        sqlite_file: SqliteStoreFile | None = None,
        *,
        cache_entries: int = 0,
    ) -> None:
        self.service = service
        self._tables = OnlineTables(store, sqlite_file, cache_entries=cache_entries)
        self._views: list[
            tuple[ViewTable, timedelta | None, Callable[[dict[str, Any]], tuple[Any, ...]]]
        ] = []
        for projection in store.get_feature_service(service).feature_view_projections:
            view = store.get_feature_view(projection.name)
            table = self._tables.table(view, [f.name for f in projection.features], projection.join_key_map)
            ttl = view.ttl if view.ttl and view.ttl > timedelta(0) else None
            self._views.append((table, ttl, _key_getter(table.join_keys)))
        self.feature_names = [name for table, _, _ in self._views for name in table.features]
        self._decoded: dict[bytes, Any] = {}  # stored bytes -> value (a pure function: never stale)
        # Per view, entity -> (the store's answer, its decoding): reused while the store hands back
        # the same answer object (its cache), so a cached entity is not decoded again.
        self._entities: list[dict[tuple[Any, ...], tuple[Any, Any]]] = [{} for _ in self._views]

    @property
    def tables(self) -> OnlineTables:
        return self._tables

    def read(self, entity_rows: list[dict[str, Any]], times: list[datetime]) -> ServedFeatures:
        """Values and statuses for each row; a value older than its view's TTL at the row's time is stale."""
        values: dict[str, list[Any]] = {}
        missing: list[list[str]] = [[] for _ in entity_rows]
        stale: list[list[str]] = [[] for _ in entity_rows]
        keys_by_view = [[key_of(row) for row in entity_rows] for _, _, key_of in self._views]
        # Each distinct entity is read once (a batch often repeats the same keys), all views at once.
        distinct = [list(dict.fromkeys(keys)) for keys in keys_by_view]
        found_by_view = self._tables.read(
            [(t, d) for (t, _, _), d in zip(self._views, distinct, strict=True)]
        )
        if len(self._decoded) > 200_000:
            self._decoded = {}
        cache = self._decoded
        keep = self._tables.cache_entries > 0  # answers are kept: keep their decodings too
        for v, ((table, ttl, _), keys, unique, found) in enumerate(
            zip(self._views, keys_by_view, distinct, found_by_view, strict=True)
        ):
            features = table.features
            nothing = (None,) * len(features)
            entities = self._entities[v]
            if len(entities) > self._tables.cache_entries:
                entities = self._entities[v] = {}
            # Decode each distinct entity once, and split its features into missing (no value) and present once.
            decoded: dict[tuple[Any, ...], tuple[datetime | None, tuple[Any, ...], list[str], list[str]]] = {}
            for key, answer in zip(unique, found, strict=True):
                earlier = entities.get(key)
                if earlier is not None and earlier[0] is answer:
                    decoded[key] = earlier[1]
                    continue
                stamp, stored = answer
                if not stored:
                    decoded[key] = (stamp, nothing, features, [])
                    continue
                row: list[Any] = []
                for name in features:
                    raw = stored.get(name)
                    if raw is None:
                        row.append(None)
                        continue
                    value = cache.get(raw, cache)
                    if value is cache:
                        value = cache[raw] = decode_value(raw)
                    row.append(value)
                absent = [name for name, x in zip(features, row, strict=True) if x is None]
                present = (
                    [name for name, x in zip(features, row, strict=True) if x is not None] if ttl else []
                )
                decoded[key] = (stamp, tuple(row), absent, present)
                if keep:
                    entities[key] = (answer, decoded[key])
            served: list[tuple[Any, ...]] = []
            for i, key in enumerate(keys):
                stamp, row_values, absent, present = decoded[key]
                if absent:
                    missing[i].extend(absent)
                if ttl is not None and stamp is not None and present and stamp + ttl < times[i]:
                    stale[i].extend(present)
                    served.append(nothing)
                else:
                    served.append(row_values)
            for name, column in zip(features, zip(*served, strict=True), strict=True):
                values[name] = list(column)
        return ServedFeatures(columns=values, missing=missing, stale=stale)


def _key_getter(join_keys: list[str]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """A row's join-key values as a tuple (None for a key the row lacks); an entity-less
    (system-wide) view's one key is Feast's dummy entity, the same for every row."""
    if join_keys == [DUMMY_ENTITY_ID]:
        return lambda _row: (DUMMY_ENTITY_VALUE,)
    if len(join_keys) == 1:
        (name,) = join_keys
        return lambda row: (row.get(name),)
    return lambda row: tuple(row.get(k) for k in join_keys)
