"""The Feast repository for real: apply, point-in-time joins, materialise, read online."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from data.rolling import WINDOWS, rolling_feature_names
from featureloop.featurestore.materialization import materialize_window, online_counts
from tests.integration.conftest import FeastEnv

pytestmark = pytest.mark.integration

SERVICE = "flight_delay_v1"
WINDOW_DELTAS = {"1h": pd.Timedelta(hours=1), "24h": pd.Timedelta(hours=24), "7d": pd.Timedelta(days=7)}


def test_apply_registers_the_entities_views_and_the_service(feast_env: FeastEnv) -> None:
    store = feast_env.store
    assert {e.name for e in store.list_entities()} == {"aircraft", "origin_airport", "carrier", "route"}
    assert {fv.name for fv in store.list_feature_views()} == {
        "weather",
        "aircraft",
        "carrier_stats",
        "route_stats",
        "origin_stats",
        "aircraft_stats",
    }
    service = store.get_feature_service(SERVICE)
    names = {f.name for projection in service.feature_view_projections for f in projection.features}
    assert "visib" in names and "route_delayed_share_7d" in names
    # The service never exposes the flight's own outcome.
    assert not names & {"dep_delay", "arr_delay", "air_time", "dep_time", "arr_time"}


def _historical(feast_env: FeastEnv, entity_df: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    result = feast_env.store.get_historical_features(entity_df=entity_df, features=features).to_df()
    # Feast reorders rows: join back on the keys and the timestamp.
    keys = [c for c in entity_df.columns]
    merged = entity_df.merge(result, on=keys, how="left", validate="one_to_one")
    assert len(merged) == len(entity_df)
    return merged


def test_weather_before_a_change_after_it_and_null_outside_the_ttl(feast_env: FeastEnv) -> None:
    weather = feast_env.table("weather")
    ewr = weather[weather["origin"] == "EWR"].sort_values("event_timestamp").reset_index(drop=True)
    hour = ewr.loc[10, "event_timestamp"]
    assert ewr.loc[11, "event_timestamp"] == hour + pd.Timedelta(hours=1)
    last = ewr["event_timestamp"].max()
    entity_df = pd.DataFrame(
        {
            "origin": ["EWR"] * 4,
            "event_timestamp": [
                hour + pd.Timedelta(minutes=59),  # before the next observation
                hour + pd.Timedelta(hours=1),  # exactly at it: the new value
                last + pd.Timedelta(hours=2, minutes=59),  # still within the 3 h TTL
                last + pd.Timedelta(hours=3, minutes=1),  # beyond the TTL: null
            ],
        }
    )
    got = _historical(feast_env, entity_df, ["weather:temp", "weather:visib"])
    assert got["temp"].iloc[0] == pytest.approx(ewr.loc[10, "temp"])
    assert got["temp"].iloc[1] == pytest.approx(ewr.loc[11, "temp"])
    assert got["temp"].iloc[2] == pytest.approx(ewr["temp"].iloc[-1])
    assert pd.isna(got["temp"].iloc[3]) and pd.isna(got["visib"].iloc[3])


def _brute_force_counts(flights: pd.DataFrame, key: str, rows: pd.DataFrame) -> pd.DataFrame:
    """Flights of the same entity whose outcome was known in (t - w, t], counted one row at a time."""
    known = flights.dropna(subset=["outcome_known_ts"])
    out = {}
    for window, delta in WINDOW_DELTAS.items():
        counts = []
        for value, t in zip(rows[key], rows["event_timestamp"], strict=True):
            same = known[known[key] == value]["outcome_known_ts"]
            counts.append(int(((same > t - delta) & (same <= t)).sum()))
        out[window] = counts
    return pd.DataFrame(out, index=rows.index)


@pytest.mark.parametrize(
    ("key", "prefix", "view"), [("route", "route", "route_stats"), ("tailnum", "aircraft", "aircraft_stats")]
)
def test_rolling_statistics_count_only_flights_landed_before_the_prediction(
    feast_env: FeastEnv, key: str, prefix: str, view: str
) -> None:
    flights = feast_env.table("flights")
    sample = flights.dropna(subset=[key]).sample(120, random_state=3)
    entity_df = sample[[key, "sched_dep_ts"]].rename(columns={"sched_dep_ts": "event_timestamp"})
    entity_df = entity_df.drop_duplicates().reset_index(drop=True)
    got = _historical(feast_env, entity_df, [f"{view}:{name}" for name in rolling_feature_names(prefix)])
    expected = _brute_force_counts(flights, key, entity_df)
    for window in WINDOWS:
        got_counts = got[f"{prefix}_flights_{window}"].fillna(0).astype(int)
        assert got_counts.tolist() == expected[window].tolist(), window
    # The flight's own outcome is never among them: it lands after its scheduled departure.
    own = sample.set_index([key, "sched_dep_ts"])["outcome_known_ts"].dropna()
    assert (own.to_numpy() > own.index.get_level_values(1).to_numpy()).all()


def test_materialized_online_values_equal_the_latest_offline_rows(feast_env: FeastEnv) -> None:
    store = feast_env.store
    end = datetime.fromisoformat(feast_env.prepared.time_range["end"])
    windows = materialize_window(store, end)
    assert {w["feature_view"] for w in windows} == {fv.name for fv in store.list_feature_views()}
    counts = online_counts(store)
    assert counts["carrier_stats"] == feast_env.table("carrier_stats")["carrier"].nunique()

    stats = feast_env.table("route_stats")
    ts_end = pd.Timestamp(end)
    visible = stats[
        (stats["event_timestamp"] <= ts_end) & (stats["event_timestamp"] > ts_end - timedelta(days=30))
    ]
    latest = visible.sort_values("event_timestamp").groupby("route").tail(1).set_index("route")
    routes = sorted(latest.index)[:5]
    online = (
        store.get_online_features(
            features=[f"route_stats:{name}" for name in rolling_feature_names("route")],
            entity_rows=[{"route": r} for r in routes],
        )
        .to_df()
        .set_index("route")
    )
    for name in rolling_feature_names("route"):
        np.testing.assert_allclose(
            online.loc[routes, name].astype(float).to_numpy(),
            latest.loc[routes, name].astype(float).to_numpy(),
            equal_nan=True,
            err_msg=name,
        )

    weather = feast_env.table("weather")
    weather = weather[weather["event_timestamp"] <= ts_end]
    last = weather.sort_values("event_timestamp").groupby("origin").tail(1).set_index("origin")
    got = (
        store.get_online_features(
            features=["weather:temp", "weather:pressure"], entity_rows=[{"origin": o} for o in last.index]
        )
        .to_df()
        .set_index("origin")
    )
    np.testing.assert_allclose(got.loc[last.index, "temp"], last["temp"])
    np.testing.assert_allclose(got.loc[last.index, "pressure"], last["pressure"])


def test_unknown_entities_come_back_as_nulls_from_the_service(feast_env: FeastEnv) -> None:
    store = feast_env.store
    online = store.get_online_features(
        features=store.get_feature_service(SERVICE),
        entity_rows=[{"tailnum": "NOPE", "origin": "EWR", "carrier": "ZZ", "route": "EWR-NOWHERE"}],
    ).to_dict()
    assert online["carrier_flights_7d"] == [None]
    assert online["seats"] == [None]


def test_readers_import_feast_without_typeguard_and_definitions_keep_it() -> None:
    """Serving and the replay's worker only read checked definitions: they import Feast without
    typeguard's instrumentation (6 s of boot here); this process (apply, the CLI) keeps the checks."""
    import subprocess
    import sys

    import typeguard
    from feast import Entity

    with pytest.raises(typeguard.TypeCheckError):
        Entity(name=1, join_keys=["x"])  # type: ignore[arg-type]
    code = (
        "import typeguard\n"
        "from featureloop.featurestore.store import import_feast_unchecked\n"
        "checked = typeguard.typechecked\n"
        "import_feast_unchecked()\n"
        "assert typeguard.typechecked is checked, 'typeguard left patched'\n"
        "from feast import Entity\n"
        "Entity(name=1, join_keys=['x'])\n"
        "print('unchecked')\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "unchecked"
