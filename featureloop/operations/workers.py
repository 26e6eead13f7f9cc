"""Prefect workers instead of the deployment server (FEATURELOOP_PREFECT_WORKERS=N): `make up` deploys
the flows into a process work pool (`python -m flows.deploy --work-pool featureloop`, a one-shot
step) and starts N `prefect worker start` processes that poll it, each running one flow run at a time
in a process of its own; whichever worker is free takes the next run (the drift event's `retrain`
runs too). Each worker answers its health URL (`--with-healthcheck`, one port each from
FEATURELOOP_WORKERS_PORT, default 8280).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from featureloop.operations.base import Service

POOL = "featureloop"


def worker_port() -> int:
    return int(os.environ.get("FEATURELOOP_WORKERS_PORT", 8280))


# Seconds between a flow run's heartbeats (Prefect's default: 180): a run whose worker died is marked
# crashed after 3 missed ones (flows/recovery.py) and run again. The deployment step (which sizes the
# automation by it) and the workers (whose runs send them) are given the same value.
HEARTBEAT_SECONDS = "30"


def pool_env(env: dict[str, str]) -> dict[str, str]:
    """`env` with the heartbeat interval of pooled runs (an `env` that sets it wins)."""
    return {
        **env,
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": env.get("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", HEARTBEAT_SECONDS),
    }


def deploy_command(pool: str = POOL) -> list[str]:
    """Deploys every flow into the pool (created when missing) and exits."""
    return [sys.executable, "-m", "flows.deploy", "--work-pool", pool]


def worker_services(count: int, env: dict[str, str], url: str, pool: str = POOL) -> list[Service]:
    """`count` workers of the pool, `worker-1`...: each runs one flow run at a time, answers its
    health URL on a port of its own (from `worker_port()`), and polls every 5 s (Prefect's default:
    10; an `env` that sets PREFECT_WORKER_QUERY_SECONDS wins)."""
    prefect = str(Path(sys.executable).parent / "prefect")
    found = []
    for i in range(1, count + 1):
        name, port = f"worker-{i}", worker_port() + i - 1
        command = [prefect, "worker", "start", "--pool", pool, "--type", "process", "--name", name]
        command += ["--limit", "1", "--with-healthcheck"]
        own = {
            **pool_env(env),
            "PREFECT_WORKER_WEBSERVER_PORT": str(port),
            "PREFECT_WORKER_QUERY_SECONDS": env.get("PREFECT_WORKER_QUERY_SECONDS", "5"),
        }
        found.append(Service(name, url, f"http://127.0.0.1:{port}/health", command, own))
    return found
