"""One real Feast store per test session, on a prepared synthetic dataset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest

from data.prepare import PrepareResult, prepare_dataset
from data.synthetic import write_raw
from featureloop.settings import Settings


@dataclass(frozen=True)
class FeastEnv:
    settings: Settings
    prepared: PrepareResult
    store: Any  # feast.FeatureStore

    def table(self, name: str) -> pd.DataFrame:
        return pd.read_parquet(self.settings.offline_dir / f"{name}.parquet")


@pytest.fixture(scope="session")
def feast_env(
    tmp_path_factory: pytest.TempPathFactory, synthetic_tables: dict[str, pd.DataFrame]
) -> FeastEnv:
    from featureloop.feast_store import apply_repo, open_store

    root = tmp_path_factory.mktemp("feast")
    raw = write_raw(synthetic_tables, root / "raw")
    settings = Settings(data_dir=root / "data", raw_dir=raw)
    prepared = prepare_dataset(raw, settings.versions_dir, settings.offline_dir)
    apply_repo(settings)
    return FeastEnv(settings=settings, prepared=prepared, store=open_store(settings))
