"""Serving replicas behind a real load balancer (issue 19), started by the code `make up` runs with
FEATURELOOP_SERVING_REPLICAS=2 on the scale-out profile (`featureloop.operations.services`): two
uvicorn processes reading a real Redis and loading models over HTTP from a real MLflow tracking
server, behind Debian's HAProxy on the serving port, the serving token passed through. Under load
from `hey` (bounded: a rate per worker, loopback only) and from a client that records every answer:
a promotion reaches both replicas within the reload interval and no answer comes from a version
outside {previous champion, new champion}; a replica killed mid-load costs no failed request; the
drift run counts every row both replicas served, once.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from featureloop.featurestore.materialization import materialize_window
from featureloop.featurestore.store import apply_repo, open_store
from featureloop.monitoring.pipeline import run_drift
from featureloop.monitoring.thresholds import DecayConfig, DriftConfig
from featureloop.operations.base import Service, healthy
from featureloop.operations.replicas import haproxy_config, serving_services
from featureloop.params import DriftParams, TrainParams
from featureloop.settings import Settings
from featureloop.training.pipeline import run_training
from featureloop.training.registry import get_version, open_tracking, promote
from tests.integration.conftest import POSTGRES_PASSWORD, REDIS_PASSWORD, FeastEnv, free_port, mlflow_server

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

TOKEN = secrets.token_urlsafe(24)
FIRST = TrainParams(train_start=datetime(2013, 1, 1, tzinfo=UTC), train_end=datetime(2013, 1, 20, tzinfo=UTC))
SECOND = TrainParams(
    train_start=datetime(2013, 1, 4, tzinfo=UTC), train_end=datetime(2013, 1, 21, tzinfo=UTC)
)
WINDOW = (datetime(2013, 1, 21, tzinfo=UTC), datetime(2013, 1, 24, tzinfo=UTC))
ROWS = 5  # flights per request
RELOAD = 1.0  # FEATURELOOP_MODEL_RELOAD_SECONDS


@dataclass
class Stack:
    settings: Settings
    url: str  # the balancer
    replicas: dict[str, tuple[str, subprocess.Popen[bytes]]]  # name -> (url, process)
    versions: tuple[str, str]  # the champion when serving starts, the one promoted under load
    bodies: list[dict[str, Any]]
    run_dir: Path


def _free_block(n: int) -> int:
    """A port p with p .. p + n free (the balancer on p, the replicas above it)."""
    for _ in range(50):
        port = free_port()
        if port + n < 65536 and all(_free(port + i) for i in range(1, n + 1)):
            return port
    raise RuntimeError("no free block of ports on loopback")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _bodies(feast_env: FeastEnv) -> list[dict[str, Any]]:
    rows = feast_env.requests(*WINDOW)
    return [{"flights": rows[i : i + ROWS]} for i in range(0, len(rows) - ROWS + 1, ROWS)]


def _start(service: Service, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            service.command, env=service.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _wait_healthy(service: Service, proc: subprocess.Popen[bytes], log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not healthy(service.health):
        assert proc.poll() is None, f"{service.name} exited: {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"{service.name} not healthy in {timeout:.0f} s"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def stack(
    feast_env: FeastEnv, redis_server: str, postgres_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("replicas")
    data = feast_env.own_data_dir(tmp / "data")
    port = _free_block(2)
    env = {
        "FEATURELOOP_PROFILE": "scaleout",
        "FEATURELOOP_REDIS_URL": f"{redis_server},db=7",
        "FEATURELOOP_REDIS_PASSWORD": REDIS_PASSWORD,
        "FEATURELOOP_POSTGRES_URL": postgres_server,
        "FEATURELOOP_POSTGRES_PASSWORD": POSTGRES_PASSWORD,
        "FEATURELOOP_POSTGRES_DATABASE_PREFIX": "replicas",  # not the scale-out module's databases
        "FEATURELOOP_MLFLOW_URL": f"http://127.0.0.1:{free_port()}",
        "FEATURELOOP_MLFLOW_PASSWORD": secrets.token_urlsafe(18),
        "FEATURELOOP_DATA_DIR": str(data),
        "FEATURELOOP_SERVING_PORT": str(port),
        "FEATURELOOP_SERVING_REPLICAS": "2",
        "FEATURELOOP_SERVING_TOKEN": TOKEN,
        "FEATURELOOP_MODEL_RELOAD_SECONDS": str(RELOAD),
        "FEATURELOOP_PREDICTION_LOG_FLUSH_SECONDS": "0.2",
    }
    run_dir = tmp / "run"
    run_dir.mkdir()
    with pytest.MonkeyPatch.context() as patch, contextlib.ExitStack() as stop:
        for key, value in env.items():
            patch.setenv(key, value)
        settings = Settings()
        stop.enter_context(mlflow_server(settings, tmp / "mlflow-server"))
        apply_repo(settings)
        materialize_window(open_store(settings), WINDOW[0])
        first = run_training(settings, FIRST, report=lambda _m: None)["version"]
        second = run_training(settings, SECOND, report=lambda _m: None)["version"]
        client, _ = open_tracking(settings)
        promote(client, get_version(client, settings.model_name, first))  # v1 serves; v2 waits
        services = serving_services(settings, run_dir, dict(os.environ))
        (run_dir / "haproxy.cfg").write_text(
            haproxy_config(port, [int(s.url.rsplit(":", 1)[1]) for s in services[:-1]])
        )
        procs = {s.name: _start(s, run_dir / f"{s.name}.log") for s in services}
        for proc in procs.values():
            stop.callback(_stop, proc)
        for s in services:
            _wait_healthy(s, procs[s.name], run_dir / f"{s.name}.log")
        replicas = {s.name: (s.url, procs[s.name]) for s in services if s.name != "balancer"}
        yield Stack(
            settings, f"http://127.0.0.1:{port}", replicas, (first, second), _bodies(feast_env), run_dir
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Answer:
    sent: float
    status: int
    versions: set[str]


def _load(url: str, bodies: list[dict[str, Any]], seconds: float, workers: int = 3) -> list[Answer]:
    """Every answer of `workers` clients posting the bodies in turn for `seconds`."""
    answers: list[Answer] = []
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def worker(offset: int) -> None:
        with httpx.Client(base_url=url, headers=AUTH, timeout=30) as client:
            i = offset
            while time.monotonic() < end:
                sent = time.monotonic()
                try:
                    response = client.post("/predict", json=bodies[i % len(bodies)])
                    status = response.status_code
                    versions = {response.json()["model_version"]} if status == 200 else set()
                except httpx.HTTPError:
                    status, versions = 0, set()
                with lock:
                    answers.append(Answer(sent, status, versions))
                i += workers

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(worker, range(workers)))
    return answers


def _hey(url: str, body: dict[str, Any], seconds: float, folder: Path) -> subprocess.Popen[str]:
    """`hey` posting one body at a bounded rate (2 workers x 20 requests/s), loopback only."""
    path = folder / "body.json"
    path.write_text(json.dumps(body))
    command = ["hey", "-z", f"{seconds}s", "-c", "2", "-q", "20", "-m", "POST", "-T", "application/json"]
    command += ["-H", f"Authorization: Bearer {TOKEN}", "-D", str(path), f"{url}/predict"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _hey_statuses(proc: subprocess.Popen[str]) -> dict[str, int]:
    out, _ = proc.communicate(timeout=120)
    statuses = {code: int(n) for code, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)}
    errors = re.search(r"Error distribution:\n((?:\s+\[\d+\].*\n?)+)", out)
    if errors:
        statuses["errors"] = sum(int(n) for n in re.findall(r"\[(\d+)\]", errors.group(1)))
    assert statuses, out
    return statuses


def _served_rows(settings: Settings) -> int:
    params = DriftParams(
        window_start=WINDOW[0], window_end=WINDOW[1], drift=DriftConfig(), decay=DecayConfig(min_labels=50),
        skew_sample=0, emit_event=False,
    )  # fmt: skip
    report, _ = run_drift(settings, params)
    return int(report["summary"]["rows"])


def _load_seconds(log: Path, old: str, new: str) -> float:
    found = re.findall(rf"champion moved: version {old} -> {new} \(loaded in ([\d.]+) s\)", log.read_text())
    assert len(found) == 1, log.read_text()[-3000:]
    return float(found[0])


def test_the_balancer_passes_the_serving_token_and_serving_requires_it(stack: Stack) -> None:
    body = stack.bodies[0]
    assert httpx.post(f"{stack.url}/predict", json=body, timeout=30).status_code == 401
    answered = httpx.post(f"{stack.url}/predict", json=body, headers=AUTH, timeout=30)
    assert answered.status_code == 200 and len(answered.json()["predictions"]) == ROWS


def test_a_promotion_under_load_reaches_both_replicas_and_the_drift_run_counts_every_row_once(
    stack: Stack, tmp_path: Path
) -> None:
    old, new = stack.versions
    time.sleep(0.5)  # the token test's rows are flushed
    before = _served_rows(stack.settings)
    hey = _hey(stack.url, stack.bodies[1], 8, tmp_path)
    seen: dict[str, float] = {}

    def promote_then_watch() -> float:
        time.sleep(2.5)
        client, _ = open_tracking(stack.settings)
        promote(client, get_version(client, stack.settings.model_name, new))
        promoted = time.monotonic()
        while len(seen) < len(stack.replicas) and time.monotonic() < promoted + 30:
            for name, (url, _proc) in stack.replicas.items():
                if (
                    name not in seen
                    and httpx.get(f"{url}/ready", headers=AUTH, timeout=10).json()["model_version"] == new
                ):
                    seen[name] = time.monotonic() - promoted
            time.sleep(0.05)
        return promoted

    with ThreadPoolExecutor(1) as pool:
        promotion = pool.submit(promote_then_watch)
        answers = _load(stack.url, stack.bodies, 8)
        promoted = promotion.result()
    statuses = _hey_statuses(hey)
    # Each replica noticed the alias within the reload interval: what it took beyond its own load
    # of the new model (over HTTP from the tracking server, compiled and checked: its log says how
    # long) is at most the interval, plus our poll's slack.
    loads = {name: _load_seconds(stack.run_dir / f"{name}.log", old, new) for name in stack.replicas}
    assert set(seen) == set(stack.replicas), seen
    assert all(seen[name] - loads[name] <= RELOAD + 0.5 for name in seen), (seen, loads)
    assert {a.status for a in answers} == {200} and set(statuses) == {"200"}, statuses
    assert set().union(*(a.versions for a in answers)) == {old, new}  # nothing outside the plan
    settled = promoted + max(seen.values()) + 0.5
    assert all(a.versions == {new} for a in answers if a.sent > settled)
    time.sleep(1.0)  # both replicas flush their logs (every 0.2 s)
    assert _served_rows(stack.settings) - before == ROWS * (len(answers) + statuses["200"])


def test_a_replica_killed_under_load_costs_no_failed_request(stack: Stack, tmp_path: Path) -> None:
    hey = _hey(stack.url, stack.bodies[2], 8, tmp_path)
    _url, victim = stack.replicas["serving-1"]

    def kill() -> None:
        time.sleep(2.5)
        os.killpg(victim.pid, signal.SIGKILL)

    with ThreadPoolExecutor(1) as pool:
        killed = pool.submit(kill)
        answers = _load(stack.url, stack.bodies, 8)
        killed.result()
    statuses = _hey_statuses(hey)
    assert victim.wait(10) == -signal.SIGKILL
    assert len(answers) > 50 and {a.status for a in answers} == {200}, [
        a.status for a in answers if a.status != 200
    ]
    assert set(statuses) == {"200"}, statuses
