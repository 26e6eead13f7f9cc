"""Loading the online store from the offline store: which window each view loads, the loads, the counts.

The materialisation pipeline (`materialize_online`) is written once here and run by both entry
points through a step runner (featureloop.steps): `featureloop materialize` with `PlainSteps` (every
view's values as of an end), the Prefect flow `materialize` with `PrefectSteps` (incremental: each
view continues from where its last run ended, each view's load a task with retries). Every load is an
upsert of the same rows, so overlapping windows and reruns leave the same online store.
`materialize_window` is the same load as a plain call (tests, benchmarks, the replay).
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from featureloop.steps import PlainSteps, Steps

if TYPE_CHECKING:  # Feast takes seconds to import: only where a step needs it.
    from feast import FeatureStore
    from feast.feature_view import FeatureView

START_OF_TIME = datetime(1970, 1, 1, tzinfo=UTC)


class Window(NamedTuple):
    """What one view loads: [start, end], and why (the incremental plan says; None for a load as of
    `end`)."""

    view: str
    start: datetime
    end: datetime
    why: str | None


def check_end(end: datetime, latest: datetime) -> None:
    """Refuse a materialisation end after `latest` (the clock plus the accepted allowance): Feast
    records each window's end in the registry, and every later incremental run starts there."""
    if end > latest:
        raise ValueError(
            f"end {end.isoformat()} is after {latest.isoformat(timespec='seconds')}, the latest time "
            "accepted (this machine's clock plus FEATURELOOP_EVENT_TIME_MAX_AHEAD_SECONDS): Feast would "
            "record it and every later incremental materialisation would start there; use an earlier end"
        )


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _checked_views(store: FeatureStore, feature_views: list[str] | None) -> dict[str, FeatureView]:
    """The registry's views by name, in the registry's order, after refusing unknown names."""
    views = {fv.name: fv for fv in store.list_feature_views()}
    unknown = sorted(set(feature_views or []) - set(views))
    if unknown:
        raise ValueError(f"unknown feature views {unknown}; known: {sorted(views)}")
    return views


def _ttl_start(view: FeatureView, end: datetime) -> datetime:
    """Where a load as of `end` starts: `end - ttl`, the values an online read can use at `end` (a
    view without a TTL: the start of time)."""
    ttl = view.ttl or timedelta(0)
    return end - ttl if ttl > timedelta(0) else START_OF_TIME


def windows_as_of(
    store: FeatureStore,
    end: datetime,
    *,
    start: datetime | None = None,
    feature_views: list[str] | None = None,
) -> list[Window]:
    """Per view (in the registry's order), the window that loads its latest values as of `end`:
    [start, end] with `start`, else [end - ttl, end]."""
    end = _utc(end)
    if start is not None:
        start = _utc(start)
        if start >= end:
            raise ValueError(f"start {start.isoformat()} must be before end {end.isoformat()}: swap them")
    views = _checked_views(store, feature_views)
    return [
        Window(name, start or _ttl_start(fv, end), end, None)
        for name, fv in views.items()
        if feature_views is None or name in feature_views
    ]


def incremental_windows(
    store: FeatureStore,
    end: datetime,
    *,
    overlap: timedelta = timedelta(hours=1),
    start: datetime | None = None,
    feature_views: list[str] | None = None,
) -> list[Window]:
    """Per view, the window the next materialisation loads, and why.

    With `start` (backfill), every view loads [start, end]. Otherwise each view continues from the
    end of its last materialised interval minus `overlap` (late rows are picked up again; writing a
    row twice gives the same online store); a view never materialised loads [end - TTL, end], the
    values an online read can use at `end` (a view without TTL: from the start of time)."""
    end = _utc(end)
    names = _checked_views(store, feature_views)
    windows = []
    for name in feature_views or sorted(names):
        fv = names[name]
        if start is not None:
            windows.append(Window(name, start, end, "backfill"))
            continue
        ends = [_utc(e) for _, e in fv.materialization_intervals]
        if ends:
            begin, why = max(ends) - overlap, f"incremental from {max(ends).isoformat()} - {overlap}"
        else:
            begin, why = _ttl_start(fv, end), "first load: end - TTL"
        if begin >= end:
            windows.append(Window(name, end, end, "up to date"))
        else:
            windows.append(Window(name, begin, end, why))
    return windows


def load_view(store: FeatureStore, window: Window) -> dict[str, Any]:
    """One view's window into the online store (a retry reloads the same window: idempotent)."""
    with contextlib.redirect_stdout(sys.stderr):
        store.materialize(start_date=window.start, end_date=window.end, feature_views=[window.view])
    loaded = {"feature_view": window.view, "start": window.start.isoformat(), "end": window.end.isoformat()}
    return loaded if window.why is None else {**loaded, "why": window.why}


def online_counts(store: FeatureStore) -> dict[str, int]:
    """Entities per feature view in a SQLite online store (empty for other stores)."""
    from featureloop.featurestore.codec import sqlite_table

    config = store.config
    if getattr(config.online_store, "type", None) != "sqlite":
        return {}
    path = Path(config.online_store.path)
    if not path.is_absolute() and config.repo_path is not None:
        path = Path(config.repo_path) / path
    if not path.exists():
        return {}
    counts = {}
    with contextlib.closing(sqlite3.connect(path)) as con:
        for fv in store.list_feature_views():
            try:
                (n,) = con.execute(
                    f"SELECT count(DISTINCT entity_key) FROM {sqlite_table(config.project, fv)}"
                ).fetchone()
            except sqlite3.OperationalError:
                n = 0
            counts[fv.name] = int(n)
    return counts


def load_windows(
    store: FeatureStore,
    steps: Steps,
    end: datetime,
    *,
    start: datetime | None = None,
    feature_views: list[str] | None = None,
    overlap: timedelta | None = None,
    latest: datetime | None = None,
) -> list[dict[str, Any]]:
    """Plan each view's window and load it, one `load_view` step per view.

    With `overlap`, the plan is incremental (`incremental_windows`: what the schedule runs), and a
    view already up to date is skipped; without it, each view is loaded as of `end`
    (`windows_as_of`). With `latest`, an `end` after it is refused: Feast records each window's end
    in the registry and every later incremental run starts there, so one run to 9999 would stop them
    all."""
    if latest is not None:
        check_end(_utc(end), latest)
    if overlap is None:
        plan = steps("plan_windows", windows_as_of, store, end, start=start, feature_views=feature_views)
    else:
        plan = steps(
            "plan_windows", incremental_windows, store, end,
            overlap=overlap, start=start, feature_views=feature_views,
        )  # fmt: skip
    loaded = []
    for window in plan:
        if window.start >= window.end:
            steps.info(f"{window.view}: up to date at {window.end.isoformat()}")
            continue
        why = f" ({window.why})" if window.why else ""
        steps.info(f"materialize {window.view}: {window.start.isoformat()} .. {window.end.isoformat()}{why}")
        loaded.append(steps("load_view", load_view, store, window))
    return loaded


def materialize_online(
    store: FeatureStore,
    steps: Steps,
    end: datetime,
    *,
    start: datetime | None = None,
    feature_views: list[str] | None = None,
    overlap: timedelta | None = None,
    latest: datetime | None = None,
) -> dict[str, Any]:
    """The materialisation pipeline: the views' windows loaded (`load_windows`), then the entities
    each view has online. Returns {"end", "loaded": one dict per view loaded, "online_entities"}."""
    steps.info(f"materializing up to {end.isoformat()}")
    loaded = load_windows(
        store, steps, end, start=start, feature_views=feature_views, overlap=overlap, latest=latest
    )
    counts = steps("count_online", online_counts, store)
    return {"end": end.isoformat(), "loaded": loaded, "online_entities": counts}


def materialize_window(
    store: FeatureStore,
    end: datetime,
    *,
    start: datetime | None = None,
    feature_views: list[str] | None = None,
    report: Callable[[str], None] = lambda _message: None,
    latest: datetime | None = None,
) -> list[dict[str, Any]]:
    """Load each view's latest values as of `end` into the online store, as a plain call.

    Without `start`, each view is loaded from `end - ttl` (what an online read can use at `end`);
    a view without a TTL is loaded from the start of time. With `latest`, an `end` after it is
    refused (see `load_windows`)."""
    return load_windows(
        store, PlainSteps(report=report), end, start=start, feature_views=feature_views, latest=latest
    )
