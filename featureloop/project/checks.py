"""A spec against what it names: the Feast registry (the service, its views' join keys, their
features) and the spine's offline table (its columns, the label's type). Each problem is one sentence
that names the field, what is wrong and what to write instead; an empty list is a usable project.

`featureloop validate` prints them. (The next steps of the project-spec work derive training and
serving from the spec; they will refuse a project that has any.)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from featureloop.project.spec import ProjectSpec
from featureloop.sql import quote_literal, session

if TYPE_CHECKING:
    from feast import FeatureStore

DUMMY_KEYS = {"__dummy_id"}  # Feast's join key of entity-less (system-wide) views


def service_contract(store: FeatureStore, service: str) -> tuple[list[str], list[str]] | str:
    """The service's join keys (in first-seen order) and feature names, or a sentence when the
    registry has no such service."""
    names = sorted(s.name for s in store.list_feature_services())
    try:
        found = store.get_feature_service(service)
    except Exception:
        return f"feature_service: {service!r} is not in the registry (known: {names}); run `featureloop apply` after adding it"
    views = {fv.name: fv for fv in store.list_feature_views()}
    keys: list[str] = []
    features: list[str] = []
    for projection in found.feature_view_projections:
        view = views.get(projection.name)
        if view is None:
            continue
        for column in view.entity_columns:
            key = projection.join_key_map.get(column.name, column.name)
            if key not in DUMMY_KEYS and key not in keys:
                keys.append(key)
        features += [f.name for f in projection.features]
    return keys, features


def check_against_registry(spec: ProjectSpec, keys: list[str], features: list[str]) -> list[str]:
    """The spec's keys and request fields against the service's join keys and features."""
    problems = []
    declared = spec.spine.entity_keys
    missing = [k for k in keys if k not in declared]
    if missing:
        problems.append(
            f"spine.entity_keys: the service joins on {missing}, which the spec does not list; "
            f"write entity_keys: {keys}"
        )
    unused = [k for k in declared if k not in keys]
    if unused:
        problems.append(
            f"spine.entity_keys: {unused} are not join keys of any view of {spec.feature_service!r} "
            f"(its keys: {keys or 'none, system-wide views'}); remove them"
        )
    fields = {f.name for f in spec.spine.request_fields}
    for key in keys:
        if key not in fields and key not in spec.spine.derived_keys:
            problems.append(
                f"spine: join key {key!r} can be built from no request: declare it under "
                f"spine.request_fields, or derive it under spine.derived_keys (e.g. {key}: '{{field}}-{{other}}')"
            )
    clash = sorted(fields.intersection(features) | set(spec.spine.derived_keys).intersection(features))
    if clash:
        problems.append(
            f"spine.request_fields: {clash} are also features of {spec.feature_service!r}; "
            "rename the request fields (a model input must have one source)"
        )
    return problems


def _columns(con: Any, table: str) -> dict[str, str]:
    return {row[0]: str(row[1]) for row in con.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()}


def check_spine_table(spec: ProjectSpec, offline_dir: Path) -> list[str]:
    """The spine's table: it exists, holds the columns the spec names, and the label has the task's type."""
    path = offline_dir / f"{spec.spine.table}.parquet"
    if not path.exists():
        return [
            f"spine.table: {spec.spine.table!r} is not in the offline store ({path} does not exist); "
            "prepare the data first (`featureloop prepare`) or name a table that is there"
        ]
    table = f"read_parquet({quote_literal(str(path))})"
    problems = []
    with session() as con:
        columns = _columns(con, table)
        spine = spec.spine
        wanted = {
            "spine.id": [spine.id],
            "spine.time": [spine.time],
            "spine.entity_keys": [k for k in spine.entity_keys if k not in spine.derived_keys],
            "spine.request_fields": spine.request_features,
            "task.outcome_known.column": [spec.task.outcome_known.column]
            if spec.task.outcome_known.column
            else [],
        }
        for where, names in wanted.items():
            absent = [n for n in names if n not in columns]
            if absent:
                problems.append(f"{where}: {absent} not in the columns of {path.name} ({sorted(columns)})")
        if spine.time in columns and "TIME" not in columns[spine.time].upper():
            problems.append(f"spine.time: {spine.time!r} is a {columns[spine.time]}, not a timestamp")
        try:
            kind = con.execute(f"SELECT typeof({spec.task.label}) FROM {table} LIMIT 1").fetchone()
        except Exception as exc:  # DuckDB names the missing column or the syntax error
            first = str(exc).splitlines()[0]
            return [
                *problems,
                f"task.label: {spec.task.label!r} cannot be computed over {path.name}: {first}",
            ]
        label_type = kind[0] if kind else "NULL"
        if spec.task.type == "binary" and label_type != "BOOLEAN":
            problems.append(
                f"task.label: a binary task needs a true/false expression; {spec.task.label!r} gives {label_type} "
                "(write a comparison, e.g. days_to_pay > 30)"
            )
        numeric = ("INT", "DOUBLE", "FLOAT", "DECIMAL", "REAL", "BIGINT", "HUGEINT", "SMALLINT", "TINYINT")
        if spec.task.type == "regression" and not label_type.upper().startswith(numeric):
            problems.append(
                f"task.label: a regression task needs a number; {spec.task.label!r} gives {label_type}"
            )
    return problems


def check_project(spec: ProjectSpec, store: FeatureStore, offline_dir: Path) -> list[str]:
    """Every problem of the spec against the registry and the spine's table."""
    contract = service_contract(store, spec.feature_service)
    if isinstance(contract, str):
        return [contract, *check_spine_table(spec, offline_dir)]
    keys, features = contract
    return [*check_against_registry(spec, keys, features), *check_spine_table(spec, offline_dir)]
