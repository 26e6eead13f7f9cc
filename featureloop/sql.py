"""Quoting for the SQL we generate for DuckDB (identifiers and string literals from feature definitions)."""

from __future__ import annotations


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
