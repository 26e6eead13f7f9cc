"""Our ASOF point-in-time join returns exactly what Feast's DuckDB offline store returns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from featureloop.feast_store import open_store
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
