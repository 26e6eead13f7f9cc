"""/get-online-features, answered with the body `feast serve` gives, byte for byte.

Feast's `get_online_features` spends most of a batch's time on bookkeeping: protobuf objects per
entity, value and timestamp, a sort of the entities, the response's protobuf, and its conversion to
JSON. The fast path keeps Feast's own resolution of the request (`_get_cached_request_context`: the
same views, features, names, order and errors, re-resolved when the registry refreshes) and reads
the stored bytes of every distinct entity through `serving.online_store` (SQLite: one statement per
view; Redis: one pipeline for the request), then writes the JSON Feast would write: the entity
columns first, then each view's features; PRESENT where the store holds the feature for the entity
(its value may be null), NOT_FOUND where it does not; each row's event time as the store returned it.
Feast 0.67 applies no TTL on this path (a value older than its view's TTL comes back PRESENT), and
neither does this.

Anything else goes to Feast's own code, unchanged: on-demand and versioned views, projections with
renamed join keys, services with `precompute_online`, entity values of other types than the view's
string or int64 keys, entity columns that are not join keys, rows missing a view's join key, other
online stores, and every request Feast refuses (its error is the answer).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from serving.features import _varint
from serving.online_store import Found, OnlineTables, SqliteStoreFile, ViewTable
from serving.schemas import GetOnlineFeaturesRequest

if TYPE_CHECKING:
    from feast import FeatureStore

PRESENT, NOT_FOUND = "PRESENT", "NOT_FOUND"
EPOCH = "1970-01-01T00:00:00Z"  # Feast's text for an unset event time
INT64 = range(-(2**63), 2**63)


class FeaturesRequestError(ValueError):
    """Feast refused the request (unknown feature, view or service; bad entity values): a 400."""


class _FallBack(Exception):
    """A request the fast path does not cover: Feast's own code answers it."""


@dataclass(frozen=True)
class _Plan:
    context: tuple[Any, ...]  # Feast's resolution this plan was built from (compared by identity)
    tables: list[tuple[ViewTable, list[str]]]  # each view's layout and its features' names in the response
    join_keys: frozenset[str]
    key_types: dict[str, str]  # join key -> "str" or "int" (its entity's value type); absent: inferred


@dataclass(frozen=True)
class Prepared:
    """A request checked against its plan: the entity columns, and what to read per view."""

    plan: _Plan
    names: list[str]
    results: list[dict[str, Any]]
    reads: list[tuple[ViewTable, list[tuple[Any, ...]]]]
    keys_by_view: list[list[tuple[Any, ...]]]  # each row's key, per view


class OnlineFeatures:
    """Answers /get-online-features requests against one feature store."""

    def __init__(
        self,
        store: FeatureStore,
        sqlite_file: SqliteStoreFile | None = None,
        *,
        on_answer: Callable[[str], None] = lambda _path: None,
        cache_entries: int = 0,
    ) -> None:
        self._store = store
        self._on_answer = on_answer
        self._tables = OnlineTables(store, sqlite_file, cache_entries=cache_entries)
        self._plans: dict[tuple[Any, ...], _Plan] = {}
        self._services: dict[str, tuple[Any, Any]] = {}
        self._stamp_texts: dict[datetime | None, str] = {None: EPOCH}
        self._values: dict[bytes, Any] = {}  # stored bytes -> JSON value (a pure function: never stale)

    @property
    def tables(self) -> OnlineTables:
        return self._tables

    @property
    def local(self) -> bool:
        """The fast path reads a local SQLite file: no network, and a lock waits at most the
        connection's busy timeout (none in write-ahead-log mode)."""
        return self._tables.mode == "sqlite"

    def prepare(self, request: GetOnlineFeaturesRequest) -> Prepared | None:
        """The fast path's reads for the request (no I/O), or None when Feast's code answers it."""
        try:
            return self._prepare(request)
        except Exception:
            return None

    def answer(self, request: GetOnlineFeaturesRequest, prepared: Prepared | None = None) -> bytes:
        """The JSON body; FeaturesRequestError when Feast refuses the request, any other exception
        when the online store could not be read."""
        # Only the store's read may fail the fast path; any other surprise (a request it does not
        # cover, a value it cannot write) is left to Feast's code, whose answer is the answer.
        if prepared is None:
            prepared = self.prepare(request)
        if prepared is not None:
            found = self._tables.read(prepared.reads)
            try:
                body = self._render(prepared, found)
            except Exception:
                pass
            else:
                self._on_answer("fast")
                return body
        self._on_answer("feast")
        return self._feast(request)

    def _feast(self, request: GetOnlineFeaturesRequest) -> bytes:
        """Feast's own `get_online_features` and feature-server conversion."""
        from feast.errors import FeastError
        from feast.feature_server_utils import convert_response_to_dict

        features: Any = request.features
        try:
            if self._tables.sqlite is not None:
                self._tables.sqlite.connection()  # Feast reads on this connection: the file must be there
            if request.feature_service:
                features = self._store.get_feature_service(request.feature_service, allow_cache=True)
            response = self._store.get_online_features(
                features=features, entity_rows=request.entities, full_feature_names=request.full_feature_names
            )
        except (FeastError, ValueError, KeyError) as exc:
            raise FeaturesRequestError(f"{type(exc).__name__}: {exc}") from exc
        return _dumps(convert_response_to_dict(response.proto))

    def _fast(self, request: GetOnlineFeaturesRequest) -> bytes:
        """The fast path's body (_FallBack when it does not cover the request)."""
        prepared = self._prepare(request)
        return self._render(prepared, self._tables.read(prepared.reads))

    def _prepare(self, request: GetOnlineFeaturesRequest) -> Prepared:
        if not self._tables.direct:
            raise _FallBack
        plan = self._plan(request)
        entities = request.entities
        rows = _row_count(entities)
        results: list[dict[str, Any]] = []
        names: list[str] = []
        for name, values in entities.items():
            # Anything but a join key (an entity's name, request data, a column Feast skips) is
            # converted, checked or mapped by Feast first: its code answers.
            if name not in plan.join_keys:
                raise _FallBack
            _check_key_values(values, plan.key_types.get(name))
            names.append(name)
            results.append(
                {"values": values, "statuses": [PRESENT] * rows, "event_timestamps": [EPOCH] * rows}
            )
        reads: list[tuple[ViewTable, list[tuple[Any, ...]]]] = []
        keys_by_view: list[list[tuple[Any, ...]]] = []
        for table, _ in plan.tables:
            if any(k not in entities for k in table.join_keys):
                raise _FallBack  # Feast refuses it, or reads partial keys
            keys = list(zip(*(entities[k] for k in table.join_keys), strict=True))
            keys_by_view.append(keys)
            reads.append((table, list(dict.fromkeys(keys))))
        return Prepared(plan, names, results, reads, keys_by_view)

    def _render(self, prepared: Prepared, found_by_view: list[list[Found]]) -> bytes:
        names, results = list(prepared.names), list(prepared.results)
        for (table, out_names), keys, (_, unique), found in zip(
            prepared.plan.tables, prepared.keys_by_view, prepared.reads, found_by_view, strict=True
        ):
            by_key = {
                key: self._entity(table.features, entry) for key, entry in zip(unique, found, strict=True)
            }
            per_row = [by_key[key] for key in keys]
            stamps = [entry[0] for entry in per_row]
            for i, name in enumerate(out_names):
                names.append(name)
                results.append(
                    {
                        "values": [entry[1][i] for entry in per_row],
                        "statuses": [entry[2][i] for entry in per_row],
                        "event_timestamps": stamps,
                    }
                )
        return _dumps({"results": results, "metadata": {"feature_names": names}})

    def _entity(
        self, features: list[str], entry: tuple[datetime | None, dict[str, bytes | None] | None]
    ) -> tuple[str, list[Any], list[str]]:
        """One entity's event time (text), values (JSON-ready) and statuses, in `features` order."""
        stamp, stored = entry
        text = self._stamp_texts.get(stamp)
        if text is None:
            if len(self._stamp_texts) > 100_000:
                self._stamp_texts = {None: EPOCH}
            text = self._stamp_texts[stamp] = _stamp_text(stamp)
        if stored is None:
            return text, [None] * len(features), [NOT_FOUND] * len(features)
        if len(self._values) > 200_000:
            self._values = {}
        cache = self._values
        values: list[Any] = []
        statuses: list[str] = []
        for name in features:
            if name not in stored:
                values.append(None)
                statuses.append(NOT_FOUND)
                continue
            raw = stored[name] or b""
            value = cache.get(raw, cache)
            if value is cache:
                value = cache[raw] = json_value(raw)
            values.append(value)
            statuses.append(PRESENT)
        return text, values, statuses

    def _plan(self, request: GetOnlineFeaturesRequest) -> _Plan:
        """The fast path's reading plan for these features (Feast's resolution, cached by Feast)."""
        from feast import utils

        features: Any = request.features
        if request.feature_service:
            features = self._service(request.feature_service)
            if getattr(features, "precompute_online", False):
                raise _FallBack  # Feast reads its precomputed vectors instead
            key: tuple[Any, ...] = ("__fs__", request.feature_service, request.full_feature_names)
        else:
            key = (*features, request.full_feature_names)
        store = self._store
        try:
            context = utils._get_cached_request_context(
                store.registry, store.project, features, request.full_feature_names
            )
        except Exception:
            raise _FallBack from None  # Feast's own path raises the same error, as the answer
        plan = self._plans.get(key)
        if plan is None or plan.context is not context:
            if len(self._plans) > 1000:
                self._plans.clear()
            plan = self._plans[key] = self._new_plan(context, request.full_feature_names)
        return plan

    def _service(self, name: str) -> Any:
        """The feature service, looked up again only when the registry was refreshed (or is due)."""
        registry = self._store.registry
        created = getattr(registry, "cached_registry_proto_created", None)
        cached = self._services.get(name)
        if cached is not None and created is not None and cached[0] == created and registry.is_cache_valid():
            return cached[1]
        try:
            service = self._store.get_feature_service(name, allow_cache=True)
        except Exception:
            raise _FallBack from None
        self._services[name] = (getattr(registry, "cached_registry_proto_created", None), service)
        return service

    def _new_plan(self, context: tuple[Any, ...], full_feature_names: bool) -> _Plan:
        from feast.feature_view import FeatureView
        from feast.value_type import ValueType

        (_, odfvs, _, entity_types, join_keys, grouped, wanted, request_data, entityless) = context
        if odfvs or request_data or entityless:
            raise _FallBack
        tables: list[tuple[ViewTable, list[str]]] = []
        for view, requested in grouped:
            projection = view.projection
            if type(view) is not FeatureView or projection.version_tag is not None or projection.join_key_map:
                raise _FallBack
            prefix = projection.name_to_use()
            out_names = [f"{prefix}__{f}" if full_feature_names else f for f in requested]
            if not all(n in wanted for n in out_names):
                raise _FallBack  # Feast would drop some columns: leave that to it
            tables.append((self._tables.table(view, list(requested), {}), out_names))
        known = {ValueType.STRING: "str", ValueType.INT64: "int"}
        key_types: dict[str, str] = {}
        for name in join_keys:
            value_type = entity_types.get(name)
            if value_type is None:
                continue  # Feast infers the type from the values
            if value_type not in known:
                raise _FallBack
            key_types[name] = known[value_type]
        return _Plan(
            context=context,
            tables=tables,
            join_keys=frozenset(join_keys),
            key_types=key_types,
        )


def _row_count(entities: dict[str, list[Any]]) -> int:
    counts = {len(values) for values in entities.values()}
    if len(counts) != 1 or 0 in counts:
        raise _FallBack  # Feast refuses ragged or empty rows
    return counts.pop()


def _check_key_values(values: list[Any], kind: str | None) -> None:
    """Values Feast turns into the same strings or integers (anything else: Feast's conversion)."""
    first = type(values[0])
    if first not in (str, int) or (kind is not None and first.__name__ != kind):
        raise _FallBack
    if any(type(v) is not first for v in values):
        raise _FallBack
    if first is int and any(v not in INT64 for v in values):
        raise _FallBack
    if first is str and not all(v.isascii() for v in values):
        for v in values:
            v.encode("utf8")  # a lone surrogate cannot be a key: Feast's conversion refuses it


def json_value(data: bytes | None) -> Any:
    """What Feast's feature server writes for a stored ValueProto (`_value_to_native`): None for an
    empty one, the scalar itself, a non-finite double as "NaN"/"Infinity"/"-Infinity"; the
    common scalars decoded here, the rest through protobuf and Feast's own conversion."""
    if not data:
        return None
    tag = data[0]
    if tag == 0x29 and len(data) == 9:  # double_val
        value = struct.unpack_from("<d", data, 1)[0]
        if math.isfinite(value):
            return value
    elif tag in (0x20, 0x18):  # int64_val, int32_val (negative: 64-bit two's complement)
        number, end = _varint(data, 1)
        if end == len(data):
            return number - (1 << 64) if number >= 1 << 63 else number
    elif tag == 0x12:  # string_val
        length, start = _varint(data, 1)
        if start + length == len(data):
            return data[start:].decode("utf8")
    elif tag == 0x38 and len(data) == 2:  # bool_val
        return bool(data[1])
    from feast.feature_server_utils import _value_to_native
    from feast.protos.feast.types.Value_pb2 import Value

    proto = Value()
    proto.ParseFromString(data)
    return _value_to_native(proto)


def _stamp_text(stamp: datetime | None) -> str:
    """Feast's text for an event time: the protobuf Timestamp its store's time becomes, formatted
    by the feature server."""
    from feast.feature_server_utils import _timestamp_to_str
    from google.protobuf.timestamp_pb2 import Timestamp

    if stamp is None:
        return EPOCH
    proto = Timestamp()
    proto.FromDatetime(stamp)
    return str(_timestamp_to_str(proto))


def _dumps(content: dict[str, Any]) -> bytes:
    """Starlette's JSONResponse rendering (what `feast serve` sends)."""
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")
