"""Replaying history against the running loop: the prediction requests a product service would have
sent, hour by hour, and an online store that is as fresh at each hour as production keeps it.

Serving answers from the online store, so a replay must load it as time passes, as the scheduled
`materialize` deployment does in production: weather is hourly (TTL 3 hours) and the rolling
statistics change every time a flight lands, so a store loaded once a week would serve week-old or
expired features. Before the requests of each step, `OnlineFeed` writes, for every entity those
requests will read, the latest offline row at or before the step's start: exactly what an hourly
materialisation would hold for them (rows chosen by one DuckDB ASOF join per view, with Feast's
tie-break on the created time; bytes written by the engine's SQLite writer, never an older value
over a newer one). Entities nobody asks about in a step are not rewritten: that is what keeps a
year of hourly steps within seconds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

if TYPE_CHECKING:
    from feast import FeatureStore

REQUEST_COLUMNS = (
    "flight_id",
    "tailnum",
    "origin",
    "dest",
    "carrier",
    "distance",
    "sched_hour",
    "day_of_week",
)


def steps(start: datetime, end: datetime, step: timedelta) -> Iterator[datetime]:
    """start, start + step, ... up to (not including) end."""
    t = start
    while t < end:
        yield t
        t += step


class Requests:
    """The flights scheduled in [start, end), as /predict rows, grouped by replay step; with `share`
    below 1, a fixed sample of them (by a hash of the flight id: the same flights every run)."""

    def __init__(
        self, flights: pd.DataFrame, start: datetime, end: datetime, step: timedelta, share: float = 1.0
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], not {share}")
        sched = flights["sched_dep_ts"]
        keep = (sched >= pd.Timestamp(start)) & (sched < pd.Timestamp(end))
        if share < 1:
            hashed = pd.util.hash_pandas_object(flights["flight_id"], index=False).to_numpy()
            keep &= (hashed % 1_000_000) < share * 1_000_000
        due = flights[keep].sort_values("sched_dep_ts", kind="stable")
        stamps = due["sched_dep_ts"].dt.tz_convert(UTC)
        seconds = stamps.to_numpy(dtype="datetime64[s]")
        self.start, self.step = start, step
        self.index = ((stamps - pd.Timestamp(start)) // step).to_numpy(dtype=np.int64)
        columns = {
            "flight_id": due["flight_id"].tolist(),
            "tailnum": due["tailnum"].astype(object).where(due["tailnum"].notna(), None).tolist(),
            "origin": due["origin"].tolist(),
            "dest": due["dest"].tolist(),
            "carrier": due["carrier"].tolist(),
            "distance": due["distance"].astype(float).tolist(),
            "sched_hour": due["sched_hour"].astype(int).tolist(),
            "day_of_week": due["day_of_week"].astype(int).tolist(),
            "event_timestamp": np.char.add(np.datetime_as_string(seconds, unit="s"), "+00:00").tolist(),
        }
        names = list(columns)
        self.rows: list[dict[str, Any]] = [
            dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)
        ]
        # The keys serving reads, per step (serving reads an unknown aircraft as "").
        self.keys = pa.table(
            {
                "step": self.index,
                "step_time": pd.Timestamp(start) + self.index * pd.Timedelta(step),
                "tailnum": due["tailnum"].fillna("").to_numpy(dtype=object),
                "origin": due["origin"].to_numpy(dtype=object),
                "carrier": due["carrier"].to_numpy(dtype=object),
                "route": (due["origin"] + "-" + due["dest"]).to_numpy(dtype=object),
            }
        )

    def __len__(self) -> int:
        return len(self.rows)

    def at(self, step: int) -> list[dict[str, Any]]:
        """The flights of step `step` (scheduled in [start + step * step, ...+ step))."""
        lo, hi = np.searchsorted(self.index, [step, step + 1], side="left")
        return self.rows[int(lo) : int(hi)]


@dataclass
class _ViewRows:
    view: Any
    table: str
    rows: pa.Table
    steps: np.ndarray  # the step each row is written before, ascending
    early: np.ndarray  # the row's entity is not read in the step before: it may be written meanwhile


class OnlineFeed:
    """Before each step, writes the latest value as of the step's start of every entity the step's
    requests read, into Feast's SQLite online store."""

    def __init__(self, store: FeatureStore, requests: Requests) -> None:

        from featureloop.featurestore.codec import sqlite_table
        from featureloop.sql import quote_identifier as q
        from featureloop.sql import quote_literal, session

        online = store.config.online_store
        if getattr(online, "type", None) != "sqlite":
            raise ValueError("the replay feed writes Feast's SQLite online store (the embedded profile)")
        path = Path(online.path)
        if not path.is_absolute() and store.config.repo_path is not None:
            path = Path(store.config.repo_path) / path
        # Its own connection, without fsync per commit: the store is a cache of the offline tables,
        # and a replay that dies is rerun from the start, which rebuilds it.
        # (Used by one thread at a time: the replay writes a step's early rows from a worker thread.)
        self._connection = sqlite3.connect(path, timeout=30, check_same_thread=False)
        self._connection.execute("PRAGMA synchronous = OFF")
        self.views: list[_ViewRows] = []
        self.service_views = {
            p.name for fs in store.list_feature_services() for p in fs.feature_view_projections
        }
        with session() as con:
            con.register("requests", requests.keys)
            for fv in store.list_feature_views():
                if fv.name not in self.service_views:
                    continue
                source: Any = fv.batch_source
                keys = [c.name for c in fv.entity_columns]
                ts, created = source.timestamp_field, source.created_timestamp_column
                columns = [*keys, *(f.name for f in fv.features), ts, *([created] if created else [])]
                # One row per key and event time: the latest created (Feast's tie-break).
                latest = (
                    f"QUALIFY row_number() OVER (PARTITION BY {', '.join(q(k) for k in [*keys, ts])} "
                    f"ORDER BY {q(created)} DESC NULLS LAST) = 1"
                    if created
                    else ""
                )
                on = " AND ".join(f"n.{q(k)} = r.{q(k)}" for k in keys)
                key_list = ", ".join(f"n.{q(k)}" for k in keys)
                previous = " AND ".join(f"p.{q(k)} = w.{q(k)}" for k in keys)
                rows = con.sql(
                    f"WITH needs AS (SELECT DISTINCT step, step_time, {', '.join(q(k) for k in keys)} FROM requests), "
                    f"feature_rows AS (SELECT {', '.join(q(c) for c in columns)} "
                    f"FROM read_parquet({quote_literal(str(source.path))}) {latest}), "
                    f"written AS (SELECT n.step, {', '.join(f'r.{q(c)}' for c in columns)} "
                    f"FROM needs n ASOF JOIN feature_rows r ON {on} AND n.step_time >= r.{q(ts)} "
                    # A value already written at an earlier step is not written again.
                    f"QUALIFY r.{q(ts)} IS DISTINCT FROM lag(r.{q(ts)}) OVER (PARTITION BY {key_list} ORDER BY n.step)) "
                    # Early: nobody reads the entity in the step before, so the row can be written
                    # while that step's requests are answered.
                    f"SELECT w.*, p.step IS NULL AS early FROM written w "
                    f"LEFT JOIN needs p ON p.step = w.step - 1 AND {previous} "
                    f"ORDER BY w.step, w.{q(ts)}"
                ).to_arrow_table()
                step_column = rows.column("step").to_numpy()
                early = rows.column("early").to_numpy(zero_copy_only=False)
                self.views.append(
                    _ViewRows(
                        fv,
                        sqlite_table(store.config.project, fv),
                        rows.drop(["step", "early"]),
                        step_column,
                        early,
                    )
                )

    def rows(self) -> int:
        """How many rows the whole replay writes."""
        return sum(v.rows.num_rows for v in self.views)

    def before(self, step: int, part: Literal["all", "early", "late"] = "all") -> int:
        """Write the rows step `step` needs, in one transaction; returns how many. `early`: only those
        whose entity the step before does not read (safe to write while it is being answered);
        `late`: the others (after it was answered)."""
        from featureloop.featurestore.sqlite_writer import upsert_sqlite_rows

        written = 0
        with self._connection:
            for v in self.views:
                lo, hi = (int(x) for x in np.searchsorted(v.steps, [step, step + 1], side="left"))
                if hi == lo:
                    continue
                rows = v.rows.slice(lo, hi - lo)
                if part != "all":
                    keep = v.early[lo:hi] if part == "early" else ~v.early[lo:hi]
                    if not keep.any():
                        continue
                    rows = rows.filter(pa.array(keep))
                written += upsert_sqlite_rows(self._connection, v.table, v.view, rows)
        return written

    def close(self) -> None:
        self._connection.close()
