"""Our ASOF point-in-time join returns exactly what Feast's DuckDB offline store returns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from featureloop.featurestore.store import open_store
from tests.integration.conftest import FeastEnv

pytestmark = pytest.mark.integration


def _normalise(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_numeric_dtype(out[column]) and not pd.api.types.is_bool_dtype(out[column]):
            out[column] = out[column].astype("float64")
        elif column == "event_timestamp":
            out[column] = pd.to_datetime(out[column], utc=True)
        else:
            out[column] = out[column].astype(object).where(out[column].notna(), None)
    return out.sort_values(keys, kind="stable").reset_index(drop=True)[sorted(out.columns)]


def _entity_rows(feast_env: FeastEnv) -> pd.DataFrame:
    flights = feast_env.table("flights")
    rows = flights[["flight_id", "tailnum", "origin", "carrier", "route", "sched_dep_ts", "distance"]]
    rows = rows.rename(columns={"sched_dep_ts": "event_timestamp"})
    # Unknown keys, times before any data and long after it (beyond every TTL) must come back as nulls.
    extra = rows.head(3).copy()
    extra["flight_id"] = ["x-unknown", "x-early", "x-late"]
    extra.loc[extra.index[0], ["tailnum", "route"]] = ["NOPE", "EWR-NOWHERE"]
    extra.loc[extra.index[1], "event_timestamp"] = pd.Timestamp("2012-06-01T00:00:00Z")
    extra.loc[extra.index[2], "event_timestamp"] = pd.Timestamp("2013-09-01T00:00:00Z")
    return pd.concat([rows, extra], ignore_index=True)


@pytest.mark.parametrize("full_feature_names", [False, True])
def test_asof_join_equals_feasts_duckdb_store_row_for_row(
    feast_env: FeastEnv, full_feature_names: bool
) -> None:
    ours = feast_env.store
    assert type(ours._get_provider().offline_store).__name__ == "AsofDuckDBOfflineStore"
    feasts = open_store(feast_env.settings, offline_store="duckdb")
    entity = _entity_rows(feast_env)
    service = ours.get_feature_service("flight_delay_v1")
    got = ours.get_historical_features(
        entity, features=service, full_feature_names=full_feature_names
    ).to_df()
    expected = feasts.get_historical_features(
        entity, features=service, full_feature_names=full_feature_names
    ).to_df()
    assert len(got) == len(expected) == len(entity)
    assert set(got.columns) == set(expected.columns)
    left, right = _normalise(got, ["flight_id"]), _normalise(expected, ["flight_id"])
    pd.testing.assert_frame_equal(left, right, check_exact=False, rtol=1e-12)
    assert got.filter(like="flights_7d").iloc[-3:].isna().all().all()  # unknown / early / late rows


def test_asof_join_keeps_the_entity_row_order(feast_env: FeastEnv) -> None:
    entity = _entity_rows(feast_env).sample(frac=1.0, random_state=1).reset_index(drop=True)
    got = feast_env.store.get_historical_features(entity, features=["weather:temp"]).to_df()
    assert got["flight_id"].tolist() == entity["flight_id"].tolist()
    assert np.isfinite(got["temp"].dropna()).all()


def test_hand_built_ties_ttl_edges_and_late_rows(tmp_path: Path) -> None:
    """Both stores on a case built to hit every rule: created-time tie-breaks, the TTL edge (inclusive),
    a row that arrived late, times before any row, unknown keys and duplicate entity rows."""
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource
    from feast.repo_config import RepoConfig
    from feast.types import Float64, String
    from feast.value_type import ValueType

    t = pd.Timestamp("2024-03-01T10:00:00Z")
    hours = pd.Timedelta(hours=1)
    pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "c"],
            "event_timestamp": [t, t, t + 2 * hours, t],
            "created": [t, t + pd.Timedelta(minutes=5), t + 3 * hours, t],  # the 12:00 row arrived at 13:00
            "score": [1.0, 2.0, 3.0, None],
            "tier": ["x", "y", "z", "w"],
        }
    ).to_parquet(tmp_path / "features.parquet", index=False)
    entity = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "a", "a", "a", "a", "b", "c"],
            "event_timestamp": [
                t - pd.Timedelta(seconds=1),
                t,
                t + 2 * hours - pd.Timedelta(seconds=1),
                t + 2 * hours,
                t + 4 * hours,
                t + 4 * hours + pd.Timedelta(seconds=1),
                t,
                t,
                t,
            ],
            "row": range(9),
        }
    )
    expected_scores = [None, 2.0, 2.0, 3.0, 3.0, None, 2.0, None, None]
    results = {}
    for name, offline in (
        ("ours", "featureloop.featurestore.offline.AsofDuckDBOfflineStore"),
        ("feast", "duckdb"),
    ):
        store = FeatureStore(
            config=RepoConfig(
                project="edges", provider="local", registry=str(tmp_path / f"registry-{name}.db"),
                online_store={"type": "sqlite", "path": str(tmp_path / f"online-{name}.db")},
                offline_store={"type": offline}, entity_key_serialization_version=3,
            )
        )  # fmt: skip
        customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)
        view = FeatureView(
            name="scores", entities=[customer], ttl=pd.Timedelta(hours=2).to_pytimedelta(),
            schema=[Field(name="score", dtype=Float64), Field(name="tier", dtype=String)],
            source=FileSource(path=str(tmp_path / "features.parquet"), timestamp_field="event_timestamp",
                              created_timestamp_column="created"),
        )  # fmt: skip
        store.apply([customer, view])
        frame = store.get_historical_features(
            entity_df=entity, features=["scores:score", "scores:tier"]
        ).to_df()
        results[name] = _normalise(frame, ["row"])
    pd.testing.assert_frame_equal(results["ours"], results["feast"])
    ours = results["ours"]
    assert [None if pd.isna(x) else x for x in ours["score"]] == expected_scores
    assert ours["tier"].tolist() == [None, "y", "y", "z", "z", None, "y", None, "w"]  # c: null score, a tier
