"""Point-in-time-correct rolling delay statistics per entity, computed with DuckDB.

A flight's outcome becomes known at `outcome_known_ts` (when it reaches the gate: data/arrival.py).
For an entity (a carrier, route, origin airport or aircraft) the statistics over a trailing window
`w` at time `t` use exactly the flights whose outcome was known in `(t - w, t]`. They only change
when a flight's outcome arrives or leaves a window, so one row per change point (`known`, `known + w`
for every window) describes them exactly: Feast's point-in-time join (latest row at or before `t`)
then returns the exact value for any `t`, never a value that uses a flight not yet at the gate at `t`.
All sums are integer minutes and counts, so the output is identical run after run.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

WINDOWS: dict[str, str] = {"1h": "1 HOUR", "24h": "24 HOUR", "7d": "7 DAY"}
DELAYED_MINUTES = 15


@dataclass(frozen=True)
class RollingSpec:
    """Rolling statistics for one entity: its join key and the prefix of its feature names."""

    key: str
    prefix: str
    table: str


ROLLING: tuple[RollingSpec, ...] = (
    RollingSpec(key="carrier", prefix="carrier", table="carrier_stats"),
    RollingSpec(key="route", prefix="route", table="route_stats"),
    RollingSpec(key="origin", prefix="origin", table="origin_stats"),
    RollingSpec(key="tailnum", prefix="aircraft", table="aircraft_stats"),
)


def rolling_feature_names(prefix: str) -> list[str]:
    """Feature names of one entity's rolling statistics, in table order."""
    return [
        f"{prefix}_{stat}_{window}"
        for window in WINDOWS
        for stat in ("flights", "dep_delay_mean", "delayed_share")
    ]


def rolling_sql(spec: RollingSpec, flights: str = "flights") -> str:
    """SQL that turns a flights relation into one entity's change-point statistics table."""
    offsets = " UNION ".join(
        ["SELECT key, ts FROM grouped"]
        + [f"SELECT key, ts + INTERVAL {interval} FROM grouped" for interval in WINDOWS.values()]
    )
    joins, columns = [], []
    for name, interval in WINDOWS.items():
        joins.append(
            f"ASOF LEFT JOIN cum AS lo_{name} ON p.key = lo_{name}.key "
            f"AND p.ts - INTERVAL {interval} >= lo_{name}.ts"
        )
        n = f"(hi.n - coalesce(lo_{name}.n, 0))"
        columns += [
            f"{n}::INTEGER AS {spec.prefix}_flights_{name}",
            f"CASE WHEN {n} > 0 THEN (hi.dep - coalesce(lo_{name}.dep, 0)) / {n} END "
            f"AS {spec.prefix}_dep_delay_mean_{name}",
            f"CASE WHEN {n} > 0 THEN (hi.late - coalesce(lo_{name}.late, 0)) / {n} END "
            f"AS {spec.prefix}_delayed_share_{name}",
        ]
    return f"""
    WITH grouped AS (
        SELECT {spec.key} AS key, outcome_known_ts AS ts,
               count(*)::BIGINT AS n,
               sum(dep_delay)::BIGINT AS dep,
               sum((arr_delay > {DELAYED_MINUTES})::INTEGER)::BIGINT AS late
        FROM {flights}
        WHERE outcome_known_ts IS NOT NULL AND {spec.key} IS NOT NULL
        GROUP BY ALL
    ),
    cum AS (
        SELECT key, ts,
               sum(n) OVER w AS n, sum(dep) OVER w AS dep, sum(late) OVER w AS late
        FROM grouped
        WINDOW w AS (PARTITION BY key ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    ),
    points AS ({offsets})
    SELECT p.key AS {spec.key}, p.ts AS event_timestamp, {", ".join(columns)}
    FROM points AS p
    ASOF LEFT JOIN cum AS hi ON p.key = hi.key AND p.ts >= hi.ts
    {" ".join(joins)}
    ORDER BY {spec.key}, event_timestamp
    """


def compute_rolling(flights: pd.DataFrame, spec: RollingSpec) -> pd.DataFrame:
    """One entity's rolling statistics from a flights frame with `outcome_known_ts`."""
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.register("flights", flights)
        return con.sql(rolling_sql(spec)).df()
