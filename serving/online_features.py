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

Which views are read for which entities is planned in serving/online_features_plan.py; stored
values become JSON values in featureloop/featurestore/codec.py (`json_value`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from featureloop.featurestore.codec import json_value
from serving.online_features_plan import EPOCH, NOT_FOUND, PRESENT, Prepared, RequestPlanner
from serving.online_layout import Found
from serving.online_store import OnlineTables
from serving.schemas import GetOnlineFeaturesRequest
from serving.sqlite_store import SqliteStoreFile

if TYPE_CHECKING:
    from feast import FeatureStore


class FeaturesRequestError(ValueError):
    """Feast refused the request (unknown feature, view or service; bad entity values): a 400."""


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
        self._planner = RequestPlanner(store, self._tables)
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
            return self._planner.prepare(request)
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
        """The fast path's body (an exception when it does not cover the request)."""
        prepared = self._planner.prepare(request)
        return self._render(prepared, self._tables.read(prepared.reads))

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
