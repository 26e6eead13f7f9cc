"""The scale-out profile's online store: a real Redis, selected by one setting (FEATURELOOP_PROFILE)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from featureloop.feast_store import materialize_window, open_store
from featureloop.params import TrainParams
from featureloop.settings import Settings
from featureloop.skew import check_service
from featureloop.trainer import run_training
from serving.app import create_app
from tests.integration.conftest import FeastEnv, serve_app

pytestmark = pytest.mark.integration


@dataclass
class Profiles:
    embedded: Settings
    scaleout: Settings
    end: datetime


@pytest.fixture(scope="module")
def profiles(
    feast_env: FeastEnv, redis_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Profiles]:
    tmp: Path = tmp_path_factory.mktemp("scaleout")
    embedded = feast_env.settings.model_copy(update={"mlflow_tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}"})
    scaleout = embedded.model_copy(update={"profile": "scaleout", "redis_url": f"{redis_server},db=5"})
    end = datetime.fromisoformat(feast_env.prepared.time_range["end"])
    for settings in (embedded, scaleout):
        materialize_window(open_store(settings), end)
    summary = run_training(
        embedded, TrainParams(train_start=datetime(2013, 1, 1, tzinfo=UTC), train_end=datetime(2013, 1, 30, tzinfo=UTC)),
        report=lambda _m: None,
    )  # fmt: skip
    assert summary["promoted"]
    yield Profiles(embedded, scaleout, end)


def test_one_setting_selects_redis_and_the_fast_engine_fills_it_correctly(profiles: Profiles) -> None:
    store = open_store(profiles.scaleout)
    assert store.config.online_store.type == "redis"
    assert type(store._get_provider().batch_engine).__name__ == "FastComputeEngine"
    skew = check_service(store, "flight_delay_v1", sample=500)
    assert skew["mismatches"] == 0 and sum(v["checked"] for v in skew["views"]) > 50


def test_serving_answers_the_same_from_redis_as_from_sqlite(profiles: Profiles, feast_env: FeastEnv) -> None:
    flights = feast_env.table("flights").dropna(subset=["tailnum"]).sample(30, random_state=3)
    body = {
        "flights": [
            {"flight_id": r.flight_id, "tailnum": r.tailnum, "origin": r.origin, "dest": r.dest, "carrier": r.carrier,
             "distance": float(r.distance), "sched_hour": int(r.sched_hour), "day_of_week": int(r.day_of_week),
             "event_timestamp": profiles.end.isoformat()}
            for r in flights.itertuples()
        ]
    }  # fmt: skip
    answers = []
    for settings in (profiles.embedded, profiles.scaleout):
        with serve_app(create_app(settings)) as url:
            assert httpx.get(f"{url}/ready", timeout=30).json()["checks"]["online_store"] is True
            response = httpx.post(f"{url}/predict", json=body, timeout=30)
            assert response.status_code == 200, response.text
            answers.append(response.json()["predictions"])
    assert answers[0] == answers[1]
    assert any(not p["missing_features"] for p in answers[1])  # values came from Redis
