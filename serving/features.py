"""Online features for the rows of a request, with each value's status (present, missing, stale)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from feast import FeatureStore

PRESENT, MISSING, STALE = "present", "missing", "stale"
ENTITY_KEYS = ("tailnum", "origin", "carrier", "route")


@dataclass(frozen=True)
class ServedFeatures:
    """Feature values (stale ones blanked, as in training) and a status per row and feature."""

    values: pd.DataFrame
    status: pd.DataFrame


def feature_ttls(store: FeatureStore, service: str) -> dict[str, timedelta]:
    """Each feature of a service with its view's TTL (zero: never stale)."""
    out: dict[str, timedelta] = {}
    for projection in store.get_feature_service(service, allow_cache=True).feature_view_projections:
        ttl = store.get_feature_view(projection.name, allow_registry_cache=True).ttl or timedelta(0)
        for feature in projection.features:
            out[feature.name] = ttl
    return out


def read_online(
    store: FeatureStore, service: str, entity_rows: list[dict[str, Any]], times: list[datetime],
    ttls: dict[str, timedelta],
) -> ServedFeatures:  # fmt: skip
    """Read the service's features for the rows; a value older than its TTL at the row's time is stale."""
    response = store.get_online_features(
        features=store.get_feature_service(service, allow_cache=True), entity_rows=entity_rows
    )
    proto = response.proto
    names = list(proto.metadata.feature_names.val)
    values: dict[str, list[Any]] = {}
    status: dict[str, list[str]] = {}
    as_dict = response.to_dict()
    for name, vector in zip(names, proto.results, strict=True):
        if name in ENTITY_KEYS:
            continue
        ttl = ttls.get(name, timedelta(0))
        column, states = list(as_dict[name]), []
        for i, (state, stamp) in enumerate(zip(vector.statuses, vector.event_timestamps, strict=True)):
            if state != 1 or column[i] is None:  # 1 = PRESENT in Feast's FieldStatus
                states.append(MISSING)
                column[i] = None
            elif ttl > timedelta(0) and stamp.seconds < (times[i] - ttl).timestamp():
                states.append(STALE)
                column[i] = None
            else:
                states.append(PRESENT)
        values[name], status[name] = column, states
    return ServedFeatures(values=pd.DataFrame(values), status=pd.DataFrame(status))
