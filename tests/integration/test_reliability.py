"""Serving when things go wrong, over real HTTP: the online store's file removed, the prediction log
unwritable, MLflow unreachable at start and later (a real `mlflow server`, stopped and started);
and the OpenAPI schema fuzzed by schemathesis. What serving answers, what it reports, and that
nothing is lost. docs/reliability.md lists each promise with the test that proves it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from featureloop.featurestore.materialization import materialize_window
from featureloop.featurestore.store import open_store
from featureloop.params import TrainParams
from featureloop.settings import PROJECT_ROOT, Settings
from featureloop.training.pipeline import run_training
from featureloop.training.registry import CHAMPION, connect, get_alias
from serving.app import create_app
from tests.integration.conftest import FeastEnv, free_port, serve_app
from tests.waiting import until

pytestmark = pytest.mark.integration

WINDOW = {"train_start": datetime(2013, 1, 1, tzinfo=UTC), "train_end": datetime(2013, 1, 30, tzinfo=UTC)}


@dataclass
class Rig:
    settings: Settings
    flights: list[dict[str, Any]]
    version: str  # the champion
    other: str  # a registered version that is not the champion


@pytest.fixture(scope="module")
def rig(feast_env: FeastEnv, tmp_path_factory: pytest.TempPathFactory) -> Rig:
    """A copy of the session's Feast data (these tests remove and replace its files), its online
    store loaded, a champion in an MLflow of its own."""
    tmp = tmp_path_factory.mktemp("reliability")
    shutil.copytree(feast_env.settings.data_dir, tmp / "data")
    settings = feast_env.settings.model_copy(
        update={
            "data_dir": tmp / "data",
            "mlflow_tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}",
            "model_reload_seconds": 0.2,
            "prediction_log_flush_seconds": 0.2,
        }
    )
    shutil.rmtree(settings.prediction_log_dir, ignore_errors=True)
    end = datetime.fromisoformat(feast_env.prepared.time_range["end"])
    materialize_window(open_store(settings), end)
    summary = run_training(settings, TrainParams(**WINDOW), report=lambda _m: None)
    assert summary["promoted"]
    other = run_training(settings, TrainParams(**WINDOW, promote=False), report=lambda _m: None)
    table = feast_env.table("flights").dropna(subset=["tailnum"]).sample(20, random_state=3)
    flights = [
        {
            "flight_id": r.flight_id, "tailnum": r.tailnum, "origin": r.origin, "dest": r.dest,
            "carrier": r.carrier, "distance": r.distance, "sched_hour": int(r.sched_hour),
            "day_of_week": int(r.day_of_week), "event_timestamp": end.isoformat(),
        }
        for r in table.itertuples()
    ]  # fmt: skip
    return Rig(settings, flights, summary["version"], other["version"])


def _metric(url: str, name: str, **labels: str) -> float:
    """A sample's value from /metrics (0 when the series does not exist yet)."""
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.split(" ")[0] == wanted:
            return float(line.split(" ")[1])
    return 0.0


def _probabilities(response: httpx.Response) -> list[float]:
    assert response.status_code == 200, response.text
    return [p["probability"] for p in response.json()["predictions"]]


def test_a_removed_online_store_is_a_quick_503_naming_it_and_service_resumes_when_it_is_back(
    rig: Rig,
) -> None:
    path = rig.settings.feast_dir / "online.db"
    body = {"flights": rig.flights}
    with serve_app(create_app(rig.settings)) as url:
        before = _probabilities(httpx.post(f"{url}/predict", json=body, timeout=30))
        parked = path.with_name("online.db.parked")
        os.replace(path, parked)  # SQLite's open descriptor would go on reading the removed file
        try:
            start = time.monotonic()
            down = httpx.post(f"{url}/predict", json=body, timeout=30)
            elapsed = time.monotonic() - start
            assert down.status_code == 503
            detail = down.json()["detail"]
            assert str(path) in detail and "featureloop materialize" in detail and "retry" in detail
            assert elapsed < 1.0  # no waiting on anything: one stat of the path
            ready = httpx.get(f"{url}/ready", timeout=30)
            assert ready.status_code == 503 and ready.json()["checks"]["online_store"] is False
            features = httpx.post(
                f"{url}/get-online-features",
                json={"entities": {"origin": ["EWR"]}, "features": ["weather_hourly:temp"]},
                timeout=30,
            )
            assert features.status_code == 503 and str(path) in features.json()["detail"]
            assert not path.exists()  # never recreated as an empty database
            assert _metric(url, "featureloop_errors_total", endpoint="/predict", kind="503") >= 1
        finally:
            shutil.copy2(parked, path)  # back as a new file (another inode): serving reopens it
            parked.unlink()
        # No restart: the next request reads the file that is there now, with the same answers.
        assert _probabilities(httpx.post(f"{url}/predict", json=body, timeout=30)) == before
        assert httpx.get(f"{url}/ready", timeout=30).status_code == 200


def test_an_unwritable_prediction_log_keeps_predictions_flowing_and_loses_nothing(rig: Rig) -> None:
    folder = rig.settings.prediction_log_dir
    with serve_app(create_app(rig.settings)) as url:
        _probabilities(httpx.post(f"{url}/predict", json={"flights": rig.flights[:1]}, timeout=30))
        until(lambda: _metric(url, "featureloop_prediction_log_rows_total") >= 1, what="the first write")
        written = _metric(url, "featureloop_prediction_log_rows_total")
        parked = folder.with_name(folder.name + ".parked")
        os.replace(folder, parked)
        folder.write_text("a file where the log's folder was: nothing can be written under it")
        request_ids = []
        try:
            for _ in range(5):
                response = httpx.post(f"{url}/predict", json={"flights": rig.flights}, timeout=30)
                assert response.status_code == 200  # predictions do not wait for the log
                request_ids.append(response.json()["request_id"])
            held = 5 * len(rig.flights)
            until(
                lambda: _metric(url, "featureloop_prediction_log_spilled_rows") == held,
                what="the rows being held in the spill buffer",
            )
            ready = httpx.get(f"{url}/ready", timeout=30)
            assert ready.status_code == 200 and str(folder) in ready.json()["prediction_log_error"]
        finally:
            folder.unlink()
            os.replace(parked, folder)
        until(
            lambda: _metric(url, "featureloop_prediction_log_rows_total") == written + held,
            what="the held rows being written once the folder is back",
        )
        assert _metric(url, "featureloop_prediction_log_spilled_rows") == 0
        assert httpx.get(f"{url}/ready", timeout=30).json()["prediction_log_error"] is None
        dropped = [
            line
            for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines()
            if line.startswith("featureloop_prediction_log_dropped_total{")
        ]
        assert all(line.endswith(" 0.0") for line in dropped)
    logged = duckdb.sql(
        f"SELECT request_id, count(*) FROM read_parquet('{folder}/**/*.parquet', union_by_name = true) "
        "GROUP BY request_id"
    ).fetchall()
    counts = dict(logged)
    assert all(counts.get(r) == len(rig.flights) for r in request_ids)  # every served row, once


def test_the_load_script_meets_zero_errors_through_a_promotion(rig: Rig) -> None:
    """bench/load.py (Locust, 32 connections) as a test, shortened (3,000 requests at least): every request answered, only by
    the two versions, the new one after the promotion; the champion restored afterwards."""
    env = {
        **os.environ,
        "FEATURELOOP_DATA_DIR": str(rig.settings.data_dir),
        "FEATURELOOP_MLFLOW_TRACKING_URI": rig.settings.tracking_uri,
    }
    done = subprocess.run(
        [sys.executable, "bench/load.py", "--requests", "3000", "--users", "32", "--json"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # 3,000 at least: the script goes on until the new version answers (see SWAP_DEADLINE_S there).
    assert result["ok"] and result["failures"] == 0 and result["requests"] >= 3000
    assert set(result["versions"]) == {rig.version, rig.other}
    assert sum(result["versions"].values()) == result["requests"]
    client, _ = connect(rig.settings.tracking_uri, rig.settings.artifact_location, rig.settings.experiment)
    champion = get_alias(client, rig.settings.model_name, CHAMPION)
    assert champion is not None and champion.version == rig.version


def _serving_command(port: int) -> list[str]:
    return [
        str(Path(sys.executable).parent / "uvicorn"), "serving.app:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip


def test_serving_refuses_to_start_when_mlflow_is_unreachable_and_names_the_uri(rig: Rig) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "FEATURELOOP_DATA_DIR": str(rig.settings.data_dir),
        "FEATURELOOP_MLFLOW_TRACKING_URI": unreachable,
    }
    done = subprocess.run(
        _serving_command(free_port()), cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert f"MLflow tracking store {unreachable} is unreachable" in output
    assert "FEATURELOOP_MLFLOW_TRACKING_URI" in output and "Application startup failed" in output


@contextlib.contextmanager
def mlflow_server(backend_uri: str, port: int, log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A real MLflow tracking server (`mlflow server`, one worker, its own process group) until the
    block ends: its URL and its process."""
    command = [
        str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", backend_uri,
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with open(log, "ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:

        def answering() -> bool:
            assert proc.poll() is None, f"mlflow server exited; see {log}"
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{url}/health", timeout=2).status_code == 200
            return False

        until(answering, timeout=120, what=f"mlflow server answering (see {log})")
        yield url, proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGCONT)
            os.killpg(proc.pid, signal.SIGTERM)  # the server and its uvicorn worker
        proc.wait(timeout=30)


def test_mlflow_going_away_later_keeps_the_loaded_model_serving_and_says_so(
    rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real `mlflow server` frozen (SIGSTOP: it accepts connections and never answers, the worst
    kind of unreachable) under the running app, then resumed. The alias checks time out after
    MLFLOW_HTTP_REQUEST_TIMEOUT (2 s here) without holding any request."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    body = {"flights": rig.flights}
    with contextlib.ExitStack() as stack:
        tracking, server = stack.enter_context(
            mlflow_server(rig.settings.tracking_uri, free_port(), tmp_path / "mlflow-server.log")
        )
        settings = rig.settings.model_copy(update={"mlflow_tracking_uri": tracking})
        url = stack.enter_context(serve_app(create_app(settings)))
        before = _probabilities(httpx.post(f"{url}/predict", json=body, timeout=30))
        assert httpx.get(f"{url}/ready", timeout=30).json()["checks"]["tracking_store"] is True

        os.killpg(server.pid, signal.SIGSTOP)  # MLflow stops answering under the running app
        try:
            start = time.monotonic()
            during = httpx.post(f"{url}/predict", json=body, timeout=30)
            assert time.monotonic() - start < 1.0  # no request waits on MLflow
            assert _probabilities(during) == before and during.json()["model_version"] == rig.version
            until(
                lambda: httpx.get(f"{url}/ready", timeout=30).json()["checks"]["tracking_store"] is False,
                what="/ready reporting the tracking store down",
            )
            ready = httpx.get(f"{url}/ready", timeout=30)
            assert ready.status_code == 200  # still ready: it serves the model it has
            assert ready.json()["model_version"] == rig.version
            assert f"MLflow tracking store {tracking} is unreachable" in ready.json()["tracking_error"]
            assert _metric(url, "featureloop_tracking_errors_total") >= 1
        finally:
            os.killpg(server.pid, signal.SIGCONT)
        until(
            lambda: httpx.get(f"{url}/ready", timeout=30).json()["checks"]["tracking_store"] is True,
            timeout=60,
            what="/ready reporting the tracking store back",
        )
        assert httpx.get(f"{url}/ready", timeout=30).json()["tracking_error"] is None
        settled = _metric(url, "featureloop_tracking_errors_total")
        time.sleep(4 * rig.settings.model_reload_seconds)  # a quiet spell: what must not happen in it
        assert _metric(url, "featureloop_tracking_errors_total") == settled  # polls succeed again


NASTY_BODIES = {
    "not UTF-8": b"\xff(\xfe\x00",
    "NaN distance": b'{"flights": [{"origin": "EWR", "dest": "ORD", "carrier": "UA", "distance": NaN, '
    b'"sched_hour": 1, "day_of_week": 1}]}',
    "year 1": b'{"flights": [{"origin": "EWR", "dest": "ORD", "carrier": "UA", "distance": 1, '
    b'"sched_hour": 1, "day_of_week": 1, "event_timestamp": "0001-01-01T00:00:00+05:00"}]}',
    "deep nesting": b'{"flights": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "huge number": b'{"flights": [{"origin": "EWR", "dest": "ORD", "carrier": "UA", "distance": 1e999999, '
    b'"sched_hour": 1, "day_of_week": 1}]}',
}


def test_nasty_bodies_get_a_422_naming_the_problem_not_a_server_error(rig: Rig) -> None:
    with serve_app(create_app(rig.settings)) as url:
        for name, raw in NASTY_BODIES.items():
            response = httpx.post(
                f"{url}/predict", content=raw, headers={"content-type": "application/json"}, timeout=30
            )
            assert response.status_code == 422, (name, response.status_code, response.text[:300])
            assert response.json()["detail"], name
        # The ends of the calendar that UTC holds are refused, naming the accepted range: one such
        # row in the log would otherwise move every later default drift window.
        for stamp, setting in (
            ("0001-01-01T00:00:00Z", "FEATURELOOP_EVENT_TIME_EARLIEST"),
            ("9999-12-31T18:59:59-05:00", "FEATURELOOP_EVENT_TIME_MAX_AHEAD_SECONDS"),
        ):
            flights = [rig.flights[0], {**rig.flights[0], "event_timestamp": stamp}]
            response = httpx.post(f"{url}/predict", json={"flights": flights}, timeout=30)
            assert response.status_code == 422, (stamp, response.text[:300])
            (error,) = response.json()["detail"]
            assert error["loc"] == ["body", "flights", 1, "event_timestamp"] and setting in error["msg"]
        assert httpx.get(f"{url}/ready", timeout=30).status_code == 200  # and the app is fine


def _fuzz(operation: Any, mode: GenerationMode, excluded: list[Any]) -> Callable[[], None]:
    """A hypothesis test of one operation: generated requests sent to the app, each answer checked."""

    @hypothesis_settings(
        max_examples=40,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        case.call_and_validate(excluded_checks=excluded)

    return check


def test_no_request_the_schema_allows_or_breaks_gets_a_5xx(rig: Rig) -> None:
    """Schemathesis generates requests from the app's own OpenAPI schema, for every operation: ones
    the schema allows and ones that break it. None may get a server error; every answer must be one
    the schema documents, and a request that breaks the schema must be refused (4xx)."""
    with serve_app(create_app(rig.settings)) as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {op.label for op in operations} >= {
            "POST /predict", "POST /get-online-features", "GET /ready", "GET /metrics", "GET /health"
        }  # fmt: skip
        for operation in operations:
            takes_input = bool(list(operation.body) or list(operation.iter_parameters()))
            modes = (
                (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
                if takes_input
                else (GenerationMode.POSITIVE,)
            )
            # Feature names are Feast's registry, not the schema's: a schema-valid name that does
            # not exist is rightly refused (400), not accepted. Prediction times are bounded by the
            # server's clock, which a schema cannot state: one outside the range is rightly a 422.
            excluded = (
                [positive_data_acceptance] if operation.path in ("/get-online-features", "/predict") else []
            )
            for mode in modes:
                _fuzz(operation, mode, excluded)()
