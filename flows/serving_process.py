"""The serving app as a process of its own for a replay (and the tests that drive one over HTTP), and
waiting for what it does in the background: the prediction log written, the plan (champion,
challenger and release stage) it answers with after the aliases or a release's tags moved."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from featureloop.operations.base import free_port
from featureloop.settings import PROJECT_ROOT, Settings


@contextlib.contextmanager
def serving_process(settings: Settings, log: Path, timeout: float = 120) -> Iterator[Callable[[], str]]:
    """The serving app in a process of its own (uvicorn, one worker) on a free port; yields a call
    that waits until it is ready and returns its URL (it boots while the caller does other work)."""
    port = free_port()
    env = {
        **os.environ,
        "FEATURELOOP_DATA_DIR": str(settings.data_dir),
        "FEATURELOOP_FEATURE_REPO": str(settings.feature_repo),
        "FEATURELOOP_MODEL_NAME": settings.model_name,
        "FEATURELOOP_PREDICTION_LOG_FLUSH_SECONDS": "0.5",
        "FEATURELOOP_MODEL_RELOAD_SECONDS": "0.25",
        # The replay writes the store between (and beside) its requests: a read waits for a commit
        # rather than failing fast; a replay is reproduced, not served to people.
        "FEATURELOOP_ONLINE_STORE_TIMEOUT_MS": "1000",
    }
    command = [
        str(Path(sys.executable).parent / "uvicorn"), "serving.app:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--log-level", "warning",
    ]  # fmt: skip
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def ready() -> str:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                    return url
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the serving app did not become ready; see {log}")
            time.sleep(0.3)

    try:
        yield ready
    finally:
        proc.terminate()  # a clean shutdown flushes the prediction log
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _metric(client: httpx.Client, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def wait_logged(client: httpx.Client, rows: int, timeout: float = 60) -> None:
    """Until the prediction log holds `rows` rows (serving writes it in the background)."""
    deadline = time.monotonic() + timeout
    while (written := _metric(client, "featureloop_prediction_log_rows_total")) < rows:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the prediction log holds {written:.0f} of {rows} rows after {timeout:.0f} s")
        time.sleep(0.1)


def registry_plan(settings: Settings) -> tuple[str | None, tuple[str, str] | None]:
    """The champion's version and the release in progress (challenger version, stage) in MLflow now."""
    from featureloop.release import tags
    from featureloop.training.registry import CHALLENGER, CHAMPION, get_alias, open_tracking

    client, _ = open_tracking(settings)
    champion = get_alias(client, settings.model_name, CHAMPION)
    challenger = get_alias(client, settings.model_name, CHALLENGER)
    stage = challenger.tags.get(tags.STAGE) if challenger else None
    live = (challenger.version, stage) if challenger and stage in tags.LIVE else None
    return (champion.version if champion else None), live


def wait_plan(client: httpx.Client, settings: Settings, timeout: float = 60) -> str:
    """Until serving answers with the registry's champion and release stage (it polls the aliases and
    the challenger's tags); the champion's version."""
    champion, live = registry_plan(settings)
    deadline = time.monotonic() + timeout
    while True:
        ready = client.get("/ready").json()
        release = ready.get("release")
        seen = (release["challenger_version"], release["stage"]) if release else None
        if ready.get("model_version") == champion and seen == live:
            return str(champion)
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"serving answers with version {ready.get('model_version')} and release {seen}, not "
                f"{champion} and {live}, after {timeout:.0f} s"
            )
        time.sleep(0.1)
