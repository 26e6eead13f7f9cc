"""DuckDB for the SQL we generate: quoting (identifiers and string literals from feature definitions)
and `session()`, a connection in UTC on one in-memory database per process."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

_lock = threading.Lock()
_database: tuple[int, duckdb.DuckDBPyConnection] | None = None


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def session() -> duckdb.DuckDBPyConnection:
    """A new connection (close it, or use it in `with`) with its time zone UTC, to one in-memory
    database kept for the process. Opening a database costs milliseconds, a connection to an open
    one microseconds, and a materialisation opens one per view per window. What a connection
    registers or creates as temporary is its own; nothing here creates shared tables. A forked child
    opens its own database (a DuckDB instance is not fork-safe)."""
    import duckdb

    global _database
    with _lock:
        if _database is None or _database[0] != os.getpid():
            _database = (os.getpid(), duckdb.connect())
        con = _database[1].cursor()
    con.execute("SET TimeZone = 'UTC'")
    return con
