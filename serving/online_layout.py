"""Where a feature view's requested features live in the online store, and how their entity keys
are written: the layout serving's reads (serving/online_store.py, serving/sqlite_store.py) follow.
The names and bytes are Feast's, from featureloop/featurestore/codec.py, which the materialisation
engine writes with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from featureloop.featurestore.codec import (
    entity_key_encoder,
    redis_feature_field,
    redis_time_field,
    sqlite_table,
)

if TYPE_CHECKING:
    from feast import FeatureView

# What the store holds for one entity: (event time, {feature: stored bytes}), or (None, None).
Found = tuple[datetime | None, dict[str, bytes | None] | None]


@dataclass(frozen=True)
class ViewTable:
    """Where one feature view's requested features live, and how its entity keys are written."""

    view: FeatureView
    join_keys: list[str]  # the view's join keys as requests name them, in Feast's (sorted) order
    value_types: list[Any]
    features: list[str]
    # Feast's serialised entity key of a tuple of join-key values, when each is a string or an int64.
    encode_key: Callable[[tuple[Any, ...]], bytes] | None
    sqlite_table: str  # quoted
    subset: bool  # at most half of the view's features (SQLite then fetches only theirs)
    redis_fields: list[bytes]  # the features' hash fields, then the view's `_ts:` field
    signature: tuple[Any, ...]  # what an answer depends on besides the key (the cache's key)


def view_table(
    project: str, view: FeatureView, features: list[str], join_key_map: dict[str, str]
) -> ViewTable:
    """The layout of `features` of `view` (join keys renamed by a projection's `join_key_map`)."""
    columns = sorted(view.entity_columns, key=lambda c: c.name)
    value_types = [c.dtype.to_value_type() for c in columns]
    return ViewTable(
        view=view,
        join_keys=[join_key_map.get(c.name, c.name) for c in columns],
        value_types=value_types,
        features=list(features),
        encode_key=entity_key_encoder([c.name for c in columns], value_types),
        sqlite_table=sqlite_table(project, view),
        # Only their rows when at most half of the view's features are asked for (the entity's
        # last-row time then costs a lookup of its own: more than a few extra rows).
        subset=2 * len(set(features)) <= len(view.features),
        redis_fields=[redis_feature_field(view.name, f) for f in features] + [redis_time_field(view.name)],
        signature=(view.name, tuple(features)),
    )


def key_protos(table: ViewTable, keys: list[tuple[Any, ...]]) -> list[Any]:
    """Feast's EntityKey protos of tuples of join-key values (for Feast's own reads and encoding)."""
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.type_map import python_values_to_proto_values

    return [
        EntityKey(
            join_keys=table.join_keys,
            entity_values=[
                python_values_to_proto_values([value], value_type)[0]
                for value, value_type in zip(key, table.value_types, strict=True)
            ],
        )
        for key in keys
    ]
