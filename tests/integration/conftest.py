"""One real Feast store per test session, on a prepared synthetic dataset."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest

from data.prepare import PrepareResult, prepare_dataset
from data.synthetic import SyntheticSpec, generate, write_raw
from featureloop.settings import Settings


@dataclass(frozen=True)
class FeastEnv:
    settings: Settings
    prepared: PrepareResult
    store: Any  # feast.FeatureStore

    def table(self, name: str) -> pd.DataFrame:
        return pd.read_parquet(self.settings.offline_dir / f"{name}.parquet")


# Four weeks, eight flights an hour: enough rows for a holdout on which better models measurably win.
INTEGRATION_SPEC = SyntheticSpec(days=28, flights_per_hour=8, n_aircraft=30, seed=11)


@pytest.fixture(scope="session")
def feast_env(tmp_path_factory: pytest.TempPathFactory) -> FeastEnv:
    from featureloop.feast_store import apply_repo, open_store

    root = tmp_path_factory.mktemp("feast")
    raw = write_raw(generate(INTEGRATION_SPEC), root / "raw")
    settings = Settings(data_dir=root / "data", raw_dir=raw)
    prepared = prepare_dataset(raw, settings.versions_dir, settings.offline_dir)
    apply_repo(settings)
    return FeastEnv(settings=settings, prepared=prepared, store=open_store(settings))


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One Prefect test server for the whole session (it takes 15-30 s to start here)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield
