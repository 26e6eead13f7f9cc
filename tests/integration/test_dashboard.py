"""The dashboard, offline, in a real browser, against real parts: the serving app answering /predict
(in-process, on a real port), Debian's Prometheus scraping it with `make up`'s config, a drift run's
reports, MLflow's versions; headless chromium with no network but loopback renders every panel with
uPlot vendored from npm, requests nothing beyond the dashboard's own origin, and leaves a screenshot
in test-artifacts/dashboard.png."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from featureloop.settings import PROJECT_ROOT, Settings
from tests.integration.conftest import OFFLINE, FeastEnv, free_port, serve_app
from tests.waiting import until

pytestmark = pytest.mark.integration

ARTIFACTS = PROJECT_ROOT / "test-artifacts"
TRAIN = {"train_start": datetime(2013, 1, 1, tzinfo=UTC), "train_end": datetime(2013, 1, 22, tzinfo=UTC)}
WINDOW = (datetime(2013, 1, 22, tzinfo=UTC), datetime(2013, 1, 25, tzinfo=UTC))


@dataclass
class Stack:
    settings: Settings
    serving: str
    prometheus: str
    dashboard: str


def _prometheus(config: Path, data: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("prometheus")
    assert binary, "Debian's prometheus is needed: `apt-get install prometheus` (make test installs it)"
    port = free_port()
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={data}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    proc.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    return proc


def _samples(prometheus: str, query: str) -> int:
    try:
        return len(
            httpx.get(f"{prometheus}/api/v1/query", params={"query": query}, timeout=5).json()["data"][
                "result"
            ]
        )
    except (httpx.HTTPError, KeyError, ValueError):
        return 0


@pytest.fixture(scope="module")
def stack(feast_env: FeastEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from dashboard.app import create_app as dashboard_app
    from featureloop.featurestore.materialization import materialize_window
    from featureloop.monitoring.pipeline import run_drift
    from featureloop.operations.services import prometheus_config
    from featureloop.params import DriftParams, TrainParams
    from featureloop.training.pipeline import run_training
    from serving.app import create_app

    tmp = tmp_path_factory.mktemp("dashboard")
    settings = feast_env.settings.model_copy(
        update={"mlflow_tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}", "prediction_log_flush_seconds": 0.2}
    )
    shutil.rmtree(settings.drift_dir, ignore_errors=True)
    assert run_training(settings, TrainParams(**TRAIN), report=lambda _m: None)["promoted"]
    materialize_window(feast_env.store, WINDOW[1])
    with serve_app(create_app(settings)) as serving:
        (tmp / "prometheus.yml").write_text(prometheus_config(int(serving.rsplit(":", 1)[1]), interval="1s"))
        prometheus = _prometheus(tmp / "prometheus.yml", tmp / "data")
        try:
            until(
                lambda: _samples(prometheus.url, "up == 1") > 0,  # type: ignore[attr-defined]
                timeout=60, what="prometheus scraping the serving app", interval=0.5,
            )  # fmt: skip
            rows = feast_env.requests(*WINDOW)
            for i in range(0, len(rows), 25):  # spread over a few scrapes: rates need two samples
                assert (
                    httpx.post(
                        f"{serving}/predict", json={"flights": rows[i : i + 25]}, timeout=30
                    ).status_code
                    == 200
                )
                time.sleep(0.05)
            until(_logged(serving), timeout=30, what="the prediction log written")
            params = DriftParams(
                window_start=WINDOW[0], window_end=WINDOW[1], emit_event=False, skew_sample=0
            )
            run_drift(settings, params)
            until(
                lambda: _samples(prometheus.url, "featureloop_drift_feature_psi") > 0  # type: ignore[attr-defined]
                and _samples(prometheus.url, "rate(featureloop_predictions_total[5m]) > 0") > 0,  # type: ignore[attr-defined]
                timeout=60, what="prometheus holding the serving app's series", interval=0.5,
            )  # fmt: skip
            with serve_app(dashboard_app(settings, prometheus=prometheus.url)) as dashboard:  # type: ignore[attr-defined]
                yield Stack(settings, serving, prometheus.url, dashboard)  # type: ignore[attr-defined]
        finally:
            prometheus.terminate()
            prometheus.wait(timeout=30)


def _logged(url: str) -> Any:
    """A check that the serving app has written every row it answered to the prediction log."""

    def written() -> bool:
        text = httpx.get(f"{url}/metrics", timeout=10).text
        counts = {}
        for line in text.splitlines():
            for name in ("featureloop_prediction_log_rows_total", "featureloop_predictions_total"):
                if line.startswith(name) and not line.startswith("#"):
                    counts[name] = counts.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
        return (
            counts.get("featureloop_prediction_log_rows_total", -1)
            >= counts.get("featureloop_predictions_total", 0)
            > 0
        )

    return written


def test_the_api_serves_the_grafana_panels_the_windows_and_the_events(stack: Stack) -> None:
    live = httpx.get(f"{stack.dashboard}/api/live", params={"minutes": 10}, timeout=30).json()
    panels = {p["title"]: p for p in live["panels"]}
    assert len(panels) == 13 and not any(p["errors"] for p in panels.values())
    for title in ("Requests per second by endpoint", "Predictions by model version and role",
                  "/predict latency p50 / p99", "PSI per feature, last window"):  # fmt: skip
        assert panels[title]["series"], title
    roles = {s["label"] for s in panels["Predictions by model version and role"]["series"]}
    assert roles == {"v1 champion"}
    windows = httpx.get(f"{stack.dashboard}/api/windows", timeout=30).json()
    assert len(windows["windows"]) == 1 and windows["windows"][0]["window_end"] == WINDOW[1].isoformat()
    assert windows["features"] and all(len(windows["psi"][f]) == 1 for f in windows["features"])
    events = httpx.get(f"{stack.dashboard}/api/events", timeout=30).json()
    assert events["error"] is None and events["events"][0]["what"] == "gate passed"


def test_the_page_renders_every_panel_offline_in_chromium(stack: Stack, tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "Debian's chromium is needed: `apt-get install chromium` (make test installs it)"
    netlog = tmp_path / "net.json"
    common = [browser, *OFFLINE, "--window-size=1400,3200", "--virtual-time-budget=15000"]
    dom = subprocess.run(
        [*common, f"--user-data-dir={tmp_path / 'a'}", f"--log-net-log={netlog}", "--dump-dom", stack.dashboard],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert 'data-state="ready"' in dom, dom[:2000]
    drawn = [int(n) for n in re.findall(r'class="panel" data-series="(\d+)"', dom)]
    assert len(drawn) == 13 + 5 and sum(n > 0 for n in drawn) >= 10, drawn
    assert dom.count("<canvas") >= 10 and 'class="error"' not in dom
    # The page asked for nothing but its own origin (the vendored uPlot, its JSON). Chromium's own
    # background requests (which go nowhere: no network) carry another isolation key than the page's.
    log = json.loads(netlog.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    page = {
        e["params"]["url"]
        for e in log["events"]
        if e["type"] == start_job
        and e.get("params", {}).get("network_isolation_key", "").startswith("http://127.0.0.1 ")
    }
    assert f"{stack.dashboard}/static/vendor/uplot-1.6.32/uPlot.iife.min.js" in page
    assert {u for u in page if not u.startswith(stack.dashboard)} == set(), page
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    subprocess.run(
        [*common, f"--user-data-dir={tmp_path / 'b'}", f"--screenshot={shot}", stack.dashboard],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3)
    for colour in ((0x4C, 0x72, 0xB0), (0xDD, 0x84, 0x52)):  # the first two series' lines
        assert (np.abs(pixels.astype(int) - colour).sum(axis=1) < 30).sum() > 200, colour
