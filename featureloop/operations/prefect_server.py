"""A Prefect server for one batch job (the demo) or a test: started on a free port, stopped when the
job ends."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from featureloop.operations import stack
from featureloop.operations.base import free_port, healthy
from featureloop.operations.services import prefect_service
from featureloop.settings import PROJECT_ROOT


@dataclass(frozen=True)
class LocalServer:
    proc: subprocess.Popen[bytes]
    url: str
    api: str
    health: str

    def wait_healthy(self, timeout: float = 180) -> None:
        """Until the server answers its health URL (it must stay alive meanwhile)."""
        deadline = time.monotonic() + timeout
        while not healthy(self.health):
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
    auth: str | None = None,
) -> Iterator[LocalServer]:
    """A Prefect server for one batch job (the demo) on a free port, on the same database `make up`
    uses (`.run/prefect`), so `make up` shows the job's runs afterwards; stopped when the job ends.
    Refuses while `make up`'s own server runs: its deployment server would run the job's triggered
    flows as well. With `home` (and optionally `database_url`), a server of its own instead; with
    `auth` ("user:password"), one that refuses callers without it."""
    if home is None and stack.running_pid("prefect") is not None:
        raise RuntimeError("the stack from `make up` is running on the same data: stop it with `make down`")
    service = prefect_service(
        free_port(), dict(os.environ), home or stack.RUN_DIR / "prefect", database_url, auth
    )
    log_dir = stack.RUN_DIR / "logs" if home is None else home
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
