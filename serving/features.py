"""Online features for the rows of a request, with each value's status (present, missing, stale).

A `ServiceReader` is built once per feature service. It reads each feature view through the
provider's `online_read` (the call Feast's own `get_online_features` makes), once per distinct
entity of the batch, and skips the generic request bookkeeping around it: for one flight that is
~1 ms instead of ~4 ms here. Values, statuses and TTL handling are tested equal to
`FeatureStore.get_online_features`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

PRESENT, MISSING, STALE = "present", "missing", "stale"
ENTITY_KEYS = ("tailnum", "origin", "carrier", "route")


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


@dataclass(frozen=True)
class _View:
    view: FeatureView
    join_keys: list[str]
    value_types: list[Any]
    features: list[str]
    ttl: timedelta


class ServiceReader:
    """Reads a feature service's online values for a batch of entity rows."""

    def __init__(self, store: FeatureStore, service: str) -> None:
        self._store = store
        self._provider = store._get_provider()
        self.service = service
        self._views: list[_View] = []
        for projection in store.get_feature_service(service).feature_view_projections:
            view = store.get_feature_view(projection.name)
            columns = sorted(view.entity_columns, key=lambda c: c.name)
            join_keys = [projection.join_key_map.get(c.name, c.name) for c in columns]
            self._views.append(
                _View(
                    view=view,
                    join_keys=join_keys,
                    value_types=[c.dtype.to_value_type() for c in columns],
                    features=[f.name for f in projection.features],
                    ttl=view.ttl or timedelta(0),
                )
            )
        self.feature_names = [name for v in self._views for name in v.features]

    def read(self, entity_rows: list[dict[str, Any]], times: list[datetime]) -> ServedFeatures:
        """Values and statuses for each row; a value older than its view's TTL at the row's time is stale."""
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values

        values: dict[str, list[Any]] = {}
        missing: list[list[str]] = [[] for _ in entity_rows]
        stale: list[list[str]] = [[] for _ in entity_rows]
        for v in self._views:
            keys = [tuple(row.get(k) for k in v.join_keys) for row in entity_rows]
            unique = list(dict.fromkeys(keys))
            protos = [
                EntityKey(
                    join_keys=v.join_keys,
                    entity_values=[
                        python_values_to_proto_values([value], value_type)[0]
                        for value, value_type in zip(key, v.value_types, strict=True)
                    ],
                )
                for key in unique
            ]
            # A copy: Feast's Redis store appends its timestamp field to the list it is given.
            read = self._provider.online_read(
                config=self._store.config,
                table=v.view,
                entity_keys=protos,
                requested_features=list(v.features),
            )
            # Decode each distinct entity once (a batch often repeats carriers, airports, routes), and
            # split its features into missing (no value) and present once.
            nothing = (None,) * len(v.features)
            decoded: dict[tuple[Any, ...], tuple[datetime | None, tuple[Any, ...], list[str], list[str]]] = {}
            for key, (stamp, found) in zip(unique, read, strict=True):
                row_values = tuple(
                    feast_value_type_to_python_type(found[name]) if found and name in found else None
                    for name in v.features
                )
                absent = [name for name, x in zip(v.features, row_values, strict=True) if x is None]
                present = [name for name, x in zip(v.features, row_values, strict=True) if x is not None]
                decoded[key] = (stamp, row_values, absent, present)
            ttl = v.ttl if v.ttl > timedelta(0) else None
            served: list[tuple[Any, ...]] = []
            for i, (key, t) in enumerate(zip(keys, times, strict=True)):
                stamp, row_values, absent, present = decoded[key]
                if absent:
                    missing[i].extend(absent)
                if ttl is not None and stamp is not None and stamp < t - ttl and present:
                    stale[i].extend(present)
                    served.append(nothing)
                else:
                    served.append(row_values)
            for name, column in zip(v.features, zip(*served, strict=True), strict=True):
                values[name] = list(column)
        return ServedFeatures(columns=values, missing=missing, stale=stale)
