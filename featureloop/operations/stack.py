"""`make up`, `make down`, `make status`: the local stack as processes, without Docker.

`up` starts what is not running yet, each in a session of its own with its log under `.run/logs/`,
records its pid in `.run/<name>.pid`, waits until it answers its health URL and prints the URLs:
the Prefect server (SQLite under `.run/prefect`), the deployment server (`python -m flows.deploy`),
the MLflow UI on the tracking store, the serving app (when a champion exists), and Prometheus
(Debian's package) scraping the serving app, with the alert rules in `docs/prometheus/` (its URL is
the alerts API: Debian's build has no /alerts page; docs/monitoring.md says where to look instead).
`down` stops exactly the processes whose pid files `up` wrote (their whole process group).
`status` shows each one: running or not, healthy or not, its URL.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from featureloop.settings import PROJECT_ROOT, Settings

RUN_DIR = Path(os.environ.get("FEATURELOOP_RUN_DIR", PROJECT_ROOT / ".run"))
ALERT_RULES = PROJECT_ROOT / "docs" / "prometheus" / "alerts.yml"
# The processes this interpreter started (they outlive `featureloop up`, which just exits; a test
# that calls `up` and `down` in one process reaps them through these).
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class Service:
    name: str
    url: str
    health: str
    command: list[str]
    env: dict[str, str]


def _ports() -> dict[str, int]:
    return {
        name: int(os.environ.get(f"FEATURELOOP_{name.upper()}_PORT", default))
        for name, default in (("prefect", 4200), ("serving", 8000), ("mlflow", 5000), ("prometheus", 9090))
    }


def prometheus_config(
    serving_port: int, rules: Path = ALERT_RULES, interval: str = "15s", token: str | None = None
) -> str:
    """Scrape the serving app (its own metrics and the drift flow's gauges) and load the alert rules;
    with a serving token, the scrape sends it (serving's /metrics requires it then)."""
    auth = (
        f"    authorization:\n      type: Bearer\n      credentials: {json.dumps(token)}\n" if token else ""
    )
    return (
        f"global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\n"
        f"rule_files:\n  - {rules}\n"
        "scrape_configs:\n"
        "  - job_name: featureloop-serving\n"
        f"{auth}"
        f"    static_configs:\n      - targets: ['127.0.0.1:{serving_port}']\n"
    )


def _prefect_service(
    port: int, env: dict[str, str], database_url: str | None = None, home: Path | None = None
) -> Service:
    """The Prefect server on `port`: on SQLite under its home (`.run/prefect`), or on `database_url`
    (PostgreSQL, the scale-out profile)."""
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **env,
        "PREFECT_API_URL": api,
        "PREFECT_HOME": str(home or RUN_DIR / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    if database_url is not None:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url
    command = [
        str(Path(sys.executable).parent / "prefect"),
        "server",
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    return Service("prefect", f"http://127.0.0.1:{port}", f"{api}/health", command, env)


def services(settings: Settings) -> list[Service]:
    ports = _ports()
    prefect = _prefect_service(
        ports["prefect"],
        {**os.environ, "FEATURELOOP_DATA_DIR": str(settings.data_dir)},
        settings.prefect_database_url,
    )
    prefect_api = prefect.env["PREFECT_API_URL"]
    base = prefect.env
    bin_dir = Path(sys.executable).parent
    prometheus_dir = RUN_DIR / "prometheus"
    return [
        prefect,
        Service(
            "deployments", f"http://127.0.0.1:{ports['prefect']}/deployments", f"{prefect_api}/health",
            [sys.executable, "-m", "flows.deploy"], base,
        ),
        Service(
            "mlflow", f"http://127.0.0.1:{ports['mlflow']}", f"http://127.0.0.1:{ports['mlflow']}/health",
            [str(bin_dir / "mlflow"), "server", "--backend-store-uri", settings.tracking_uri,
             "--default-artifact-root", settings.artifact_location, "--host", "127.0.0.1",
             "--port", str(ports["mlflow"]), "--workers", "1"],
            base,
        ),
        Service(
            "serving", f"http://127.0.0.1:{ports['serving']}", f"http://127.0.0.1:{ports['serving']}/health",
            [str(bin_dir / "uvicorn"), "serving.app:create_app", "--factory", "--host", "127.0.0.1",
             "--port", str(ports["serving"]), "--workers", "1"],
            base,
        ),
        # The alerts API, which every build answers (Debian's has no /alerts page).
        Service(
            "prometheus", f"http://127.0.0.1:{ports['prometheus']}/api/v1/alerts",
            f"http://127.0.0.1:{ports['prometheus']}/-/ready",
            ["prometheus", f"--config.file={prometheus_dir / 'prometheus.yml'}",
             f"--storage.tsdb.path={prometheus_dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{ports['prometheus']}"],
            base,
        ),
    ]  # fmt: skip


def _pid(name: str) -> int | None:
    """The pid `up` recorded for a service, if that process still runs the command it started (after a
    reboot the number may belong to someone else: then the record is stale and is removed)."""
    path = RUN_DIR / f"{name}.pid"
    if not path.exists():
        return None
    pid_text, _, command = path.read_text().partition("\n")
    pid = int(pid_text)
    try:
        running = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        running = b""
    # Contained, not a prefix: a script's command line starts with its interpreter.
    if not running or (command and command.encode() not in running):
        path.unlink(missing_ok=True)
        return None
    return pid


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _has_champion(settings: Settings) -> bool:
    from featureloop.training.registry import CHAMPION, connect, get_alias

    client, _ = connect(settings.tracking_uri, settings.artifact_location, settings.experiment)
    return get_alias(client, settings.model_name, CHAMPION) is not None


def up(settings: Settings, report: Callable[[str], None] = print, timeout: float = 180) -> dict[str, str]:
    """Start what is not running, wait for each to be healthy; returns name -> URL (or why not)."""
    (RUN_DIR / "logs").mkdir(parents=True, exist_ok=True)
    ports = _ports()
    prometheus_dir = RUN_DIR / "prometheus"
    prometheus_dir.mkdir(exist_ok=True)
    token = settings.serving_token.get_secret_value() if settings.serving_token else None
    config = prometheus_dir / "prometheus.yml"
    config.touch(mode=0o600)  # it may hold the serving token
    config.write_text(prometheus_config(ports["serving"], token=token))
    if settings.prefect_database_url is not None:  # the scale-out profile: Prefect on PostgreSQL
        from featureloop.operations.postgres import ensure_database

        ensure_database(settings.postgres_database("prefect"))
    started: dict[str, str] = {}
    for service in services(settings):
        if _pid(service.name) is not None:
            report(f"{service.name}: already running")
            started[service.name] = service.url
            continue
        if service.name == "serving" and not _has_champion(settings):
            report("serving: not started, there is no champion yet (run `make demo` first)")
            started[service.name] = "not started: no champion"
            continue
        if service.name == "prometheus" and shutil.which("prometheus") is None:
            report("prometheus: not started, Debian's `prometheus` is not installed (`make up` installs it)")
            started[service.name] = "not started: not installed"
            continue
        log = RUN_DIR / "logs" / f"{service.name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                service.command, cwd=PROJECT_ROOT, env=service.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        _children[proc.pid] = proc
        # The pid and the start of its command line: `down` only ever stops that process.
        (RUN_DIR / f"{service.name}.pid").write_text(f"{proc.pid}\n" + "\0".join(service.command[:3]))
        report(f"{service.name}: starting (pid {proc.pid}, log {log})")
        deadline = time.monotonic() + timeout
        while not _healthy(service.health):
            if proc.poll() is not None:
                (RUN_DIR / f"{service.name}.pid").unlink(missing_ok=True)
                raise RuntimeError(f"{service.name} exited with {proc.returncode}; see {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{service.name} not healthy after {timeout:.0f} s; see {log}")
            time.sleep(0.5)
        if service.name == "deployments":
            _wait_for_deployments(service.env["PREFECT_API_URL"], deadline, proc, log)
        started[service.name] = service.url
        report(f"{service.name}: up at {service.url}")
    return started


def _wait_for_deployments(api: str, deadline: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    """The deployment server is ready when its deployments are registered."""
    while not _healthy(f"{api}/deployments/name/retrain/retrain"):
        if proc.poll() is not None:
            raise RuntimeError(f"the deployment server exited with {proc.returncode}; see {log}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the deployments were not registered in time; see {log}")
        time.sleep(1)


def _group_alive(pid: int) -> bool:
    """Whether any process of the group `pid` leads still exists (our own exited child is reaped)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def down(report: Callable[[str], None] = print, timeout: float = 30) -> list[str]:
    """Stop the processes `up` started, each with its whole process group (a server's workers
    too), newest first: SIGTERM, then SIGKILL for whatever is left after `timeout`."""
    stopped = []
    for name in ["prometheus", "serving", "mlflow", "deployments", "prefect"]:
        pid = _pid(name)
        if pid is None:
            continue
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, sig)
            deadline = time.monotonic() + wait
            while _group_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if not _group_alive(pid):
                break
        child = _children.pop(pid, None)
        if child is not None:
            child.wait(timeout)
        (RUN_DIR / f"{name}.pid").unlink(missing_ok=True)
        stopped.append(name)
        report(f"{name}: stopped (pid {pid})")
    return stopped


def status(settings: Settings) -> list[tuple[str, str, str]]:
    """(name, state, URL) for each service."""
    rows = []
    for service in services(settings):
        pid = _pid(service.name)
        state = (
            "stopped" if pid is None else ("healthy" if _healthy(service.health) else "running, not healthy")
        )
        rows.append((service.name, state if pid is None else f"{state} (pid {pid})", service.url))
    return rows


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class LocalServer:
    proc: subprocess.Popen[bytes]
    url: str
    api: str
    health: str

    def wait_healthy(self, timeout: float = 180) -> None:
        """Until the server answers its health URL (it must stay alive meanwhile)."""
        deadline = time.monotonic() + timeout
        while not _healthy(self.health):
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"the server exited with {self.proc.returncode} before {self.health} answered"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.health} did not answer within {timeout:.0f} s")
            time.sleep(0.5)


@contextlib.contextmanager
def prefect_server(
    report: Callable[[str], None] = print,
    *,
    database_url: str | None = None,
    home: Path | None = None,
) -> Iterator[LocalServer]:
    """A Prefect server for one batch job (the demo) on a free port, on the same database `make up`
    uses (`.run/prefect`), so `make up` shows the job's runs afterwards; stopped when the job ends.
    Refuses while `make up`'s own server runs: its deployment server would run the job's triggered
    flows as well. With `home` (and optionally `database_url`), a server of its own instead."""
    if home is None and _pid("prefect") is not None:
        raise RuntimeError("the stack from `make up` is running on the same data: stop it with `make down`")
    service = _prefect_service(free_port(), dict(os.environ), database_url, home)
    log_dir = RUN_DIR / "logs" if home is None else home
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / "prefect-demo.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            service.command, cwd=PROJECT_ROOT, env=service.env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    report(f"prefect server: starting on {service.url} (pid {proc.pid}, log {log})")
    try:
        yield LocalServer(proc, service.url, service.env["PREFECT_API_URL"], service.health)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
