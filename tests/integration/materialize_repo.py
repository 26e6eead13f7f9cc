"""A Feast repository of its own (one entity, one view of three features over a parquet file), for
engine tests that need more rows than the synthetic flights; `python -m` runs one materialisation."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

START, END = datetime(2023, 12, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC)
TABLE = "bench_customer_stats"


def write_data(folder: Path, entities: int) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i:07d}" for i in range(entities)],
            "balance": rng.normal(100, 30, entities),
            "orders": rng.integers(0, 500, entities),
            "segment": rng.choice(["gold", "silver", "bronze", "new"], entities),
            "event_timestamp": pd.Timestamp("2024-01-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 86_400 * 30, entities), unit="s"),
        }
    )
    frame.loc[frame.index[::50], "balance"] = np.nan
    frame.to_parquet(folder / "features.parquet", index=False)


def store(
    folder: Path, online: str, engine: dict[str, Any], online_store: dict[str, Any] | None = None
) -> Any:
    """The repository, applied; `online` names its SQLite file (and registry) unless `online_store`
    says otherwise (e.g. Redis)."""
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource
    from feast.repo_config import RepoConfig
    from feast.types import Float64, Int64, String
    from feast.value_type import ValueType

    config = RepoConfig(
        project="bench",
        provider="local",
        registry=str(folder / f"registry-{online}"),
        online_store=online_store or {"type": "sqlite", "path": str(folder / online)},
        offline_store={"type": "featureloop.featurestore.offline.AsofDuckDBOfflineStore"},
        batch_engine=engine,
        entity_key_serialization_version=3,
        materialization={"pull_latest_features": True, "online_write_batch_size": 10_000},
    )
    feature_store = FeatureStore(config=config)
    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)
    view = FeatureView(
        name="customer_stats",
        entities=[customer],
        schema=[Field(name="balance", dtype=Float64), Field(name="orders", dtype=Int64),
                Field(name="segment", dtype=String)],
        source=FileSource(path=str(folder / "features.parquet"), timestamp_field="event_timestamp"),
        online=True,
    )  # fmt: skip
    feature_store.apply([customer, view])
    return feature_store


if __name__ == "__main__":
    folder, online, chunk_rows = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    engine = {"type": "featureloop.featurestore.engine.FastComputeEngine", "chunk_rows": chunk_rows}
    store(folder, online, engine).materialize(start_date=START, end_date=END)
