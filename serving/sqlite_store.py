"""Feast's SQLite online store, read directly: the file (checked before each read, reopened when it
was replaced, never created) and the statements that read many entities of many views at once.

Each entity gets what Feast's store returns for it: `(event time, {feature: stored bytes})`, or
`(None, None)` when SQLite has no row for it. `SqliteStoreFile.version` tells the answer cache
(serving/online_store.py) whether the database may have changed since its last read.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featureloop.sql import quote_literal
from serving.online_layout import Found, ViewTable

if TYPE_CHECKING:
    from feast import FeatureStore

SQLITE_VARIABLES = 30_000  # keys per statement (SQLite's limit: 32,766 bound parameters)
SQLITE_CACHE_KIB = 65_536


class OnlineStoreMissing(RuntimeError):
    """The SQLite online store's file is not there (removed, or not materialised yet)."""


class SqliteStoreFile:
    """Feast's SQLite online store connection, with the file checked before each read (one `stat`).

    SQLite keeps reading a file that was removed under it (the open descriptor holds the old inode),
    and reconnecting to a missing path creates an empty database: so a missing file is reported
    (`OnlineStoreMissing`, a 503 naming the path and the way out) and never created, and a file
    that is back (restored, or rebuilt by `materialize`) is reopened: service resumes without a
    restart. Reads wait at most `busy_timeout_ms` for a writer's lock (Python's default is 5 s)."""

    def __init__(self, store: FeatureStore, busy_timeout_ms: int) -> None:
        provider: Any = store._get_provider()
        self._online: Any = provider.online_store
        self._config = store.config
        # Feast's own resolution of the path, without its `..` (the path is in 503 bodies).
        self.path = Path(os.path.normpath(self._online._get_db_path(store.config)))
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._lock = threading.Lock()
        self._identity: tuple[int, int] | None = None
        self._connection: Any = None
        self.generation = 0  # counts (re)opened connections: answers cached from another are void

    def _stat(self) -> tuple[int, int]:
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            raise OnlineStoreMissing(
                f"the SQLite online store {self.path} is missing: restore it, or load it with "
                "`featureloop materialize`"
            ) from None
        return found.st_dev, found.st_ino

    def connection(self) -> Any:
        """The connection to the file at the path now (reopened if the file was replaced)."""
        identity = self._stat()
        if identity != self._identity:
            with self._lock:
                if identity != self._identity:
                    if self._identity is not None and self._connection is not None:
                        # The file was replaced: our connection reads the old one. (Feast's own
                        # connection is dropped only if it is ours: another reader may hold it.)
                        if self._online._conn is self._connection:
                            self._online._conn = None
                        self._connection.close()
                    connection = self._online._get_conn(self._config)
                    connection.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
                    # Up to 64 MiB of pages kept (SQLite's default is 2 MiB): a batch of distinct
                    # entities touches pages all over the tables, re-read from the OS otherwise.
                    connection.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
                    self._connection, self._identity = connection, identity
                    self.generation += 1
        return self._connection

    def version(self, connection: Any) -> tuple[int, int, int]:
        """Changes whenever the database may hold other data than at the last call: another
        connection committed, this one wrote, or the file was reopened."""
        (data_version,) = connection.execute("PRAGMA data_version").fetchone()
        return self.generation, data_version, connection.total_changes


Stamp = Callable[[int | None], datetime | None]  # a stored time (whole seconds) as Feast reads it


def read_sqlite(
    connection: Any, encoded: list[tuple[ViewTable, list[bytes]]], stamp: Stamp
) -> list[list[Found]]:
    """Feast's SQLite reads: for each entity, its feature rows and the time of its last row
    (Feast's query lists an entity's rows through the table's `entity_key` index, in the order
    they were written, and keeps the last one's time). The views read whole share one statement
    (at most SQLITE_VARIABLES keys; Feast's statements hold one view's) whose rows name their view
    and entity by position; a view of which at most half the features are asked for gets a
    statement of one row per entity: the last row's time and each requested feature's value."""
    out: list[list[Found]] = [[] for _ in encoded]
    whole: list[int] = []
    for v, (table, keys) in enumerate(encoded):
        if keys and table.subset:
            for start in range(0, len(keys), SQLITE_VARIABLES):
                out[v] += _read_subset(connection, table, keys[start : start + SQLITE_VARIABLES], stamp)
        elif keys:
            whole.append(v)
    groups: list[list[int]] = []
    count = SQLITE_VARIABLES
    for v in whole:
        if count + len(encoded[v][1]) > SQLITE_VARIABLES:
            groups.append([])
            count = 0
        groups[-1].append(v)
        count += len(encoded[v][1])
    for group in groups:
        stamps = {v: [None] * len(encoded[v][1]) for v in group}
        stored: dict[int, list[dict[str, bytes | None] | None]] = {
            v: [None] * len(encoded[v][1]) for v in group
        }
        sql, params = _whole_views_statement([(v, *encoded[v]) for v in group])
        for v, i, name, value, time in connection.execute(sql, params).fetchall():
            found = stored[v][i]
            if found is None:
                found = stored[v][i] = {}
            found[name] = value
            stamps[v][i] = time
        for v in group:
            out[v] = [
                (None, None) if found is None else (stamp(time), found)
                for time, found in zip(stamps[v], stored[v], strict=True)
            ]
    return out


def _read_subset(connection: Any, table: ViewTable, keys: list[bytes], stamp: Stamp) -> list[Found]:
    """One row per entity: the time of its last row (NULL: no row), then each feature's value
    (NULL: no such row; an empty value is a stored null)."""
    entities = f"WITH k(i, key) AS (VALUES {','.join(f'({i},?)' for i in range(len(keys)))}) "
    values = ", ".join(
        f"(SELECT value FROM {table.sqlite_table} WHERE entity_key = k.key AND feature_name = {quote_literal(f)})"
        for f in table.features
    )
    sql = (
        f"{entities}SELECT (SELECT CAST(event_ts AS INTEGER) FROM {table.sqlite_table} "
        f"WHERE entity_key = k.key ORDER BY rowid DESC LIMIT 1), {values} FROM k"
    )
    features = table.features
    out: list[Found] = []
    for time, *stored in connection.execute(sql, keys).fetchall():
        if time is None:
            out.append((None, None))
        else:
            found = {name: value for name, value in zip(features, stored, strict=True) if value is not None}
            out.append((stamp(time), found))
    return out


def _whole_views_statement(reads: list[tuple[int, ViewTable, list[bytes]]]) -> tuple[str, list[bytes]]:
    """One statement reading views whole: rows of (view, entity position, feature, value, time)."""
    ctes, parts, params = [], [], []
    for v, table, keys in reads:
        ctes.append(f"k{v}(i, key) AS (VALUES {','.join(f'({i},?)' for i in range(len(keys)))})")
        params += keys
        # CROSS JOIN: SQLite keeps the keys as the outer loop, so each entity's rows come through
        # the table's entity_key index, in rowid order, as Feast's query lists them.
        parts.append(
            f"SELECT {v}, k{v}.i, t.feature_name, t.value, CAST(t.event_ts AS INTEGER) "
            f"FROM k{v} CROSS JOIN {table.sqlite_table} AS t ON t.entity_key = k{v}.key"
        )
    return f"WITH {', '.join(ctes)} {' UNION ALL '.join(parts)}", params
