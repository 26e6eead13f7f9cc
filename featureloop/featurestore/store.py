"""Feast, opened the way our entry points need it: the repo's own config with our data paths."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featureloop.settings import Settings

if TYPE_CHECKING:  # Feast takes seconds to import: only where a step needs it.
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

REPO_MODULES = ("entities", "data_sources", "features", "feature_services")


def _no_flag_warning(record: logging.LogRecord) -> bool:
    return "serve_features_while_materializing" not in record.getMessage()


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
    elif isinstance(registry, dict) and "://" not in str(registry.get("path", "")):
        raw["registry"] = {**registry, "path": os.path.relpath(feast_dir / "registry.db", repo)}
    # A view keeps answering with its last values while a materialisation runs (ours write in one
    # transaction per chunk): Feast otherwise refuses every online read of a view it has marked
    # MATERIALIZING in the shared registry, e.g. a backtest policy's worker reading while the feed loads.
    # (Feast warns that the flag "typically has no effect" on a file registry; its file registry reads
    # it all the same, feast/infra/registry/registry.py.)
    if not isinstance(raw["registry"], dict):
        raw["registry"] = {"path": raw["registry"]}
    raw["registry"].setdefault("serve_features_while_materializing", True)
    logging.getLogger("feast.repo_config").addFilter(_no_flag_warning)
    if settings.profile == "scaleout":
        password = settings.redis_password
        secret = f",password={password.get_secret_value()}" if password else ""
        raw["online_store"] = {"type": "redis", "connection_string": settings.redis_url + secret}
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
    decorated module's source at import: most of `import feast`'s time. A process that builds
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
        from featureloop.featurestore.sqlite_writer import use_wal

        use_wal(store._get_provider().online_store._get_conn(store.config))  # type: ignore[attr-defined]
    return {
        "entities": sorted(e.name for e in store.list_entities()),
        "feature_views": sorted(fv.name for fv in store.list_feature_views()),
        "feature_services": sorted(fs.name for fs in store.list_feature_services()),
    }
