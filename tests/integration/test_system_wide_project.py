"""A project without entities: its features are system-wide (one series, Feast's entity-less view,
keyed by Feast's dummy entity), e.g. the load of a whole power grid. Training reads them point in
time, the engine writes them where Feast reads them, serving reads them for every request, skew
finds no mismatch, and the backtest's feed and replay serve them hour by hour."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pandas as pd
import pytest

from featureloop.settings import Settings
from serving.app import create_app
from tests.integration.conftest import featureloop_ok, serve_app, without_featureloop_env

pytestmark = pytest.mark.integration

PREPARE = """
import numpy as np
import pandas as pd


def prepare(context):
    t = pd.date_range("2024-01-01", periods=24 * 30, freq="h", tz="UTC")
    rng = np.random.default_rng(0)
    load = 100 + 20 * np.sin(2 * np.pi * np.arange(len(t)) / 24) + rng.normal(0, 3, len(t))
    grid = pd.DataFrame({"event_timestamp": t, "grid_load_mean_3h": pd.Series(load).rolling(3, min_periods=1).mean()})
    hours = pd.DataFrame({"hour_id": [f"h{i}" for i in range(len(t))], "at": t, "temp": rng.normal(10, 5, len(t)),
                          "next_load": np.r_[load[1:], np.nan]})
    return context.write({"grid": grid, "hours": hours}, hours["at"], "a synthetic grid")
"""
FEATURES = """
import os
from datetime import timedelta
from pathlib import Path

from feast import FeatureService, FeatureView, Field, FileSource
from feast.types import Float64

OFFLINE = Path(os.environ.get("FEATURELOOP_DATA_DIR", Path(__file__).resolve().parent.parent / "data")) / "offline"
grid_source = FileSource(name="grid_source", path=str(OFFLINE / "grid.parquet"), timestamp_field="event_timestamp")
grid = FeatureView(name="grid", entities=[], ttl=timedelta(hours=6),
                   schema=[Field(name="grid_load_mean_3h", dtype=Float64)], source=grid_source)
grid_v1 = FeatureService(name="grid_v1", features=[grid])
"""
STORE = """project: grid
provider: local
registry: ../data/feast/registry.db
online_store: {type: sqlite, path: ../data/feast/online.db}
offline_store: {type: featureloop.featurestore.offline.AsofDuckDBOfflineStore}
entity_key_serialization_version: 3
auth: {type: no_auth}
batch_engine: {type: featureloop.featurestore.engine.FastComputeEngine}
"""
SPEC = """name: grid_load
feature_service: grid_v1
prepare: prepare:prepare
spine:
  table: hours
  id: hour_id
  time: at
  entity_keys: []
  request_fields:
    - {name: temp, type: float, feature: true}
task: {type: regression, label: next_load, outcome_known: {delay: 1h}}
monitoring: {drift: {min_rows: 20}}
serving: {batch_field: hours}
backtest: {step: 1d, first_train: 20d, schedule_every: 1d}
"""


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    without_featureloop_env(monkeypatch)
    repo = tmp_path / "feature_repo"
    repo.mkdir()
    (tmp_path / "prepare.py").write_text(PREPARE)
    (repo / "features.py").write_text(FEATURES)
    (repo / "feature_store.yaml").write_text(STORE)
    (repo / "project.yaml").write_text(SPEC)
    (tmp_path / ".env").write_text("FEATURELOOP_FEATURE_REPO=feature_repo\nFEATURELOOP_DATA_DIR=data\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_project_of_system_wide_features_trains_serves_checks_skew_and_replays(
    project: Path, prefect_server: None
) -> None:
    from featureloop.featurestore.store import open_store
    from featureloop.params import TrainParams
    from featureloop.training.training_set import load_training_set
    from flows.backtest import force_champion, reset_replay_state, run_replay_phase

    featureloop_ok("prepare")
    settings = Settings()
    reset_replay_state(settings)
    featureloop_ok("apply")
    assert "no problems" in featureloop_ok("validate").output
    window = {"train_start": datetime(2024, 1, 2, tzinfo=UTC), "train_end": datetime(2024, 1, 21, tzinfo=UTC)}
    trained = featureloop_ok("train", "--start", "2024-01-02", "--end", "2024-01-21").output
    assert "promoted" in trained
    # Point in time: each hour gets the grid's value of that hour (the view is hourly).
    frame = load_training_set(open_store(settings), settings.offline_dir, TrainParams(**window)).frame
    grid = pd.read_parquet(settings.offline_dir / "grid.parquet").set_index("event_timestamp")[
        "grid_load_mean_3h"
    ]
    expected = grid.reindex(pd.DatetimeIndex(frame["event_timestamp"])).to_numpy()
    assert frame["grid_load_mean_3h"].to_numpy() == pytest.approx(expected)
    start, end = datetime(2024, 1, 21, tzinfo=UTC), datetime(2024, 1, 23, tzinfo=UTC)
    featureloop_ok("materialize", "--end", start.isoformat())
    with serve_app(create_app(settings)) as url:
        row = {"hour_id": "x", "temp": 3.0, "event_timestamp": "2024-01-20T23:30:00Z"}
        (answer,) = httpx.post(f"{url}/predict", json={"hours": [row]}, timeout=30).json()["predictions"]
    assert answer["missing_features"] == [] and answer["prediction"] > 0
    # The engine wrote the one row where Feast reads it: the skew check compares it with Feast's read.
    skew = featureloop_ok("drift", "--end", start.isoformat(), "--hours", "1").output
    assert "0 mismatches (entities checked: grid 1)" in skew
    force_champion(settings, "1")
    lines: list[str] = []
    weeks, card = run_replay_phase(settings, "1", lines.append, None, start=start, end=end)
    assert [w.served for w in weeks] == [24, 24] and card["metric"] == "MAE"
    served = pd.read_parquet(settings.prediction_log_dir)
    assert served["missing_features"].eq("").all()  # the feed wrote the grid's value before each hour
