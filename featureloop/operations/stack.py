"""`make up`, `make down`, `make status`: the local stack as processes, without Docker.

`up` starts what is not running yet (the services of featureloop.operations.services), each in a
session of its own with its log under `.run/logs/`, records its pid in `.run/<name>.pid`, waits until
it answers its health URL and prints the URLs. `down` stops exactly the processes whose pid files
`up` wrote (their whole process group). `status` shows each one: running or not, healthy or not, its
URL.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from featureloop.operations.base import Service, healthy, ports
from featureloop.operations.replicas import haproxy_config, replica_ports
from featureloop.operations.services import prepare_mlflow_server, prometheus_config, services
from featureloop.operations.stores import prepare_store, store_services
from featureloop.settings import PROJECT_ROOT, Settings

RUN_DIR = Path(os.environ.get("FEATURELOOP_RUN_DIR", PROJECT_ROOT / ".run"))
# The processes this interpreter started (they outlive `featureloop up`, which just exits; a test
# that calls `up` and `down` in one process reaps them through these).
_children: dict[int, subprocess.Popen[bytes]] = {}


def running_pid(name: str) -> int | None:
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
    # Each part contained, not a prefix: a script's command line starts with its interpreter, and a
    # server may rewrite its title (Redis: "<binary> <config file>" in one argument).
    if not running or (command and not all(part.encode() in running for part in command.split("\0"))):
        path.unlink(missing_ok=True)
        return None
    return pid


def _has_champion(settings: Settings) -> bool:
    from featureloop.training.registry import CHAMPION, get_alias, open_tracking

    client, _ = open_tracking(settings)
    return get_alias(client, settings.model_name, CHAMPION) is not None


def up(settings: Settings, report: Callable[[str], None] = print, timeout: float = 180) -> dict[str, str]:
    """Start what is not running, wait for each to be healthy; returns name -> URL (or why not)."""
    (RUN_DIR / "logs").mkdir(parents=True, exist_ok=True)
    prometheus_dir = RUN_DIR / "prometheus"
    prometheus_dir.mkdir(exist_ok=True)
    token = settings.serving_token.get_secret_value() if settings.serving_token else None
    config = prometheus_dir / "prometheus.yml"
    config.touch(mode=0o600)  # it may hold the serving token
    config.write_text(prometheus_config(replica_ports(settings), token=token))
    if settings.serving_replicas > 1:
        (RUN_DIR / "haproxy.cfg").write_text(haproxy_config(ports()["serving"], replica_ports(settings)))
    started: dict[str, str] = {}
    for store in store_services(settings, RUN_DIR, dict(os.environ)):  # (scale-out, on this machine)
        if running_pid(store.name) is None:
            if healthy(store.health):
                report(f"{store.name}: using the server already answering at {store.url}")
                started[store.name] = store.url
                continue
            prepare_store(settings, store, RUN_DIR)
        _start(store, settings, started, report, timeout)
    if settings.prefect_database_url is not None:  # the scale-out profile: Prefect on PostgreSQL
        from featureloop.operations.postgres import ensure_database

        ensure_database(settings.postgres_database("prefect", secret=True))
    if settings.profile == "scaleout":  # the tracking server: PostgreSQL, proxied artifacts, auth
        prepare_mlflow_server(settings, RUN_DIR / "mlflow")
    for service in services(settings, RUN_DIR):
        _start(service, settings, started, report, timeout)
    return started


def _start(
    service: Service,
    settings: Settings,
    started: dict[str, str],
    report: Callable[[str], None],
    timeout: float,
) -> None:
    """Start one service unless it runs (a step: run it), wait until it is healthy; record its URL."""
    if service.oneshot:  # a step (the deployments into the work pool): run to its end, each time
        log = RUN_DIR / "logs" / f"{service.name}.log"
        report(f"{service.name}: running {' '.join(service.command[1:])} (log {log})")
        with open(log, "ab") as out:
            done = subprocess.run(
                service.command, cwd=PROJECT_ROOT, env=service.env, stdout=out, stderr=subprocess.STDOUT,
                timeout=timeout, check=False,
            )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{service.name} failed ({done.returncode}); see {log}")
        started[service.name] = service.url
        report(f"{service.name}: done, {service.url}")
        return
    if running_pid(service.name) is not None:
        report(f"{service.name}: already running")
        started[service.name] = service.url
        return
    if service.name.startswith(("serving", "balancer")) and not _has_champion(settings):
        report(
            f"{service.name}: not started, there is no champion yet (train one: `make demo`, or `featureloop train` on the scale-out profile; then `make up` again)"
        )
        started[service.name] = "not started: no champion"
        return
    if service.name == "balancer" and shutil.which("haproxy") is None:
        raise RuntimeError("serving replicas need Debian's haproxy in front of them: `make up` installs it")
    if service.name == "prometheus" and shutil.which("prometheus") is None:
        report("prometheus: not started, Debian's `prometheus` is not installed (`make up` installs it)")
        started[service.name] = "not started: not installed"
        return
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
    while not healthy(service.health):
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


def _wait_for_deployments(api: str, deadline: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    """The deployment server is ready when its deployments are registered."""
    while not healthy(f"{api}/deployments/name/retrain/retrain"):
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
    replicas = sorted(p.stem for p in RUN_DIR.glob("serving-*.pid"))
    workers = sorted(p.stem for p in RUN_DIR.glob("worker-*.pid"))
    for name in [
        "dashboard",
        "prometheus",
        "balancer",
        *replicas,
        "serving",
        "mlflow",
        *workers,
        "deployments",
        "prefect",
        "postgres",
        "redis",
    ]:
        pid = running_pid(name)
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
    stores = store_services(settings, RUN_DIR, {})
    for service in [*stores, *services(settings, RUN_DIR)]:
        if service.oneshot:  # (its outcome is on the page its URL names)
            rows.append((service.name, "a step of `make up`", service.url))
            continue
        pid = running_pid(service.name)
        if pid is None and service in stores and healthy(service.health):
            rows.append((service.name, "answering (not started by `make up`)", service.url))
            continue
        state = (
            "stopped" if pid is None else ("healthy" if healthy(service.health) else "running, not healthy")
        )
        rows.append((service.name, state if pid is None else f"{state} (pid {pid})", service.url))
    return rows
