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

from featureloop.settings import Settings

POOL = "featureloop"


def worker_port() -> int:
    return int(os.environ.get("FEATURELOOP_WORKERS_PORT", 8280))


def deploy_command(pool: str = POOL) -> list[str]:
    """Deploys every flow into the pool (created when missing) and exits."""
    return [sys.executable, "-m", "flows.deploy", "--work-pool", pool]


def worker_command(name: str, pool: str = POOL, *, limit: int = 1, health: bool = True) -> list[str]:
    command = [str(Path(sys.executable).parent / "prefect"), "worker", "start", "--pool", pool]
    command += ["--type", "process", "--name", name, "--limit", str(limit)]
    return command + (["--with-healthcheck"] if health else [])


def worker_env(env: dict[str, str], index: int) -> dict[str, str]:
    """A worker's environment: its own health port, and a poll every 5 s (Prefect's default: 10)."""
    return {
        **env,
        "PREFECT_WORKER_WEBSERVER_PORT": str(worker_port() + index - 1),
        "PREFECT_WORKER_QUERY_SECONDS": env.get("PREFECT_WORKER_QUERY_SECONDS", "5"),
    }


def worker_names(settings: Settings) -> list[str]:
    return [f"worker-{i}" for i in range(1, settings.prefect_workers + 1)]
