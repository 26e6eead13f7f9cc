"""Feast's dummy entity: the join key of an entity-less (system-wide) view. No source holds it as a
column; every row has its one value. The SQL that reads a view's rows by key selects it as that
value and partitions by the real keys only."""

from __future__ import annotations

from feast.feature_view import DUMMY_ENTITY_ID, DUMMY_ENTITY_VAL

from featureloop.sql import quote_identifier, quote_literal

__all__ = ["DUMMY_ENTITY_ID", "DUMMY_ENTITY_VAL", "key_select", "real_keys"]


def key_select(key: str, prefix: str = "") -> str:
    """A key column as a SELECT expression (the dummy entity: its value, named as the key)."""
    if key == DUMMY_ENTITY_ID:
        return f"{quote_literal(DUMMY_ENTITY_VAL)} AS {quote_identifier(key)}"
    return f"{prefix}{quote_identifier(key)}"


def real_keys(keys: list[str]) -> list[str]:
    """The keys a source holds (all but the dummy entity's)."""
    return [k for k in keys if k != DUMMY_ENTITY_ID]
