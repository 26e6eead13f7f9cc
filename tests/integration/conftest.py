"""One real Feast store per test session, on a prepared synthetic dataset."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import uvicorn

from data.prepare import PrepareResult, prepare_dataset
from data.synthetic import SyntheticSpec, generate, write_raw
from featureloop.settings import Settings
from tests.waiting import until


@dataclass(frozen=True)
class FeastEnv:
    settings: Settings
    prepared: PrepareResult
    store: Any  # feast.FeatureStore

    def table(self, name: str) -> pd.DataFrame:
        return pd.read_parquet(self.settings.offline_dir / f"{name}.parquet")

    def own_data_dir(self, root: Path) -> Path:
        """A data folder with the session's prepared offline tables and nothing else (its stores,
        logs and models its own)."""
        root.mkdir(parents=True)
        for name in ("offline", "versions"):
            (root / name).symlink_to((self.settings.data_dir / name).resolve(), target_is_directory=True)
        return root

    def requests(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """/predict rows for every flight scheduled in [start, end), as a product would send them."""
        flights = self.table("flights")
        window = flights[
            (flights["sched_dep_ts"] >= start.isoformat()) & (flights["sched_dep_ts"] < end.isoformat())
        ]
        return [
            {"flight_id": r.flight_id, "tailnum": r.tailnum, "origin": r.origin, "dest": r.dest, "carrier": r.carrier,
             "distance": float(r.distance), "sched_hour": int(r.sched_hour), "day_of_week": int(r.day_of_week),
             "event_timestamp": r.sched_dep_ts.isoformat()}
            for r in window.itertuples()
        ]  # fmt: skip


# Headless chromium with no network: no name resolves but 127.0.0.1, and what is not loopback goes
# to a port nothing listens on (pages must render offline; the browser's own background requests
# go nowhere either).
OFFLINE = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-extensions",
    # No name resolves but 127.0.0.1, and what is not loopback goes to a port nothing listens on.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--proxy-server=127.0.0.1:9",
]  # fmt: skip

# Four weeks, eight flights an hour: enough rows for a holdout on which better models measurably win.
INTEGRATION_SPEC = SyntheticSpec(days=28, flights_per_hour=8, n_aircraft=30, seed=11)


@pytest.fixture(scope="session")
def feast_env(tmp_path_factory: pytest.TempPathFactory) -> FeastEnv:
    from featureloop.featurestore.store import apply_repo, open_store

    root = tmp_path_factory.mktemp("feast")
    raw = write_raw(generate(INTEGRATION_SPEC), root / "raw")
    settings = Settings(data_dir=root / "data", raw_dir=raw)
    prepared = prepare_dataset(raw, settings.versions_dir, settings.offline_dir)
    apply_repo(settings)
    return FeastEnv(settings=settings, prepared=prepared, store=open_store(settings))


@pytest.fixture()
def fresh_registry(feast_env: FeastEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The session's Feast store with a fresh MLflow registry; flows read the same settings from the env."""
    env = {
        "FEATURELOOP_DATA_DIR": str(feast_env.settings.data_dir),
        "FEATURELOOP_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One Prefect test server for the whole session: for each worker's session under `make test`'s
    pytest-xdist, so that no two modules ever share one at the same time (a module's deployments and
    automations would see the other's events). Starting one takes seconds of a core."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


def remove_retrain_deployment() -> None:
    """Take the `retrain` deployment off the session's Prefect server with its automation and its
    unfinished runs: the server outlives a test module, and a later module's drift events (or its
    deployment server) would otherwise start or execute them."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        for automation in client.read_automations():
            if automation.name.startswith("retrain when drift"):
                client.delete_automation(automation.id)
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["retrain"]))
        )
        for run in runs:
            if run.state is None or not run.state.is_final():
                client.delete_flow_run(run.id)
        with contextlib.suppress(ObjectNotFound):
            client.delete_deployment(client.read_deployment_by_name("retrain/retrain").id)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # running in a thread
        pass


@contextlib.contextmanager
def serve_app(app: Any) -> Iterator[str]:
    port = free_port()
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    until(
        lambda: httpx.get(f"{url}/health", timeout=1).status_code == 200 and server.started,
        timeout=120, what="the serving app answering /health", ignoring=(httpx.HTTPError,), interval=0.1,
    )  # fmt: skip
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


# The session's Redis asks every client for it. Kept in the environment: pytest imports this file
# as its conftest and the test modules import it again by name, and both must hold the same value.
REDIS_PASSWORD = os.environ.setdefault("FEATURELOOP_TEST_REDIS_PASSWORD", secrets.token_urlsafe(18))
# The session PostgreSQL's password: characters a URL must escape, so that every place that puts it
# into a connection URL is seen doing so.
POSTGRES_PASSWORD = os.environ.setdefault(
    "FEATURELOOP_TEST_POSTGRES_PASSWORD", secrets.token_urlsafe(15) + "@:/%?#"
)


@contextlib.contextmanager
def run_redis(port: int, password: str | None = None) -> Iterator[str]:
    """A real Redis (Debian's redis-server) on `port`, without persistence, with `password` required
    (`requirepass`) when given, until the block ends; its `host:port`."""
    import shutil
    import subprocess

    binary = shutil.which("redis-server")
    assert binary, "Debian's redis-server is needed: `apt-get install redis-server` (make test installs it)"
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--databases", "16",
         *(["--requirepass", password] if password else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def pong() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall((f"AUTH {password}\r\n" if password else "").encode() + b"PING\r\n")
            time.sleep(0.05)
            return b"+PONG" in sock.recv(64)

    until(
        pong, timeout=30, what="redis-server answering PING", process=proc, ignoring=(OSError,), interval=0.1
    )
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """One Redis for the session, on a free port, asking for REDIS_PASSWORD."""
    with run_redis(free_port(), REDIS_PASSWORD) as address:
        yield address


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL (Debian's) on a free port for the session, its cluster in a temporary folder
    (no fsync: the data is thrown away); `postgresql://featureloop@127.0.0.1:<port>`, asking for
    POSTGRES_PASSWORD (scram-sha-256, on its socket as well)."""
    import os
    import shutil
    import subprocess
    import tempfile

    from featureloop.operations.stores import postgres_bin

    bin_dir = postgres_bin()  # (a clear error when Debian's postgresql is missing)
    root = Path(tempfile.mkdtemp(prefix="featureloop-pg-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: the cluster belongs to Debian's postgres user
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    password_file = root / "password"
    password_file.write_text(POSTGRES_PASSWORD + "\n")
    if as_user:
        shutil.chown(password_file, "postgres")
    subprocess.run(
        [*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "featureloop", "-A", "scram-sha-256",
         f"--pwfile={password_file}", "-E", "UTF8", "--no-sync"],
        check=True, capture_output=True,
    )  # fmt: skip
    password_file.unlink()
    options = (
        f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    subprocess.run(
        [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "-t", "60", "start"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield f"postgresql://featureloop@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
        )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


def featureloop_ok(*args: str) -> Any:
    """`featureloop ARGS` run in-process (typer's runner) in the working directory, as a user runs it
    in a project's folder; its result, once it succeeded (else the failure shows its output)."""
    from typer.testing import CliRunner

    from featureloop.cli import app

    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, f"featureloop {' '.join(args)}:\n{result.output}"
    return result


def without_featureloop_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No FEATURELOOP_* setting of the test session's: a project's own .env configures it."""
    import os

    for name in list(os.environ):
        if name.startswith("FEATURELOOP_"):
            monkeypatch.delenv(name)


@contextlib.contextmanager
def mlflow_server(settings: Settings, home: Path) -> Iterator[Path]:
    """A real `mlflow server` as `make up` starts it on the scale-out profile (PostgreSQL store,
    proxied artifacts, basic auth), with a data folder of its own: no client's folder holds its
    artifacts. Yields that artifact folder."""
    from featureloop.operations.base import healthy
    from featureloop.operations.services import mlflow_service, prepare_mlflow_server

    server = settings.model_copy(update={"data_dir": home / "data"})
    prepare_mlflow_server(server, home)
    service = mlflow_service(server, 0, home, {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    with open(home / "mlflow.log", "ab") as log:
        proc = subprocess.Popen(
            service.command, cwd=home, env=service.env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 120
        while not healthy(service.health):
            assert proc.poll() is None, (home / "mlflow.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "mlflow server not healthy in 120 s"
            time.sleep(0.3)
        yield server.mlflow_artifacts_dir
    finally:
        proc.terminate()
        proc.wait(30)
