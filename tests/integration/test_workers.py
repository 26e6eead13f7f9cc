"""Flows run by Prefect workers (issue 19): the deployments in a process work pool
(`flows.deploy.deploy_to_pool`, what `make up` does with FEATURELOOP_PREFECT_WORKERS), executed by
two real `prefect worker start` processes instead of the process that `serve()` is: runs spread over
both, and the drift event's automation creates a `retrain` run that whichever worker is free picks
up and completes (trained, registered, promoted), on the session's Prefect server.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from featureloop.featurestore.store import apply_repo
from featureloop.operations.base import healthy
from featureloop.operations.workers import worker_services
from featureloop.settings import PROJECT_ROOT, Settings
from tests.integration.conftest import FeastEnv, free_port, remove_retrain_deployment

pytestmark = pytest.mark.integration

POOL = "featureloop-test-pool"
NAMES = ("materialize", "drift", "train", "retrain", "rollback")


@dataclass
class Workers:
    settings: Settings
    logs: dict[str, Path]  # worker name -> its log


def _wait_online(count: int, timeout: float = 120) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import WorkerFilter, WorkerFilterStatus

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            online = client.read_workers_for_work_pool(
                POOL, worker_filter=WorkerFilter(status=WorkerFilterStatus(any_=["ONLINE"]))
            )
            if len(online) >= count:
                return
            assert time.monotonic() < deadline, f"{len(online)} of {count} workers online"
            time.sleep(0.5)


def _remove_pool_and_deployments() -> None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    remove_retrain_deployment()
    with get_client(sync_client=True) as client:
        for name in NAMES:
            with contextlib.suppress(ObjectNotFound):
                client.delete_deployment(client.read_deployment_by_name(f"{name}/{name}").id)
        with contextlib.suppress(ObjectNotFound):
            client.delete_work_pool(POOL)


@pytest.fixture(scope="module")
def workers(
    feast_env: FeastEnv, prefect_server: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workers]:
    from prefect.settings import PREFECT_API_URL

    from flows.deploy import deploy_to_pool

    tmp = tmp_path_factory.mktemp("workers")
    data = feast_env.own_data_dir(tmp / "data")
    settings = feast_env.settings.model_copy(update={"data_dir": data})
    apply_repo(settings)
    ids = deploy_to_pool(POOL, None, None)
    assert len(ids) == len(NAMES)
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_WORKER_QUERY_SECONDS": "1",  # (default 10 s)
        "FEATURELOOP_DATA_DIR": str(data),
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    os.environ["FEATURELOOP_WORKERS_PORT"] = str(free_port())  # (the health ports: this one and the next)
    services = worker_services(2, env, "", POOL)  # as `make up` starts them
    logs = {w.name: tmp / f"{w.name}.log" for w in services}
    procs = []
    try:
        for worker in services:
            with open(logs[worker.name], "ab") as out:
                procs.append(
                    subprocess.Popen(
                        worker.command, cwd=PROJECT_ROOT, env=worker.env, stdout=out, stderr=subprocess.STDOUT
                    )
                )
        _wait_online(2)
        for worker in services:  # each answers its health URL, as `make up` and `make status` ask
            assert healthy(worker.health)
        yield Workers(settings, logs)
    finally:
        os.environ.pop("FEATURELOOP_WORKERS_PORT", None)
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
        _remove_pool_and_deployments()


def _ran_by(workers: Workers) -> dict[str, str]:
    """flow run id -> the worker whose log says it submitted it."""
    found = {}
    for name, log in workers.logs.items():
        for run_id in re.findall(r"[Ss]ubmitting flow run '([0-9a-f-]{36})'", log.read_text()):
            found[run_id] = name
    return found


def _wait_final(run_ids: list[Any], timeout: float = 240) -> list[Any]:
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            runs = [client.read_flow_run(i) for i in run_ids]
            if all(r.state is not None and r.state.is_final() for r in runs):
                return runs
            assert time.monotonic() < deadline, [(r.name, r.state and r.state.type) for r in runs]
            time.sleep(1)


def test_runs_spread_over_both_workers(workers: Workers) -> None:
    """A drift run (of a window nobody served: it ends "no window") and a materialisation, created
    together: each deployment runs one at a time and each worker takes one run at a time, so the
    two run side by side, one on each worker; then two more of each."""
    from prefect.deployments import run_deployment

    drift = {
        "params": {
            "window_start": "2013-01-02T00:00:00Z",
            "window_end": "2013-01-03T00:00:00Z",
            "emit_event": False,
        }
    }
    load = {"params": {"end": "2013-01-10T00:00:00Z"}}
    runs = []
    for _ in range(2):
        runs += [run_deployment("drift/drift", parameters=drift, timeout=0),
                 run_deployment("materialize/materialize", parameters=load, timeout=0)]  # fmt: skip
    finished = _wait_final([r.id for r in runs])
    assert all(r.state.is_completed() for r in finished), [r.state for r in finished]
    by = _ran_by(workers)
    assert {by.get(str(r.id)) for r in runs} == {"worker-1", "worker-2"}, by


def test_the_drift_event_makes_a_worker_retrain(workers: Workers) -> None:
    """The automation turns the event into a `retrain` run; a worker runs it: the first model of
    this data folder is trained, registered and promoted."""
    from prefect.client.orchestration import get_client

    from flows.drift import send_event
    from flows.replay import deployment_runs

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("retrain/retrain")
    before = deployment_runs(deployment.id)
    window_end = datetime(2013, 1, 20, tzinfo=UTC).isoformat()
    summary = {"model": workers.settings.model_name, "model_version": "none", "window_end": window_end,
               "reasons": ["drift: a test's event"]}  # fmt: skip
    send_event.fn(summary)
    deadline = time.monotonic() + 60
    while not (created := deployment_runs(deployment.id) - before):
        assert time.monotonic() < deadline, "the automation created no retrain run"
        time.sleep(0.5)
    (run,) = _wait_final(list(created), timeout=300)
    assert run.state.is_completed(), run.state
    assert _ran_by(workers).get(str(run.id)) in workers.logs
    assert run.parameters["params"]["window_end"].startswith("2013-01-20")
    from featureloop.training.registry import CHAMPION, get_alias, open_tracking

    client, _ = open_tracking(workers.settings)  # what the worker's run registered, in this folder's store
    champion = get_alias(client, workers.settings.model_name, CHAMPION)
    assert champion is not None and champion.version == "1"
