"""Flows run by Prefect workers (issue 19): the deployments in a process work pool
(`flows.deploy.deploy_to_pool`, what `make up` does with FEATURELOOP_PREFECT_WORKERS), executed by
two real `prefect worker start` processes instead of the process that `serve()` is: runs spread over
both, and the drift event's automation creates a `retrain` run that whichever worker is free picks
up and completes (trained, registered, promoted), on the session's Prefect server.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from featureloop.featurestore.store import apply_repo
from featureloop.operations.base import healthy
from featureloop.operations.workers import worker_services
from featureloop.settings import PROJECT_ROOT, Settings
from tests.integration.conftest import FeastEnv, free_port, remove_retrain_deployment

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

POOL = "featureloop-test-pool"
NAMES = ("materialize", "drift", "train", "tune", "retrain", "rollback", "release")


UNRESPONSIVE_AFTER = timedelta(seconds=45)  # (the workers' runs send a heartbeat every 30 s)


@dataclass
class Workers:
    settings: Settings
    logs: dict[str, Path]  # worker name -> its log
    procs: dict[str, subprocess.Popen[bytes]]  # worker name -> its process


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

    from flows.recovery import remove_recovery

    remove_retrain_deployment()
    remove_recovery()
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
    ids = deploy_to_pool(POOL, None, None, unresponsive_after=UNRESPONSIVE_AFTER, release_every=None)
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
    procs = {}
    try:
        for worker in services:
            with open(logs[worker.name], "ab") as out:
                procs[worker.name] = subprocess.Popen(
                    worker.command, cwd=PROJECT_ROOT, env=worker.env, stdout=out, stderr=subprocess.STDOUT
                )
        _wait_online(2)
        for worker in services:  # each answers its health URL, as `make up` and `make status` ask
            assert healthy(worker.health)
        yield Workers(settings, logs, procs)
    finally:
        os.environ.pop("FEATURELOOP_WORKERS_PORT", None)
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(30)
        _remove_pool_and_deployments()


def _attempts(workers: Workers, run_id: Any) -> dict[str, int]:
    """worker name -> how many times it ran the flow run: the submissions its log names, less those
    the server refused (another worker had claimed the run: "Aborted submission")."""
    found = {}
    for name, log in workers.logs.items():
        text = log.read_text()
        ran = text.count(f"submitting flow run '{run_id}'") - text.count(
            f"Aborted submission of flow run '{run_id}'"
        )
        if ran:
            found[name] = ran
    return found


def _ran_by(workers: Workers, run_id: Any) -> str:
    """The one worker that ran the flow run."""
    (name,) = _attempts(workers, run_id)
    return name


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
    by = {str(r.id): _ran_by(workers, r.id) for r in runs}
    assert set(by.values()) == {"worker-1", "worker-2"}, by


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
    assert _ran_by(workers, run.id) in workers.logs
    assert run.parameters["params"]["window_end"].startswith("2013-01-20")
    from featureloop.training.registry import CHAMPION, get_alias, open_tracking

    client, _ = open_tracking(workers.settings)  # what the worker's run registered, in this folder's store
    champion = get_alias(client, workers.settings.model_name, CHAMPION)
    assert champion is not None and champion.version == "1"


def _running_step(run_id: Any, steps: tuple[str, ...]) -> bool:
    """Whether a task of one of these training steps runs, in the run or its subflows."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId

    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run_id]))
        )
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id, *(c.id for c in children)]))
        )
    return any(
        t.name.startswith(steps) and t.state_type is not None and t.state_type.value == "RUNNING"
        for t in tasks
    )


def _kill_tree(proc: subprocess.Popen[bytes]) -> int:
    """SIGKILL a process and everything it started (the flow run's own process is in a session of its
    own, so a process group would miss it), as a machine that stops would; how many died."""
    import psutil

    parent = psutil.Process(proc.pid)
    victims = [*parent.children(recursive=True), parent]
    for victim in victims:
        victim.kill()
    psutil.wait_procs(victims, timeout=10)
    return len(victims)


def test_a_worker_killed_mid_run_leaves_a_crashed_run_that_the_other_worker_reruns(workers: Workers) -> None:
    """A retrain is running on a worker, in the middle of its training set or fit, when that worker
    and everything it started are SIGKILLed (a machine that stops). The run's heartbeats stop, the
    recovery automation marks it Crashed, the rerun automation schedules it again, and the other
    worker runs it to the end (attempt 2). It ends as an uninterrupted run ends: one new version,
    whose training set and holdout metrics are those of the same training run uninterrupted, and no
    run of it left running."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    from featureloop.params import TrainParams
    from featureloop.training.pipeline import run_training
    from featureloop.training.registry import open_tracking

    client, _ = open_tracking(workers.settings)
    name = workers.settings.model_name
    versions_before = {v.version for v in client.search_model_versions(f"name = '{name}'")}
    window_end = datetime(2013, 1, 27, tzinfo=UTC)
    run = run_deployment(
        "retrain/retrain",
        parameters={
            "params": {"window_end": window_end.isoformat(), "train_days": 14, "reason": "a test's kill"}
        },
        timeout=0,
    )
    deadline = time.monotonic() + 180
    while not _running_step(run.id, ("build_training_set", "fit")):
        assert time.monotonic() < deadline, "the retrain never reached its training set or fit"
        time.sleep(0.2)
    victim = _ran_by(workers, run.id)
    (survivor,) = set(workers.logs) - {victim}
    killed_at = time.monotonic()
    assert _kill_tree(workers.procs[victim]) >= 2  # the worker and the run's process

    with get_client(sync_client=True) as prefect:
        deadline = time.monotonic() + UNRESPONSIVE_AFTER.total_seconds() + 240
        while not (flow_run := prefect.read_flow_run(run.id)).state or not flow_run.state.is_completed():
            assert time.monotonic() < deadline, [
                (s.name, s.message) for s in prefect.read_flow_run_states(run.id)
            ]
            assert not (flow_run.state and flow_run.state.is_final() and flow_run.run_count > 1), (
                flow_run.state
            )
            time.sleep(1)
        history = [(s.type.value, s.name, s.message or "") for s in prefect.read_flow_run_states(run.id)]
    crashed = [h for h in history if h[0] == "CRASHED"]
    assert crashed and "no heartbeat" in crashed[0][2], history
    assert ("SCHEDULED", "AwaitingRetry") in [h[:2] for h in history], history
    assert flow_run.run_count == 2, history
    assert _attempts(workers, run.id) == {victim: 1, survivor: 1}  # (the attempt before the kill; the rerun)
    print(
        f"killed -> completed on {survivor} in {time.monotonic() - killed_at:.0f} s; states: {[h[1] for h in history]}"
    )

    # One new version; its training set and holdout metrics are an uninterrupted run's.
    new = [v for v in client.search_model_versions(f"name = '{name}'") if v.version not in versions_before]
    assert len(new) == 1, [v.version for v in new]
    (version,) = new
    same = TrainParams(train_start=window_end - timedelta(days=14), train_end=window_end,
                       labels_as_of=window_end, promote=False)  # fmt: skip
    uninterrupted = run_training(workers.settings, same, report=lambda _m: None)
    assert version.tags["training_set_digest"] == uninterrupted["lineage"]["training_set_digest"]
    assert {k: float(version.tags[f"holdout.{k}"]) for k in uninterrupted["holdout"]} == uninterrupted[
        "holdout"
    ]
    # Nothing of the killed attempt is left running: its subflow run ended too.
    with get_client(sync_client=True) as prefect:
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

        children = prefect.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id]))
        )
    assert children and all(c.state is not None and c.state.is_final() for c in children), [
        (c.name, c.state) for c in children
    ]
    print("its subflow runs:", [(c.flow_id, c.state_name, c.run_count) for c in children])
