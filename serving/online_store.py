"""The online store's tables, read directly: what Feast's `online_read` finds, in fewer steps.

Entity keys are serialised as Feast writes them (version 3) and values are left as stored (the
serialised ValueProto bytes) for the caller to decode: /predict to Python values, the
/get-online-features fast path to JSON. SQLite: one statement per feature view, on Feast's own
connection (serving/sqlite_store.py). Redis: one pipeline for every view of a request, packed and
parsed by hiredis. Any other store, or a layout this module does not know (online versioning,
other key serialisations, Redis Cluster or GLIDE), is read through the provider's `online_read`.
Where each view's values live is serving/online_layout.py.

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

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from serving.online_layout import Found, ViewTable, key_protos, view_table
from serving.sqlite_store import SqliteStoreFile, read_sqlite

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView


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
        return view_table(self._store.config.project, view, features, join_key_map)

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
                return read_sqlite(connection, encoded, self._sqlite_stamp)
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
                caches, out, missed, read_sqlite(connection, missed, self._sqlite_stamp), strict=True
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

        return [serialize_entity_key(p, entity_key_serialization_version=3) for p in key_protos(table, keys)]

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
        from featureloop.featurestore.redis_writer import round_trips

        client = self._provider.online_store._get_client(self._store.config.online_store)
        commands = [
            ("HMGET", key + self._project, *table.redis_fields) for table, keys in encoded for key in keys
        ]
        replies = round_trips(client, commands) if commands else []
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
            entity_keys=key_protos(table, keys),
            requested_features=list(table.features),
        )
        return [
            (stamp, None if found is None else {n: v.SerializeToString() for n, v in found.items()})
            for stamp, found in read
        ]
