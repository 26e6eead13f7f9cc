"""A release stage's evidence, read from the prediction log (every row serving answered while a
challenger was in a stage records `release_version` and `release_stage`) and joined with the
outcomes known by the release clock (the delayed labels of `monitoring.decay`).

Shadow: the champion answered every row and the challenger scored the same rows (`shadow_prediction`,
its latency in `shadow_latency_ms`; a failure in `challenger_error`). Canary: the challenger answered
its share (`role` canary) and the champion scored those rows for the log (`shadow_prediction`), so
both stages compare the versions on the same rows; a canary failure handed its rows to the champion
and is recorded on them (`challenger_error`). Latency: the challenger's own answers against the
champion's. The last row served for an id counts, as in decay.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np

from featureloop.release.judge import Evidence, Side
from featureloop.release.tags import SHADOW
from featureloop.sql import quote_identifier, quote_literal, session

OPTIONAL = ("challenger_error", "shadow_prediction", "shadow_latency_ms", "role")


def gather(
    log_dir: Path,
    outcomes: str,
    id_column: str,
    version: str,
    stage: str,
    as_of: datetime,
    began: datetime,
) -> Evidence:
    """The evidence of `version`'s `stage` since it `began` on the release clock (rows whose prediction
    time is at or after it: not those of an earlier release of the same version, or of an operator's
    switch), by `as_of` (`outcomes`: `monitoring.decay.outcomes_sql`)."""
    elapsed = as_of - began
    empty = Side("?", 0, 0, None, np.array([]), np.array([]), np.array([]))
    pattern = quote_literal(str(log_dir / "**" / "*.parquet"))
    if not any(log_dir.rglob("*.parquet")):
        return Evidence(stage, 0, elapsed, empty, empty, stage == SHADOW)
    with session() as con:
        source = f"read_parquet({pattern}, union_by_name = true)"
        columns = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
        if "release_version" not in columns:
            return Evidence(stage, 0, elapsed, empty, empty, stage == SHADOW)
        present = ", ".join(
            [quote_identifier(c) for c in OPTIONAL if c in columns]
            + [f"NULL AS {c}" for c in OPTIONAL if c not in columns]
        )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE stage AS SELECT {quote_identifier(id_column)} AS __id, served_at, "
            f"model_version::VARCHAR AS model_version, prediction, latency_ms, {present} FROM {source} "
            f"WHERE release_version = {quote_literal(version)} AND release_stage = {quote_literal(stage)} "
            f"AND event_timestamp >= {quote_literal(began.isoformat())}::TIMESTAMPTZ"
        )
        known = f"f.__label IS NOT NULL AND f.__known_at <= {quote_literal(as_of.isoformat())}::TIMESTAMPTZ"
        if stage == SHADOW:
            return _shadow(con, outcomes, known, version, elapsed)
        return _canary(con, outcomes, known, version, elapsed)


def _shadow(
    con: duckdb.DuckDBPyConnection, outcomes: str, known: str, version: str, elapsed: timedelta
) -> Evidence:
    served, errors, p99_a, p99_b, champion = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE challenger_error IS NOT NULL), "
        "quantile_cont(latency_ms, 0.99), quantile_cont(shadow_latency_ms, 0.99), mode(model_version) "
        "FROM stage"
    ).fetchall()[0]
    latest = (
        "(SELECT __id, prediction AS a, shadow_prediction AS b FROM stage WHERE __id IS NOT NULL "
        "QUALIFY row_number() OVER (PARTITION BY __id ORDER BY served_at DESC) = 1)"
    )
    both = con.execute(f"SELECT a, b FROM {latest} WHERE b IS NOT NULL").fetchnumpy()
    labelled = con.execute(
        f"SELECT f.__label::DOUBLE AS y, s.a, s.b FROM {latest} s JOIN {outcomes} f USING (__id) "
        f"WHERE s.b IS NOT NULL AND {known} ORDER BY s.__id"
    ).fetchnumpy()
    y = _floats(labelled["y"])
    return Evidence(
        SHADOW,
        int(served),
        elapsed,
        Side(
            str(champion or "?"), int(served), 0, _maybe(p99_a), _floats(both["a"]), y, _floats(labelled["a"])
        ),
        Side(version, int(served), int(errors), _maybe(p99_b), _floats(both["b"]), y, _floats(labelled["b"])),
        paired=True,
    )


def _canary(
    con: duckdb.DuckDBPyConnection, outcomes: str, known: str, version: str, elapsed: timedelta
) -> Evidence:
    side = (
        "CASE WHEN role = 'canary' THEN 'challenger' "
        "WHEN challenger_error IS NULL THEN 'champion' END"  # a failed canary's rows belong to neither
    )
    served, asked, errors, p99_champion, p99_canary, champion = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE role = 'canary' OR challenger_error IS NOT NULL), "
        "count(*) FILTER (WHERE challenger_error IS NOT NULL), "
        "quantile_cont(latency_ms, 0.99) FILTER (WHERE role <> 'canary' AND challenger_error IS NULL), "
        "quantile_cont(latency_ms, 0.99) FILTER (WHERE role = 'canary'), "
        "mode(model_version) FILTER (WHERE role <> 'canary') FROM stage"
    ).fetchall()[0]
    champion_side = Side(str(champion or "?"), int(served) - int(asked), 0, _maybe(p99_champion),
                         np.array([]), np.array([]), np.array([]))  # fmt: skip
    # The champion scored the canary's rows too (for the log): compared on the same rows.
    latest = (
        "(SELECT __id, shadow_prediction AS a, prediction AS b FROM stage WHERE __id IS NOT NULL "
        "AND role = 'canary' QUALIFY row_number() OVER (PARTITION BY __id ORDER BY served_at DESC) = 1)"
    )
    both = con.execute(f"SELECT a, b FROM {latest} WHERE a IS NOT NULL").fetchnumpy()
    if len(both["a"]):
        labelled = con.execute(
            f"SELECT f.__label::DOUBLE AS y, s.a, s.b FROM {latest} s JOIN {outcomes} f USING (__id) "
            f"WHERE s.a IS NOT NULL AND {known} ORDER BY s.__id"
        ).fetchnumpy()
        y = _floats(labelled["y"])
        return Evidence(
            "canary",
            int(served),
            elapsed,
            replace(champion_side, predictions=_floats(both["a"]), labels=y, labelled=_floats(labelled["a"])),
            Side(
                version,
                int(asked),
                int(errors),
                _maybe(p99_canary),
                _floats(both["b"]),
                y,
                _floats(labelled["b"]),
            ),
            paired=True,
        )
    # Without the champion's scores of any canary row (its shadow scoring failed on every one,
    # `shadow_error`): each version on its own rows, unpaired.
    latest = (
        f"(SELECT __id, {side} AS side, prediction FROM stage WHERE __id IS NOT NULL AND ({side}) IS NOT NULL "
        "QUALIFY row_number() OVER (PARTITION BY __id ORDER BY served_at DESC) = 1)"
    )
    sides = {}
    for name in ("champion", "challenger"):
        mine = f"(SELECT * FROM {latest} WHERE side = '{name}')"
        predictions = con.execute(f"SELECT prediction FROM {mine}").fetchnumpy()["prediction"]
        labelled = con.execute(
            f"SELECT f.__label::DOUBLE AS y, s.prediction FROM {mine} s JOIN {outcomes} f USING (__id) WHERE {known}"
        ).fetchnumpy()
        sides[name] = (_floats(predictions), _floats(labelled["y"]), _floats(labelled["prediction"]))
    return Evidence(
        "canary",
        int(served),
        elapsed,
        replace(
            champion_side,
            predictions=sides["champion"][0],
            labels=sides["champion"][1],
            labelled=sides["champion"][2],
        ),
        Side(version, int(asked), int(errors), _maybe(p99_canary), *sides["challenger"]),
        paired=False,
    )


def _floats(values: object) -> np.ndarray:
    return np.asarray(values, dtype=float)


def _maybe(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]
