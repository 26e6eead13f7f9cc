"""The closed loop, end to end, with nothing mocked: a real Prefect server, the deployment server
(`python -m flows.deploy`) with its event automation, the serving app over HTTP, MLflow, Feast.

Synthetic flights with drift injected at a known time: wind speed rises by 3 reference standard
deviations, out of the range the champion was trained on (strong wind delays flights; the
champion's trees cannot rank winds they never saw, a model trained after the change can). A day before the drift is the no-drift control: served
and checked, it triggers nothing. A day after it: the drift flow sends the event, the automation
starts `retrain`, the gate promotes the better model, and /predict answers with the new version.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pandas as pd
import pytest

from data.prepare import prepare_dataset
from data.synthetic import Drift, SyntheticSpec, generate, write_raw
from featureloop.featurestore.materialization import materialize_window
from featureloop.featurestore.store import apply_repo, open_store
from featureloop.monitoring.thresholds import DecayConfig, DriftConfig, FeatureOverride
from featureloop.params import DriftParams, TrainParams
from featureloop.settings import PROJECT_ROOT, Settings
from featureloop.training.pipeline import run_training
from serving.app import create_app
from tests.integration.conftest import remove_retrain_deployment, serve_app
from tests.waiting import until

pytestmark = pytest.mark.integration

START = pd.Timestamp("2013-01-01", tz="America/New_York")
DRIFT_AT = START + pd.Timedelta(days=20)
SPEC = SyntheticSpec(
    days=24, flights_per_hour=16, n_aircraft=30, seed=21,
    drift=Drift(at=DRIFT_AT, features=("wind_speed",), shift=3.0),
)  # fmt: skip
# The champion learns from one full week after the first (whose 7-day statistics are still filling).
TRAIN = {
    "train_start": datetime(2013, 1, 8, 5, tzinfo=UTC),
    "train_end": datetime(2013, 1, 15, 5, tzinfo=UTC),
}
# Windows as long as the features' slowest scale (7-day statistics vary little within a day: a day of
# them is not a sample of a week's). The control week is before the drift, the checked days after it.
CONTROL = (datetime(2013, 1, 15, 5, tzinfo=UTC), 4)
DRIFTED = (datetime(2013, 1, 21, 5, tzinfo=UTC), 3)
RETRAIN_DAYS = 3  # the retrain window: the drifted days only


@dataclass
class Loop:
    settings: Settings
    url: str
    store: Any
    flights: pd.DataFrame
    runner: subprocess.Popen[bytes]


def _deployment_ready(name: str) -> bool:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(name)
        except Exception:
            return False
        return any(a.name.startswith("retrain when drift") for a in client.read_automations())


@pytest.fixture(scope="module")
def loop(prefect_server: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    from prefect.settings import PREFECT_API_URL

    root = tmp_path_factory.mktemp("loop")
    raw = write_raw(generate(SPEC), root / "raw")
    env = {
        "FEATURELOOP_DATA_DIR": str(root / "data"),
        "FEATURELOOP_RAW_DIR": str(raw),
        "FEATURELOOP_MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "FEATURELOOP_PREDICTION_LOG_FLUSH_SECONDS": "0.1",
        "FEATURELOOP_MODEL_RELOAD_SECONDS": "0.5",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        settings = Settings()
        prepare_dataset(raw, settings.versions_dir, settings.offline_dir)
        apply_repo(settings)
        store = open_store(settings)
        champion = run_training(settings, TrainParams(**TRAIN), report=lambda _m: None)
        assert champion["promoted"] and champion["version"] == "1"
        materialize_window(store, CONTROL[0])
        remove_retrain_deployment()  # a clean slate: nothing other modules left on this server
        runner = subprocess.Popen(
            [sys.executable, "-m", "flows.deploy", "--no-schedules", "--retrain-days", str(RETRAIN_DAYS)],
            cwd=PROJECT_ROOT,
            env={
                **os.environ,
                "PREFECT_API_URL": str(PREFECT_API_URL.value()),
                "PREFECT_RUNNER_POLL_FREQUENCY": "2",
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            until(
                lambda: _deployment_ready("retrain/retrain"),
                timeout=120, what="the deployments served", process=runner, interval=1,
            )  # fmt: skip
            flights = pd.read_parquet(settings.offline_dir / "flights.parquet").dropna(subset=["tailnum"])
            with serve_app(create_app(settings)) as url:
                yield Loop(settings, url, store, flights, runner)
        finally:
            runner.terminate()
            runner.wait(timeout=30)


def _replay(loop: Loop, window: tuple[datetime, int], step: timedelta = timedelta(hours=1)) -> int:
    """Hour by hour: load the hour's new feature values, then send the hour's flights to /predict.
    (The generator's weather is independent from hour to hour: an hour-old value carries none of
    the delay signal, so serving must see each hour's weather as training did.)"""
    sent = 0
    start, days = window
    for i in range(int(timedelta(days=days) / step)):
        begin = start + i * step
        materialize_window(loop.store, begin, start=begin - step)
        due = loop.flights[
            (loop.flights["sched_dep_ts"] >= begin) & (loop.flights["sched_dep_ts"] < begin + step)
        ]
        rows = [
            {"flight_id": r.flight_id, "tailnum": r.tailnum, "origin": r.origin, "dest": r.dest, "carrier": r.carrier,
             "distance": float(r.distance), "sched_hour": int(r.sched_hour), "day_of_week": int(r.day_of_week),
             "event_timestamp": r.sched_dep_ts.isoformat()}
            for r in due.itertuples()
        ]  # fmt: skip
        if rows:
            response = httpx.post(f"{loop.url}/predict", json={"flights": rows}, timeout=60)
            assert response.status_code == 200, response.text
            sent += len(rows)
    return sent


def _check(window: tuple[datetime, int]) -> DriftParams:
    """The event on the first drifted window. Windows of a few days call for two settings a user
    would make too: `day_of_week` is out (3 days hold 3 weekdays), and the 24-hour and 7-day
    statistics need a real effect (PSI 0.25): they change slowly, so a few days of them are not an
    independent sample of the training weeks and their test p-values alone mean little."""
    start, days = window
    slow = {f"{e}_{s}_{w}": FeatureOverride(min_psi=0.25) for e in ("carrier", "route", "origin", "aircraft")
            for s in ("flights", "dep_delay_mean", "delayed_share") for w in ("24h", "7d")}  # fmt: skip
    return DriftParams(
        window_start=start, window_end=start + timedelta(days=days), persistence_k=1, persistence_n=1,
        drift=DriftConfig(min_rows=150, features={"day_of_week": FeatureOverride(ignore=True), **slow}),
        decay=DecayConfig(min_labels=150), skew_sample=0,
    )  # fmt: skip


def _retrain_runs() -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    with get_client(sync_client=True) as client:
        return list(
            client.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["retrain"]))
            )
        )


def test_drift_triggers_retraining_through_prefect_and_serving_switches_models(loop: Loop) -> None:
    from flows.drift import drift

    assert httpx.get(f"{loop.url}/ready", timeout=30).json()["model_version"] == "1"
    # Other tests of the session may have run the `retrain` deployment on this server before.
    earlier = {r.id for r in _retrain_runs()}

    served = _replay(loop, CONTROL)
    control = drift(_check(CONTROL))
    assert control["rows"] == served > 150
    assert control["event"] is False, (
        control["reasons"],
        control["drifted_features"],
        control["share"],
        control["auc"],
    )

    _replay(loop, DRIFTED)
    drifted = drift(_check(DRIFTED))
    assert drifted["event"] is True and "wind_speed" in drifted["drifted_features"], drifted

    def finished() -> list[Any]:
        runs = [r for r in _retrain_runs() if r.id not in earlier]
        return runs if runs and runs[0].state is not None and runs[0].state.is_final() else []

    runs = until(
        finished,
        timeout=300,
        what="the retrain run the event started finishing",
        process=loop.runner,
        interval=2,
    )
    assert len(runs) == 1, "only the drifted window may trigger a retrain"
    run = runs[0]
    assert run.state is not None and run.state.is_completed(), run.state
    assert run.parameters["params"]["window_end"] == drifted["window_end"]  # from the event's payload
    assert run.parameters["params"]["reason"] == "; ".join(drifted["reasons"])

    # The gate passed it, and a drift-triggered retrain releases by default: version 2 scores every
    # request in the shadow of the champion, which still answers (tests/integration/test_release.py
    # follows a release to its end); here a person promotes it from the `release` flow's form.
    release = until(
        lambda: httpx.get(f"{loop.url}/ready", timeout=30).json()["release"],
        timeout=30, what="serving picking up the released model", interval=0.5,
    )  # fmt: skip
    assert release == {
        "challenger_version": "2",
        "stage": "shadow",
        "canary_share": None,
        "from_release": True,
    }
    assert httpx.get(f"{loop.url}/ready", timeout=30).json()["model_version"] == "1"
    from featureloop.params import ReleaseParams
    from flows.release import release as release_flow

    promoted = release_flow(ReleaseParams(action="promote", reason="seen enough"))
    assert promoted["verdict"] == "promoted" and "by hand: seen enough" in promoted["summary"]
    version = until(
        lambda: (answer := httpx.get(f"{loop.url}/ready", timeout=30).json()["model_version"]) != "1" and answer,
        timeout=30, what="serving picking up the promoted model", interval=0.5,
    )  # fmt: skip
    assert version == "2"
    flight = loop.flights[loop.flights["sched_dep_ts"] >= DRIFTED[0]].iloc[0]
    body = {"flights": [{"flight_id": flight.flight_id, "tailnum": flight.tailnum, "origin": flight.origin,
                         "dest": flight.dest, "carrier": flight.carrier, "distance": float(flight.distance),
                         "sched_hour": int(flight.sched_hour), "day_of_week": int(flight.day_of_week)}]}  # fmt: skip
    assert httpx.post(f"{loop.url}/predict", json=body, timeout=30).json()["model_version"] == "2"
