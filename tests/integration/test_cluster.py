"""The whole scale-out stack from one command, and the loop on it (issue 19's "done when").

`featureloop up` (what `make up` runs) with FEATURELOOP_PROFILE=scaleout, two Prefect workers and
two serving replicas starts, on this machine: Redis (a password), PostgreSQL (password
authentication, its cluster created on first start), the Prefect server on PostgreSQL (basic auth),
the flows deployed into a process work pool and two workers, the MLflow tracking server (PostgreSQL,
proxied artifacts, basic auth) and Prometheus. Then the loop runs as a team would run it, every flow
on a worker: materialise, train a first (deliberately weak) champion, `featureloop up` again to start
the serving replicas behind HAProxy, predictions through the balancer with the token, the drift run
over the served window, its event, the retrain the automation creates, and the replicas' swap to the
new champion; `featureloop status` shows it all healthy and `featureloop down` stops all of it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from featureloop.monitoring.thresholds import DecayConfig, DriftConfig
from featureloop.operations.base import listening
from featureloop.params import DriftParams
from featureloop.settings import PROJECT_ROOT, Settings
from tests.integration.conftest import FeastEnv, free_port

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

FEATURELOOP = str(Path(sys.executable).parent / "featureloop")
WINDOW = (datetime(2013, 1, 21, tzinfo=UTC), datetime(2013, 1, 24, tzinfo=UTC))
TOKEN = secrets.token_urlsafe(24)
PREFECT_AUTH = f"featureloop:{secrets.token_urlsafe(18)}"


@dataclass
class Cluster:
    settings: Settings
    env: dict[str, str]
    ports: dict[str, int]
    timings: dict[str, float]


def _free_ports(count: int) -> list[int]:
    """`count` distinct free ports, each with the one above it free too (a replica or worker's)."""
    found: list[int] = []
    while len(found) < count:
        port = free_port()
        if (
            port + 2 < 65536
            and not any(abs(port - p) < 3 for p in found)
            and not listening("127.0.0.1", port + 1)
            and not listening("127.0.0.1", port + 2)
        ):
            found.append(port)
    return found


def _featureloop(env: dict[str, str], *args: str, timeout: float = 600) -> str:
    done = subprocess.run(
        [FEATURELOOP, *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, (
        f"featureloop {' '.join(args)}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    )
    return done.stderr + done.stdout  # (progress lines, then the summary)


@pytest.fixture(scope="module")
def cluster(feast_env: FeastEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("cluster")
    names = ["redis", "postgres", "prefect", "mlflow", "prometheus", "serving", "workers", "dashboard"]
    port = dict(zip(names, _free_ports(len(names)), strict=True))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FEATURELOOP_", "PREFECT_API"))},
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "FEATURELOOP_RUN_DIR": str(tmp / "run"),
        "FEATURELOOP_DATA_DIR": str(feast_env.own_data_dir(tmp / "data")),
        "FEATURELOOP_PROFILE": "scaleout",
        "FEATURELOOP_REDIS_URL": f"127.0.0.1:{port['redis']}",
        "FEATURELOOP_REDIS_PASSWORD": secrets.token_urlsafe(18),
        "FEATURELOOP_POSTGRES_URL": f"postgresql://featureloop@127.0.0.1:{port['postgres']}",
        "FEATURELOOP_POSTGRES_PASSWORD": secrets.token_urlsafe(15) + "@:/%",
        "FEATURELOOP_MLFLOW_URL": f"http://127.0.0.1:{port['mlflow']}",
        "FEATURELOOP_MLFLOW_PASSWORD": secrets.token_urlsafe(18),
        "FEATURELOOP_PREFECT_AUTH": PREFECT_AUTH,
        "FEATURELOOP_PREFECT_WORKERS": "2",
        "FEATURELOOP_SERVING_REPLICAS": "2",
        "FEATURELOOP_SERVING_TOKEN": TOKEN,
        "FEATURELOOP_MODEL_RELOAD_SECONDS": "1",
        "FEATURELOOP_PREDICTION_LOG_FLUSH_SECONDS": "0.2",
        **{f"FEATURELOOP_{name.upper()}_PORT": str(port[name]) for name in names[2:]},
    }
    timings: dict[str, float] = {}
    started = time.monotonic()
    try:
        out = _featureloop(env, "up")
        timings["up"] = time.monotonic() - started
        for name in ("redis", "postgres", "prefect", "worker-1", "worker-2", "mlflow", "prometheus"):
            assert f"{name}: up at" in out, out
        assert "deployments: done" in out and "balancer: not started, there is no champion yet" in out, out
        with pytest.MonkeyPatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            yield Cluster(Settings(), env, port, timings)
    finally:
        stopped = subprocess.run(
            [FEATURELOOP, "down"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True
        )
        print(stopped.stdout[-3000:])
        # The PostgreSQL cluster may live outside the run folder (as root: stores.postgres_home).
        shutil.rmtree((tmp / "run" / "postgres").resolve(), ignore_errors=True)


@contextlib.contextmanager
def _prefect(cluster: Cluster) -> Iterator[Any]:
    """A client of the cluster's Prefect server, with its credentials."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    api = f"http://127.0.0.1:{cluster.ports['prefect']}/api"
    with (
        temporary_settings({PREFECT_API_URL: api, PREFECT_API_AUTH_STRING: PREFECT_AUTH}),
        get_client(sync_client=True) as client,
    ):
        yield client


def _run(cluster: Cluster, deployment: str, parameters: dict[str, Any], timeout: float = 300) -> Any:
    """Create a run of a deployment (as the UI does) and wait for its end; the run."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    api = f"http://127.0.0.1:{cluster.ports['prefect']}/api"
    with temporary_settings({PREFECT_API_URL: api, PREFECT_API_AUTH_STRING: PREFECT_AUTH}):
        run = run_deployment(deployment, parameters=parameters, timeout=0)
    return _wait_completed(cluster, run.id, timeout)


def _wait_completed(cluster: Cluster, run_id: Any, timeout: float = 300) -> Any:
    deadline = time.monotonic() + timeout
    with _prefect(cluster) as client:
        while True:
            run = client.read_flow_run(run_id)
            if run.state is not None and run.state.is_final():
                assert run.state.is_completed(), (run.name, run.state)
                return run
            assert time.monotonic() < deadline, (run.name, run.state)
            time.sleep(1)


def _predict(url: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/predict", json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def _ready(url: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/ready", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_the_loop_runs_on_the_whole_scaleout_stack_from_one_command(
    cluster: Cluster, feast_env: FeastEnv
) -> None:
    from featureloop.training.registry import CHALLENGER, CHAMPION, get_alias, open_tracking

    env, timings = cluster.env, cluster.timings
    # Nothing answers without its credentials.
    assert httpx.get(f"http://127.0.0.1:{cluster.ports['prefect']}/api/flows/count").status_code == 401
    assert httpx.get(f"{cluster.settings.mlflow_url}/api/2.0/mlflow/experiments/search").status_code == 401

    _featureloop(env, "apply")
    clock = time.monotonic()
    _run(cluster, "materialize/materialize", {"params": {"end": "2013-01-25T00:00:00Z"}})
    first = {
        "train_start": "2013-01-01T00:00:00Z",
        "train_end": "2013-01-20T00:00:00Z",
        "shuffle_labels": True,
    }
    _run(cluster, "train/train", {"params": first})  # a weak first champion: labels shuffled
    timings["materialise + train on workers"] = time.monotonic() - clock
    client, _ = open_tracking(cluster.settings)
    weak = get_alias(client, cluster.settings.model_name, CHAMPION)
    assert weak is not None

    clock = time.monotonic()
    out = _featureloop(env, "up")  # now there is a champion: the replicas and the balancer start
    timings["up again (serving)"] = time.monotonic() - clock
    assert "serving-1: up" in out and "serving-2: up" in out and "balancer: up" in out, out
    balancer = f"http://127.0.0.1:{cluster.ports['serving']}"
    assert httpx.post(f"{balancer}/predict", json={"flights": []}).status_code == 401
    rows = feast_env.requests(*WINDOW)
    bodies = [{"flights": rows[i : i + 5]} for i in range(0, len(rows) - 4, 5)]
    answers = [_predict(balancer, body) for body in bodies]
    served = sum(len(a["predictions"]) for a in answers)
    assert {a["model_version"] for a in answers} == {weak.version}
    time.sleep(1)  # (the prediction logs flush every 0.2 s)

    # The drift run on a worker, over the served window; its event makes a worker retrain.
    with _prefect(cluster) as prefect:
        retrain = prefect.read_deployment_by_name("retrain/retrain")
        before = {r.id for r in prefect.read_flow_runs()}
    drift = DriftParams(
        window_start=WINDOW[0], window_end=WINDOW[1],
        drift=DriftConfig(min_rows=100, min_psi=0.0, alpha=0.5, share_threshold=0.01),
        decay=DecayConfig(min_labels=50), skew_sample=50, emit_event=True, persistence_k=1, persistence_n=1,
    )  # fmt: skip
    clock = time.monotonic()
    _run(cluster, "drift/drift", {"params": drift.model_dump(mode="json")})
    _, drift_experiment = open_tracking(cluster.settings, f"{cluster.settings.experiment}-drift")
    (drift_run,) = client.search_runs([drift_experiment])
    assert drift_run.data.metrics["rows"] == served and drift_run.data.metrics["event"] == 1.0
    deadline = time.monotonic() + 120
    while True:
        with _prefect(cluster) as prefect:
            created = [
                r for r in prefect.read_flow_runs() if r.id not in before and r.deployment_id == retrain.id
            ]
        if created:
            break
        assert time.monotonic() < deadline, "the drift event created no retrain run"
        time.sleep(1)
    (run,) = created
    _wait_completed(cluster, run.id)
    timings["drift -> event -> retrain on a worker"] = time.monotonic() - clock
    challenger = get_alias(client, cluster.settings.model_name, CHALLENGER)
    assert challenger is not None and challenger.version != weak.version, (
        "the retrain did not beat a shuffled-label model"
    )
    # The gate passed it and a drift-triggered retrain releases by default: both replicas score with
    # it in the shadow of the champion, without a restart (each /ready through the balancer says so).
    clock = time.monotonic()
    shadow = {
        "challenger_version": challenger.version,
        "stage": "shadow",
        "canary_share": None,
        "from_release": True,
    }
    while [_ready(balancer)["release"] for _ in range(10)] != [shadow] * 10:
        assert time.monotonic() < clock + 60, "the replicas did not pick up the release"
        time.sleep(0.2)
    timings["release stage seen through the balancer"] = time.monotonic() - clock
    assert {_predict(balancer, bodies[0])["model_version"] for _ in range(10)} == {weak.version}
    # A person promotes it from the `release` deployment's form; a worker runs it.
    _run(cluster, "release/release", {"params": {"action": "promote", "reason": "the cluster test"}})
    champion = get_alias(client, cluster.settings.model_name, CHAMPION)
    assert champion is not None and champion.version == challenger.version

    # Both replicas swap to it without a restart.
    clock = time.monotonic()
    deadline = clock + 60
    recent: list[str] = []
    while len(recent) < 10 or set(recent[-10:]) != {champion.version}:
        assert time.monotonic() < deadline, recent[-20:]
        recent.append(_predict(balancer, bodies[0])["model_version"])
        time.sleep(0.05)
    timings["swap seen through the balancer"] = time.monotonic() - clock

    status = _featureloop(env, "status")
    for name in (
        "redis",
        "postgres",
        "prefect",
        "worker-1",
        "worker-2",
        "mlflow",
        "serving-1",
        "serving-2",
        "balancer",
        "dashboard",
    ):
        line = next(
            line for line in status.splitlines() if line.split() and line.split()[0].rstrip(":") == name
        )
        assert "healthy" in line and "not healthy" not in line, status
    print("cluster timings (s):", {k: round(v, 1) for k, v in timings.items()})


def test_down_stops_every_part_of_the_stack(cluster: Cluster) -> None:
    out = _featureloop(cluster.env, "down")
    for name in ("redis", "postgres", "prefect", "worker-1", "worker-2", "mlflow", "prometheus", "dashboard"):
        assert f"{name}: stopped" in out, out
    for name in ("redis", "postgres", "prefect", "mlflow", "prometheus", "serving", "dashboard"):
        assert not listening("127.0.0.1", cluster.ports[name]), name
