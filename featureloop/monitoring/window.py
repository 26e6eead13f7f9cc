"""The window of a drift run: which served predictions to check, and reading them.

`resolve_window` picks [start, end) (by default `window_hours` up to the newest plausible served row),
`read_window` reads every row served in it, once, whichever version answered it (input drift is a
property of the data; decay, a property of one model, keeps the champion's own rows: `champion_rows`). `NoWindow` says there is nothing to
check (no champion, no prediction log, no plausible row): a named outcome, not a failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from featureloop.params import DriftParams
from featureloop.settings import Settings

if TYPE_CHECKING:
    import pyarrow as pa


class NoWindow(RuntimeError):
    """There is nothing to check (no champion, no prediction log); the message says what to do."""


@dataclass(frozen=True)
class Window:
    """[start, end) of a drift run, and the logged rows whose prediction time lies outside the
    accepted range (see featureloop.event_time): ignored, counted, reported."""

    start: datetime
    end: datetime
    out_of_range: int = 0


def resolve_window(settings: Settings, params: DriftParams, now: datetime | None = None) -> Window:
    """The window to check; the default end is just after the newest served row whose prediction
    time is plausible: within the accepted range, and not further ahead of the server's clock when
    it was served (`served_at`) than the range allows. A hostile row cannot move the window."""

    from featureloop.sql import quote_literal, session

    log_dir = settings.prediction_log_dir
    if not any(log_dir.rglob("*.parquet")):
        raise NoWindow(f"no prediction log under {log_dir}: serve some predictions first")
    bounds = settings.event_time_bounds
    now = now or datetime.now(UTC)
    source = f"read_parquet({quote_literal(str(log_dir / '**' / '*.parquet'))}, union_by_name = true)"
    with session() as con:
        columns = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
        if "event_timestamp" not in columns:
            raise NoWindow(f"the prediction log under {log_dir} has no event_timestamp column")
        # epoch() differences: served_at + the allowance could overflow on a hostile served_at.
        served = (
            f" AND (served_at IS NULL OR epoch(event_timestamp) - epoch(served_at) <= "
            f"{bounds.max_ahead.total_seconds()})"
            if "served_at" in columns
            else ""
        )
        plausible = (
            f"event_timestamp >= {quote_literal(bounds.earliest.isoformat())}::TIMESTAMPTZ "
            f"AND event_timestamp <= {quote_literal(bounds.latest(now).isoformat())}::TIMESTAMPTZ{served}"
        )
        newest, out_of_range = con.execute(
            f"SELECT max(event_timestamp) FILTER (WHERE {plausible}), "
            f"count(*) FILTER (WHERE NOT coalesce({plausible}, false)) FROM {source}"
        ).fetchall()[0]
    end = params.window_end
    if end is None:
        if newest is None:
            raise NoWindow(
                f"no served row under {log_dir} has a prediction time in the accepted range "
                f"({out_of_range:,} rows lie outside it or have none; see FEATURELOOP_EVENT_TIME_*): "
                "serve some predictions, or give the window explicitly"
            )
        # Just after the newest row, on a whole second (the window end is exclusive).
        end = newest.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
    try:
        start = params.window_start or end - timedelta(hours=params.window_hours)
    except OverflowError:  # a window longer than the calendar: all of it
        start = datetime.min.replace(tzinfo=UTC)
    return Window(start, end, int(out_of_range))


def read_window(settings: Settings, start: datetime, end: datetime) -> pa.Table:
    """Every prediction log row served in [start, end), by any version (champion or canary), read once
    (one scan of the log's files; both checks work on it in memory). A window right after a
    promotion holds its predecessor's rows too: the inputs drifted or not, whoever scored them."""
    from featureloop.monitoring.comparison import log_window
    from featureloop.sql import session

    relation = log_window(settings.prediction_log_dir, start, end)
    with session() as con:
        return con.sql(f"SELECT * FROM {relation}").to_arrow_table()


def champion_rows(window: pa.Table, version: str) -> pa.Table:
    """The rows `version` answered as champion (decay judges a model on its own predictions: not its
    predecessor's, not a canary's)."""
    import pyarrow.compute as pc

    if "model_version" not in window.column_names:
        return window.slice(0, 0)
    mask = pc.equal(window["model_version"].cast("string"), version)
    if "role" in window.column_names:
        mask = pc.and_(mask, pc.equal(pc.fill_null(window["role"].cast("string"), "champion"), "champion"))
    return window.filter(pc.fill_null(mask, False))


def rows_by_version(window: pa.Table) -> dict[str, int]:
    """How many of the window's rows each version answered ("?" for rows without one)."""
    import pyarrow.compute as pc

    if "model_version" not in window.column_names:
        return {"?": window.num_rows} if window.num_rows else {}
    versions = pc.if_else(pc.equal(window["model_version"].cast("string"), ""), None, window["model_version"])
    counts = pc.fill_null(versions.cast("string"), "?").value_counts().to_pylist()
    return {str(c["values"]): int(c["counts"]) for c in sorted(counts, key=lambda c: str(c["values"]))}
