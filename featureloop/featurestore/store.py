"""Feast, opened the way our entry points need it: the repo's own config with our data paths."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featureloop.settings import Settings

if TYPE_CHECKING:  # Feast takes seconds to import: only where a step needs it.
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

REPO_MODULES = ("entities", "data_sources", "features", "feature_services")


def repo_config(
    settings: Settings,
    *,
    offline_store: str | None = None,
    batch_engine: str | None = None,
    online_path: Path | None = None,
) -> RepoConfig:
    """The repo's feature_store.yaml with the file registry and SQLite paths under settings.data_dir."""
    import yaml
    from feast.repo_config import RepoConfig

    repo = settings.feature_repo.resolve()
    raw = yaml.safe_load(os.path.expandvars((repo / "feature_store.yaml").read_text()))
    feast_dir = settings.feast_dir.resolve()
    feast_dir.mkdir(parents=True, exist_ok=True)
    # Relative to the repo, as the yaml writes them: Feast records the resolved path in the registry,
    # and a different spelling of the same file would make `feast apply` tear the tables down.
    registry = raw.get("registry")
    if settings.feast_registry_url is not None:  # the scale-out profile: Feast's SQL registry
        from featureloop.operations.postgres import ensure_database

        ensure_database(settings.feast_registry_url)
        raw["registry"] = {"registry_type": "sql", "path": settings.feast_registry_url}
    elif isinstance(registry, str) and "://" not in registry:
        raw["registry"] = os.path.relpath(feast_dir / "registry.db", repo)
    if settings.profile == "scaleout":
        raw["online_store"] = {"type": "redis", "connection_string": settings.redis_url}
    online = raw.get("online_store")
    if isinstance(online, dict) and online.get("type") == "sqlite":
        raw["online_store"] = {
            **online,
            "path": os.path.relpath(online_path or feast_dir / "online.db", repo),
        }
    if offline_store is not None:  # e.g. "duckdb": Feast's own store, to compare against
        raw["offline_store"] = {"type": offline_store}
    if batch_engine is not None:  # e.g. "local": Feast's own materialisation engine
        raw["batch_engine"] = {"type": batch_engine}
    config = RepoConfig(**raw)
    config.repo_path = repo
    return config


def import_feast_unchecked() -> None:
    """Import Feast without typeguard's run-time checks of its constructors' argument types, for a
    process that only reads definitions `feast apply` has checked already (the serving app, the
    replay's worker). Feast decorates them with `@typeguard.typechecked`, which re-parses each
    decorated module's source at import: 6 of `import feast`'s 8 s here. A process that builds
    definitions (apply, plan, the CLI, the flows) imports Feast as it is. No effect once imported."""
    if "feast" in sys.modules:
        return
    import typeguard

    checked = typeguard.typechecked

    def unchecked(target: Any = None, **_options: Any) -> Any:
        return target if target is not None else (lambda later: later)

    typeguard.typechecked = unchecked
    try:
        import feast
        import feast.infra.online_stores.sqlite  # noqa: F401  (imported on first use otherwise)
    finally:
        typeguard.typechecked = checked


def open_store(
    settings: Settings,
    *,
    offline_store: str | None = None,
    batch_engine: str | None = None,
    online_path: Path | None = None,
) -> FeatureStore:
    """A FeatureStore on the repo, with paths from settings (optionally another offline store, batch
    engine or SQLite file: Feast's own, to compare against)."""
    from feast import FeatureStore

    config = repo_config(
        settings, offline_store=offline_store, batch_engine=batch_engine, online_path=online_path
    )
    return FeatureStore(repo_path=str(settings.feature_repo.resolve()), config=config)


@contextlib.contextmanager
def _repo_import_env(settings: Settings) -> Iterator[None]:
    """Feast imports the repo's files as top-level modules: give them our data dir, then forget them."""
    previous_env = os.environ.get("FEATURELOOP_DATA_DIR")
    previous_cwd = Path.cwd()
    os.environ["FEATURELOOP_DATA_DIR"] = str(settings.data_dir.resolve())
    repo = str(settings.feature_repo.resolve())
    for name in REPO_MODULES:
        sys.modules.pop(name, None)
    sys.path.insert(0, repo)
    try:
        yield
    finally:
        sys.path.remove(repo)
        os.chdir(previous_cwd)
        for name in REPO_MODULES:
            sys.modules.pop(name, None)
        if previous_env is None:
            os.environ.pop("FEATURELOOP_DATA_DIR", None)
        else:
            os.environ["FEATURELOOP_DATA_DIR"] = previous_env


def apply_repo(settings: Settings) -> dict[str, Any]:
    """`feast apply` on the repo (the same code path as the CLI); returns what the registry holds."""
    from feast.repo_operations import apply_total

    config = repo_config(settings)
    with _repo_import_env(settings), contextlib.redirect_stdout(sys.stderr):
        apply_total(config, settings.feature_repo.resolve(), skip_source_validation=False)
    store = open_store(settings)
    if getattr(store.config.online_store, "type", None) == "sqlite":
        from featureloop.featurestore.engine import use_wal

        use_wal(store._get_provider().online_store._get_conn(store.config))  # type: ignore[attr-defined]
    return {
        "entities": sorted(e.name for e in store.list_entities()),
        "feature_views": sorted(fv.name for fv in store.list_feature_views()),
        "feature_services": sorted(fs.name for fs in store.list_feature_services()),
    }


def check_end(end: datetime, latest: datetime) -> None:
    """Refuse a materialisation end after `latest` (the clock plus the accepted allowance): Feast
    records each window's end in the registry, and every later incremental run starts there."""
    if end > latest:
        raise ValueError(
            f"end {end.isoformat()} is after {latest.isoformat(timespec='seconds')}, the latest time "
            "accepted (this machine's clock plus FEATURELOOP_EVENT_TIME_MAX_AHEAD_SECONDS): Feast would "
            "record it and every later incremental materialisation would start there; use an earlier end"
        )


def materialize_window(
    store: FeatureStore,
    end: datetime,
    *,
    start: datetime | None = None,
    feature_views: list[str] | None = None,
    report: Callable[[str], None] = lambda _message: None,
    latest: datetime | None = None,
) -> list[dict[str, Any]]:
    """Load each view's latest values as of `end` into the online store.

    Without `start`, each view is loaded from `end - ttl` (what an online read can use at `end`);
    a view without a TTL is loaded from the start of time. With `latest`, an `end` after it is
    refused: Feast records each window's end in the registry and every later incremental run
    starts there, so one run to 9999 would stop them all.
    """
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    if latest is not None:
        check_end(end, latest)
    if start is not None and start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    if start is not None and start >= end:
        raise ValueError(f"start {start.isoformat()} must be before end {end.isoformat()}: swap them")
    views = [fv for fv in store.list_feature_views() if feature_views is None or fv.name in feature_views]
    if feature_views is not None:
        unknown = sorted(set(feature_views) - {fv.name for fv in views})
        if unknown:
            raise ValueError(
                f"unknown feature views {unknown}; known: {sorted(fv.name for fv in store.list_feature_views())}"
            )
    done = []
    for fv in views:
        ttl = fv.ttl or timedelta(0)
        view_start = start or (end - ttl if ttl > timedelta(0) else datetime(1970, 1, 1, tzinfo=UTC))
        report(f"materialize {fv.name}: {view_start.isoformat()} .. {end.isoformat()}")
        with contextlib.redirect_stdout(sys.stderr):
            store.materialize(start_date=view_start, end_date=end, feature_views=[fv.name])
        done.append({"feature_view": fv.name, "start": view_start.isoformat(), "end": end.isoformat()})
    return done


def online_counts(store: FeatureStore) -> dict[str, int]:
    """Entities per feature view in a SQLite online store (empty for other stores)."""
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
                    f'SELECT count(DISTINCT entity_key) FROM "{config.project}_{fv.name}"'
                ).fetchone()
            except sqlite3.OperationalError:
                n = 0
            counts[fv.name] = int(n)
    return counts


def incremental_windows(
    store: FeatureStore,
    end: datetime,
    *,
    overlap: timedelta = timedelta(hours=1),
    start: datetime | None = None,
    feature_views: list[str] | None = None,
) -> list[tuple[str, datetime, datetime, str]]:
    """Per view, the window the next materialisation loads, and why.

    With `start` (backfill), every view loads [start, end]. Otherwise each view continues from the
    end of its last materialised interval minus `overlap` (late rows are picked up again; writing a
    row twice gives the same online store); a view never materialised loads [end - TTL, end], the
    values an online read can use at `end` (a view without TTL: from the start of time)."""
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    names = {fv.name: fv for fv in store.list_feature_views()}
    unknown = sorted(set(feature_views or []) - set(names))
    if unknown:
        raise ValueError(f"unknown feature views {unknown}; known: {sorted(names)}")
    windows = []
    for name in feature_views or sorted(names):
        fv = names[name]
        if start is not None:
            windows.append((name, start, end, "backfill"))
            continue
        ends = [e if e.tzinfo else e.replace(tzinfo=UTC) for _, e in fv.materialization_intervals]
        ttl = fv.ttl or timedelta(0)
        if ends:
            begin, why = max(ends) - overlap, f"incremental from {max(ends).isoformat()} - {overlap}"
        else:
            begin = end - ttl if ttl > timedelta(0) else datetime(1970, 1, 1, tzinfo=UTC)
            why = "first load: end - TTL"
        if begin >= end:
            windows.append((name, end, end, "up to date"))
        else:
            windows.append((name, begin, end, why))
    return windows
