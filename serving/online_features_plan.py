"""The /get-online-features fast path's plan for a request: which view tables to read for which
entities, taken from Feast's own resolution of the request (`_get_cached_request_context`: the same
views, features, names, order and errors, re-resolved when the registry refreshes), and the checks
that the request is one the fast path answers exactly as Feast would (serving/online_features.py
says which are not).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from serving.online_layout import ViewTable
from serving.online_store import OnlineTables
from serving.schemas import GetOnlineFeaturesRequest

if TYPE_CHECKING:
    from feast import FeatureStore

PRESENT, NOT_FOUND = "PRESENT", "NOT_FOUND"
EPOCH = "1970-01-01T00:00:00Z"  # Feast's text for an unset event time
INT64 = range(-(2**63), 2**63)


class _FallBack(Exception):
    """A request the fast path does not cover: Feast's own code answers it."""


@dataclass(frozen=True)
class ReadPlan:
    """How the requested features are read: each view's table and its columns' names in the response."""

    context: tuple[Any, ...]  # Feast's resolution this plan was built from (compared by identity)
    tables: list[tuple[ViewTable, list[str]]]  # each view's layout and its features' names in the response
    join_keys: frozenset[str]
    key_types: dict[str, str]  # join key -> "str" or "int" (its entity's value type); absent: inferred


@dataclass(frozen=True)
class Prepared:
    """A request checked against its plan: the entity columns, and what to read per view."""

    plan: ReadPlan
    names: list[str]
    results: list[dict[str, Any]]
    reads: list[tuple[ViewTable, list[tuple[Any, ...]]]]
    keys_by_view: list[list[tuple[Any, ...]]]  # each row's key, per view


class RequestPlanner:
    """Plans the fast path's reads for requests against one feature store (plans and feature
    services are kept while Feast's resolution of the request is the same)."""

    def __init__(self, store: FeatureStore, tables: OnlineTables) -> None:
        self._store = store
        self._tables = tables
        self._plans: dict[tuple[Any, ...], ReadPlan] = {}
        self._services: dict[str, tuple[Any, Any]] = {}

    def prepare(self, request: GetOnlineFeaturesRequest) -> Prepared:
        """The entity columns of the answer and the reads per view (no I/O); an exception when the
        fast path does not answer the request (Feast's code then does)."""
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

    def _plan(self, request: GetOnlineFeaturesRequest) -> ReadPlan:
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

    def _new_plan(self, context: tuple[Any, ...], full_feature_names: bool) -> ReadPlan:
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
        return ReadPlan(
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
