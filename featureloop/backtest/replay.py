"""Replaying history against the running loop: the prediction requests a product service would have
sent, hour by hour, and an online store that is as fresh at each hour as production keeps it.

Serving answers from the online store, so a replay must load it as time passes, as the scheduled
`materialize` deployment does in production: features change by the hour (the worked example's
weather, with a TTL of 3 hours, and rolling statistics that change every time a flight lands), so a
store loaded once a week would serve week-old or expired features. Before the requests of each step, `OnlineFeed` writes, for every entity those
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

    from featureloop.project.spec import ProjectSpec


def steps(start: datetime, end: datetime, step: timedelta) -> Iterator[datetime]:
    """start, start + step, ... up to (not including) end."""
    t = start
    while t < end:
        yield t
        t += step


def _json_ready(values: pd.Series, kind: str) -> list[Any]:
    """A spine column as /predict sends it: None where missing, plain Python values otherwise."""
    if kind == "timestamp":
        stamps = pd.to_datetime(values, utc=True)
        return [None if pd.isna(t) else t.isoformat() for t in stamps]
    if kind in ("int", "bool") and not values.isna().any():
        return values.astype(int if kind == "int" else bool).tolist()
    if kind == "float":
        return [None if pd.isna(v) else float(v) for v in values.tolist()]
    return values.astype(object).where(values.notna(), None).tolist()


class Requests:
    """The spine's prediction events in [start, end), as /predict rows (the project's request fields,
    its id, the prediction time as `event_timestamp`), grouped by replay step; with `share` below 1, a
    fixed sample of them (by a hash of the id: the same rows every run)."""

    def __init__(
        self,
        spine: pd.DataFrame,
        spec: ProjectSpec,
        start: datetime,
        end: datetime,
        step: timedelta,
        share: float = 1.0,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], not {share}")
        time_column, id_column = spec.spine.time, spec.spine.id
        times = spine[time_column]
        keep = (times >= pd.Timestamp(start)) & (times < pd.Timestamp(end))
        if share < 1:
            hashed = pd.util.hash_pandas_object(spine[id_column], index=False).to_numpy()
            keep &= (hashed % 1_000_000) < share * 1_000_000
        due = spine[keep].sort_values(time_column, kind="stable")
        stamps = due[time_column].dt.tz_convert(UTC)
        seconds = stamps.to_numpy(dtype="datetime64[s]")
        self.start, self.step = start, step
        self.index = ((stamps - pd.Timestamp(start)) // step).to_numpy(dtype=np.int64)
        columns = {id_column: due[id_column].astype(str).tolist()}
        for field in spec.spine.request_fields:
            columns[field.name] = _json_ready(due[field.name], field.type)
        columns["event_timestamp"] = np.char.add(np.datetime_as_string(seconds, unit="s"), "+00:00").tolist()
        names = list(columns)
        self.rows: list[dict[str, Any]] = [
            dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)
        ]
        # The keys serving reads, per step: an absent optional text key reads as "" (no entity), a
        # derived key is built by its template, as serving builds them.
        keys: dict[str, Any] = {
            "step": self.index,
            "step_time": pd.Timestamp(start) + self.index * pd.Timedelta(step),
        }
        derived = spec.spine.derived_keys
        for key in spec.spine.entity_keys:
            if key in derived:
                template = derived[key]
                keys[key] = np.array([template.format_map(row) for row in self.rows], dtype=object)
            else:
                keys[key] = due[key].astype(object).where(due[key].notna(), "").to_numpy(dtype=object)
        self.keys = pa.table(keys)

    def __len__(self) -> int:
        return len(self.rows)

    def at(self, step: int) -> list[dict[str, Any]]:
        """The rows of step `step` (prediction times in [start + step * step, ...+ step))."""
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
        from featureloop.featurestore.dummy import DUMMY_ENTITY_ID, key_select, real_keys
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
        self._store = store
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
                # An entity-less view: Feast's dummy entity (the registry's copy lists no column).
                keys = [c.name for c in fv.entity_columns] or [DUMMY_ENTITY_ID]
                ts, created = source.timestamp_field, source.created_timestamp_column
                columns = [*(f.name for f in fv.features), ts, *([created] if created else [])]
                # An entity-less view's key is Feast's dummy entity (featurestore.dummy): no column.
                key_sql = ", ".join(key_select(k) for k in keys)
                # One row per key and event time: the latest created (Feast's tie-break).
                latest = (
                    f"QUALIFY row_number() OVER (PARTITION BY {', '.join(q(k) for k in [*real_keys(keys), ts])} "
                    f"ORDER BY {q(created)} DESC NULLS LAST) = 1"
                    if created
                    else ""
                )
                on = " AND ".join(f"n.{q(k)} = r.{q(k)}" for k in keys)
                key_list = ", ".join(f"n.{q(k)}" for k in keys)
                previous = " AND ".join(f"p.{q(k)} = w.{q(k)}" for k in keys)
                rows = con.sql(
                    f"WITH needs AS (SELECT DISTINCT step, step_time, {key_sql} FROM requests), "
                    f"feature_rows AS (SELECT {key_sql}, {', '.join(q(c) for c in columns)} "
                    f"FROM read_parquet({quote_literal(str(source.path))}) {latest}), "
                    f"written AS (SELECT n.step, {', '.join(f'r.{q(c)}' for c in [*keys, *columns])} "
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

    def materialize(self, end: datetime) -> list[dict[str, Any]]:
        """Every service view's rows up to `end` loaded as the scheduled `materialize` run loads them
        (incremental: from the end of the view's last interval), the interval recorded in Feast's
        registry. The steps write only the entities their requests read; after this, every entity
        holds its value as of `end`, so a skew check compares the whole store with what Feast
        says was materialised, and a mismatch is a true one."""
        from featureloop.featurestore.materialization import load_windows
        from featureloop.steps import PlainSteps

        views = sorted(self.service_views)
        return load_windows(self._store, PlainSteps(), end, overlap=timedelta(0), feature_views=views)

    def close(self) -> None:
        self._connection.close()
