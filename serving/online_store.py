"""The online store's tables, read directly: what Feast's `online_read` finds, in fewer steps.

Entity keys are serialised as Feast writes them (version 3) and values are left as stored (the
serialised ValueProto bytes) for the caller to decode: /predict to Python values, the
/get-online-features fast path to JSON. SQLite: one statement per feature view, on Feast's own
connection. Redis: one pipeline for every view of a request, packed and parsed by hiredis. Any
other store, or a layout this module does not know (online versioning, other key serialisations,
Redis Cluster or GLIDE), is read through the provider's `online_read`.

Each entity gets what Feast's store returns for it: `(event time, {feature: stored bytes})`, or
`(None, None)` when SQLite has no row for it. Redis answers every requested field (an absent one
as None) with the Unix epoch as the time of an unknown entity, as Feast's Redis store does.

SQLite answers are kept per entity and view (up to `cache_entries`) for as long as the database is
unchanged: every read first asks SQLite whether anything was committed since the last one
(`PRAGMA data_version`, which counts other connections' commits, with the connection's own
`total_changes`; a replaced file is a new connection), and any change empties the cache. So a
cached answer is always the one SQLite would give now; only the reads are saved.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featureloop.sql import quote_identifier, quote_literal

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

Found = tuple[datetime | None, dict[str, bytes | None] | None]
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


class OnlineTables:
    """Reads the stored values of many entities of many views at once (see the module's docstring)."""

    def __init__(
        self, store: FeatureStore, sqlite_file: SqliteStoreFile | None = None, *, cache_entries: int = 0
    ) -> None:
        self._store = store
        self._provider: Any = store._get_provider()
        config = store.config
        online = config.online_store
        kind = getattr(online, "type", None)
        plain = config.entity_key_serialization_version == 3 and not (
            config.registry.enable_online_feature_view_versioning
        )
        self.sqlite: SqliteStoreFile | None = None
        if kind == "sqlite":
            self.sqlite = sqlite_file or SqliteStoreFile(store, busy_timeout_ms=5000)
        self.mode = "generic"
        if plain and kind == "sqlite":
            self.mode = "sqlite"
        elif (
            plain
            and kind == "redis"
            and getattr(online, "redis_type", None) == "redis"
            and getattr(online, "client", "redis") == "redis"
        ):
            self.mode = "redis"
        self._project = config.project.encode("utf8")
        self._stamps: dict[Any, datetime] = {}
        self.cache_entries = cache_entries if self.mode == "sqlite" else 0
        self._cache: dict[tuple[Any, ...], dict[bytes, Found]] = {}
        self._cached = 0
        self._cache_version: tuple[int, int, int] | None = None
        self.cache_hits = self.cache_misses = 0

    @property
    def direct(self) -> bool:
        """True when this store is read here rather than through Feast's `online_read`."""
        return self.mode != "generic"

    def table(self, view: FeatureView, features: list[str], join_key_map: dict[str, str]) -> ViewTable:
        """The layout of `features` of `view` (join keys renamed by a projection's `join_key_map`)."""
        from feast.infra.online_stores.helpers import _mmh3

        columns = sorted(view.entity_columns, key=lambda c: c.name)
        value_types = [c.dtype.to_value_type() for c in columns]
        return ViewTable(
            view=view,
            join_keys=[join_key_map.get(c.name, c.name) for c in columns],
            value_types=value_types,
            features=list(features),
            encode_key=_key_encoder([c.name for c in columns], value_types),
            sqlite_table=quote_identifier(f"{self._store.config.project}_{view.name}"),
            # Only their rows when at most half of the view's features are asked for (the entity's
            # last-row time then costs a lookup of its own: more than a few extra rows).
            subset=2 * len(set(features)) <= len(view.features),
            redis_fields=[_mmh3(f"{view.name}:{f}") for f in features] + [f"_ts:{view.name}".encode()],
            signature=(view.name, tuple(features)),
        )

    def read(self, reads: list[tuple[ViewTable, list[tuple[Any, ...]]]]) -> list[list[Found]]:
        """For each (view, distinct entity keys as join-key value tuples): what the store holds."""
        if self.mode == "generic":
            if self.sqlite is not None:
                self.sqlite.connection()  # a removed file fails here; a replaced one is reopened
            return [self._read_generic(table, keys) for table, keys in reads]
        encoded = [(table, self.encode_keys(table, keys)) for table, keys in reads]
        if self.mode == "sqlite":
            assert self.sqlite is not None
            connection = self.sqlite.connection()  # one check of the file for the whole read
            if self.cache_entries <= 0:
                return self._read_sqlite(connection, encoded)
            return self._read_sqlite_cached(connection, encoded)
        return self._read_redis(encoded)

    def _read_sqlite_cached(
        self, connection: Any, encoded: list[tuple[ViewTable, list[bytes]]]
    ) -> list[list[Found]]:
        """Answers kept from earlier reads while the database is unchanged; the rest read now."""
        assert self.sqlite is not None
        version = self.sqlite.version(connection)
        if version != self._cache_version or self._cached > self.cache_entries:
            # A new dict, not clear(): a reader on another thread may be iterating the old one.
            self._cache, self._cached, self._cache_version = {}, 0, version
        caches = [self._cache.setdefault(table.signature, {}) for table, _ in encoded]
        out: list[list[Found | None]] = [
            [cache.get(key) for key in keys] for cache, (_, keys) in zip(caches, encoded, strict=True)
        ]
        missed = [
            (table, [key for key, found in zip(keys, answers, strict=True) if found is None])
            for (table, keys), answers in zip(encoded, out, strict=True)
        ]
        count = sum(len(keys) for _, keys in missed)
        self.cache_misses += count
        self.cache_hits += sum(len(keys) for _, keys in encoded) - count
        if count:
            for cache, answers, (_, keys), read in zip(
                caches, out, missed, self._read_sqlite(connection, missed), strict=True
            ):
                it = iter(read)
                for i, found in enumerate(answers):
                    if found is None:
                        answers[i] = next(it)
                cache.update(zip(keys, read, strict=True))
            self._cached += count
        return out  # type: ignore[return-value]  # every None was filled

    def encode_keys(self, table: ViewTable, keys: list[tuple[Any, ...]]) -> list[bytes]:
        """Feast's serialised entity keys (version 3)."""
        if table.encode_key is not None:
            return [table.encode_key(key) for key in keys]
        from feast.infra.key_encoding_utils import serialize_entity_key

        return [serialize_entity_key(p, entity_key_serialization_version=3) for p in _key_protos(table, keys)]

    def _read_sqlite(
        self, connection: Any, encoded: list[tuple[ViewTable, list[bytes]]]
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
                    out[v] += self._read_sqlite_subset(
                        connection, table, keys[start : start + SQLITE_VARIABLES]
                    )
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
            sql, params = _sqlite_statement([(v, *encoded[v]) for v in group])
            for v, i, name, value, stamp in connection.execute(sql, params).fetchall():
                found = stored[v][i]
                if found is None:
                    found = stored[v][i] = {}
                found[name] = value
                stamps[v][i] = stamp
            for v in group:
                out[v] = [
                    (None, None) if found is None else (self._sqlite_stamp(stamp), found)
                    for stamp, found in zip(stamps[v], stored[v], strict=True)
                ]
        return out

    def _read_sqlite_subset(self, connection: Any, table: ViewTable, keys: list[bytes]) -> list[Found]:
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
        for stamp, *stored in connection.execute(sql, keys).fetchall():
            if stamp is None:
                out.append((None, None))
            else:
                found = {
                    name: value for name, value in zip(features, stored, strict=True) if value is not None
                }
                out.append((self._sqlite_stamp(stamp), found))
        return out

    def _sqlite_stamp(self, raw: int | None) -> datetime | None:
        # Feast's sqlite3 converter reads the stored whole seconds as the machine's local time, and
        # the store then calls that time UTC: the same here.
        if raw is None:
            return None
        stamp = self._stamps.get(raw)
        if stamp is None:
            if len(self._stamps) > 100_000:
                self._stamps.clear()
            stamp = self._stamps[raw] = datetime.fromtimestamp(raw).replace(tzinfo=UTC)
        return stamp

    def _read_redis(self, encoded: list[tuple[ViewTable, list[bytes]]]) -> list[list[Found]]:
        """One pipeline of HMGETs (each view's features and its time) for every view and entity."""
        from featureloop.featurestore.engine import _round_trips

        client = self._provider.online_store._get_client(self._store.config.online_store)
        commands = [
            ("HMGET", key + self._project, *table.redis_fields) for table, keys in encoded for key in keys
        ]
        replies = _round_trips(client, commands) if commands else []
        out: list[list[Found]] = []
        at = 0
        for table, keys in encoded:
            view_out: list[Found] = []
            for reply in replies[at : at + len(keys)]:
                view_out.append(
                    (self._redis_stamp(reply[-1]), dict(zip(table.features, reply, strict=False)))
                )
            at += len(keys)
            out.append(view_out)
        return out

    def _redis_stamp(self, raw: bytes | None) -> datetime:
        # Feast's Redis store: the `_ts:` field parsed as a Timestamp (the epoch when absent), then
        # `datetime.fromtimestamp(seconds + nanos / 1e9, UTC)`.
        key = raw or b""
        stamp = self._stamps.get(key)
        if stamp is None:
            from google.protobuf.timestamp_pb2 import Timestamp

            parsed = Timestamp()
            if raw:
                parsed.ParseFromString(raw)
            if len(self._stamps) > 100_000:
                self._stamps.clear()
            stamp = self._stamps[key] = datetime.fromtimestamp(
                parsed.seconds + parsed.nanos / 1_000_000_000.0, tz=UTC
            )
        return stamp

    def _read_generic(self, table: ViewTable, keys: list[tuple[Any, ...]]) -> list[Found]:
        # A copy of the names: Feast's Redis store appends its timestamp field to the list it is given.
        read = self._provider.online_read(
            config=self._store.config,
            table=table.view,
            entity_keys=_key_protos(table, keys),
            requested_features=list(table.features),
        )
        return [
            (stamp, None if found is None else {n: v.SerializeToString() for n, v in found.items()})
            for stamp, found in read
        ]


def _sqlite_statement(reads: list[tuple[int, ViewTable, list[bytes]]]) -> tuple[str, list[bytes]]:
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


def _key_protos(table: ViewTable, keys: list[tuple[Any, ...]]) -> list[Any]:
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


def _key_encoder(names: list[str], value_types: list[Any]) -> Callable[[tuple[Any, ...]], bytes] | None:
    """Feast's entity key serialisation, version 3, for string and int64 join keys (what the
    materialisation engine writes, `featureloop.featurestore.engine.encode_entity_keys`): the number of
    keys, each key's name (sorted), then each value with its type and length."""
    from feast.value_type import ValueType

    if not all(t in (ValueType.STRING, ValueType.INT64) for t in value_types):
        return None
    head = struct.pack("<I", len(names)) + b"".join(
        struct.pack("<II", ValueType.STRING.value, len(n.encode())) + n.encode() for n in names
    )
    strings = [t == ValueType.STRING for t in value_types]
    string_tag, int_head = ValueType.STRING.value, struct.pack("<II", ValueType.INT64.value, 8)
    if strings == [True]:

        def one_string(key: tuple[Any, ...]) -> bytes:
            raw = key[0].encode("utf8")
            return head + struct.pack("<II", string_tag, len(raw)) + raw

        return one_string

    def encode(key: tuple[Any, ...]) -> bytes:
        parts = [head]
        for value, is_string in zip(key, strings, strict=True):
            if is_string:
                raw = value.encode("utf8")
                parts.append(struct.pack("<II", string_tag, len(raw)) + raw)
            else:
                parts.append(int_head + struct.pack("<q", value))
        return b"".join(parts)

    return encode
