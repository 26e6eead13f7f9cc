"""The `drift` flow on a real Prefect server, over what the real serving app logged; skew; the report
in a real headless browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from featureloop.featurestore.materialization import materialize_window
from featureloop.monitoring.thresholds import DecayConfig, DriftConfig
from featureloop.params import DriftParams, TrainParams
from featureloop.settings import PROJECT_ROOT, Settings
from featureloop.training.pipeline import run_training
from featureloop.training.registry import connect
from serving.app import create_app
from tests.integration.conftest import OFFLINE, FeastEnv, serve_app
from tests.waiting import until

pytestmark = pytest.mark.integration

TRAIN = {"train_start": datetime(2013, 1, 1, tzinfo=UTC), "train_end": datetime(2013, 1, 15, tzinfo=UTC)}
WINDOWS = [datetime(2013, 1, 16, tzinfo=UTC) + timedelta(days=3 * i) for i in range(3)]
ARTIFACTS = PROJECT_ROOT / "test-artifacts"


@dataclass
class Monitored:
    settings: Settings
    url: str
    feast_env: FeastEnv


@pytest.fixture(scope="module")
def monitored(
    feast_env: FeastEnv, prefect_server: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Monitored]:
    """A champion, the online store loaded, the serving app up; flows read the same settings from the env."""
    tmp = tmp_path_factory.mktemp("drift")
    env = {
        "FEATURELOOP_DATA_DIR": str(feast_env.settings.data_dir),
        "FEATURELOOP_MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
        "FEATURELOOP_PREDICTION_LOG_FLUSH_SECONDS": "0.1",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        settings = Settings()
        shutil.rmtree(settings.drift_dir, ignore_errors=True)
        summary = run_training(settings, TrainParams(**TRAIN), report=lambda _m: None)
        assert summary["promoted"]
        materialize_window(feast_env.store, datetime.fromisoformat(feast_env.prepared.time_range["end"]))
        with serve_app(create_app(settings)) as url:
            yield Monitored(settings, url, feast_env)


def _serve_window(monitored: Monitored, start: datetime, *, new_fleet: bool) -> int:
    """Send the window's scheduled flights to /predict, stamped with their departure; with `new_fleet`,
    as unknown aircraft on unknown routes (their features are missing from the store: real drift)."""
    flights = monitored.feast_env.table("flights")
    window = flights[
        (flights["sched_dep_ts"] >= start) & (flights["sched_dep_ts"] < start + timedelta(days=3))
    ]
    rows = [
        {
            "flight_id": r.flight_id, "tailnum": f"NEW{i}" if new_fleet else r.tailnum, "origin": r.origin,
            "dest": "XNA" if new_fleet else r.dest, "carrier": r.carrier,
            "distance": float(r.distance) * (3 if new_fleet else 1), "sched_hour": int(r.sched_hour),
            "day_of_week": int(r.day_of_week), "event_timestamp": r.sched_dep_ts.isoformat(),
        }
        for i, r in enumerate(window.itertuples())
    ]  # fmt: skip
    for i in range(0, len(rows), 50):
        response = httpx.post(f"{monitored.url}/predict", json={"flights": rows[i : i + 50]}, timeout=30)
        assert response.status_code == 200, response.text
    return len(rows)


def _params(start: datetime) -> DriftParams:
    return DriftParams(
        window_start=start, window_end=start + timedelta(days=3), persistence_k=2, persistence_n=2,
        drift=DriftConfig(min_rows=300), decay=DecayConfig(min_labels=200), skew_sample=50,
    )  # fmt: skip


def _events(event: str) -> list[dict[str, Any]]:
    from prefect.settings import PREFECT_API_URL

    body = {
        "filter": {"event": {"name": [event]}, "occurred": {"since": "2020-01-01T00:00:00Z"}},
        "limit": 50,
    }
    response = httpx.post(f"{PREFECT_API_URL.value()}/events/filter", json=body, timeout=30)
    response.raise_for_status()
    return list(response.json()["events"])


@pytest.fixture(scope="module")
def drift_runs(monitored: Monitored) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """Two windows served as a new fleet, each checked by the flow: the second makes drift persistent."""
    from flows.drift import drift

    served = _serve_window(monitored, WINDOWS[0], new_fleet=True)
    first = drift(_params(WINDOWS[0]))
    _serve_window(monitored, WINDOWS[1], new_fleet=True)
    second = drift(_params(WINDOWS[1]))
    return served, first, second


def test_drift_flow_reports_and_sends_the_event_on_decay_and_once_drift_persists(
    monitored: Monitored, drift_runs: tuple[int, dict[str, Any], dict[str, Any]]
) -> None:
    served, first, second = drift_runs
    assert first["rows"] == served and first["drifted"] is True
    assert "aircraft_flights_7d" in first["drifted_features"] and "distance" in first["drifted_features"]
    assert first["labelled"] > 0.9 * served and first["auc"] is not None  # outcomes of 2013 are known now
    # The new fleet's features are missing: the model loses its edge at once. Decay is a reason of its
    # own; drift in 1 of 1 window is not yet persistent (k = 2 of n = 2).
    assert first["decayed"] is True and first["auc"] < first["holdout_auc"] - 0.05
    assert first["event"] is True and len(first["reasons"]) == 1 and first["reasons"][0].startswith("decay:")
    assert first["skew_mismatches"] == 0

    assert second["event"] is True and second["event_id"]
    assert second["reasons"][0] == "drift in 2 of the last 2 windows" and second["reasons"][1].startswith(
        "decay:"
    )
    ids = {first["event_id"], second["event_id"]}
    sent = until(  # the server stores events asynchronously
        lambda: (found := [e for e in _events("featureloop.drift.detected") if e["id"] in ids]) and len(found) == 2 and found,
        timeout=30, what="both events stored by the Prefect server", interval=0.5,
    )  # fmt: skip
    sent = [e for e in sent if e["id"] == second["event_id"]]
    assert sent[0]["resource"]["prefect.resource.id"] == "featureloop.model.flight_delay"
    assert sent[0]["payload"]["window_end"] == second["window_end"] and sent[0]["payload"]["share"] > 0.5

    # Outputs: the reports, the history, MLflow, the gauges that serving exposes.
    report = json.loads(Path(second["report"]).with_suffix(".json").read_text())
    assert report["summary"]["event"] and report["decay"]["labelled"] == second["labelled"]
    history = (monitored.settings.drift_dir / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["drifted"] for line in history] == [True, True]
    client, _ = connect(
        monitored.settings.tracking_uri, monitored.settings.artifact_location, "featureloop-drift"
    )
    runs = client.search_runs([client.get_experiment_by_name("featureloop-drift").experiment_id])
    assert len(runs) == 2 and {a.path for a in client.list_artifacts(runs[0].info.run_id)} >= {
        Path(second["report"]).name,
        Path(second["report"]).with_suffix(".json").name,
    }
    metrics = httpx.get(f"{monitored.url}/metrics", timeout=30).text
    assert 'featureloop_drift_verdict{model_version="1"} 1.0' in metrics
    assert 'featureloop_drift_feature_drifted{feature="distance",model_version="1"} 1.0' in metrics
    assert "featureloop_request_seconds_bucket" in metrics  # serving's own metrics are still there


def test_a_window_served_as_trained_does_not_drift_on_its_request_fields(monitored: Monitored) -> None:
    from flows.drift import drift

    _serve_window(monitored, WINDOWS[2], new_fleet=False)
    result = drift(_params(WINDOWS[2]))
    report = json.loads(Path(result["report"]).with_suffix(".json").read_text())
    features = {f["name"]: f for f in report["features"]}
    # The served feature values are one snapshot of the store (the end of the data), so rolling
    # statistics legitimately differ from training; the request fields and the aircraft do not.
    # (day_of_week is left out: a 3-day window holds 3 weekdays, the training set 7.)
    for name in ("distance", "sched_hour", "seats", "manufacturer"):
        assert not features[name]["drifted"], features[name]


def test_skew_check_finds_a_corrupted_online_value(monitored: Monitored) -> None:
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    from featureloop.monitoring.skew import check_view

    store = monitored.feast_env.store
    view = store.get_feature_view("aircraft")
    features = [f.name for f in view.features]
    clean = check_view(store, "aircraft", features, sample=1000)
    assert clean["checked"] > 0 and all(f["mismatches"] == 0 for f in clean["features"].values())

    tailnum = monitored.feast_env.table("aircraft")["tailnum"].iloc[0]
    key = EntityKey(join_keys=["tailnum"], entity_values=[Value(string_val=tailnum)])
    provider = store._get_provider()
    ((stamp, values),) = provider.online_read(
        config=store.config, table=view, entity_keys=[key], requested_features=features
    )
    assert values is not None
    original = values["seats"]
    kind = original.WhichOneof("val")
    wrong = getattr(original, kind) + 7
    corrupted = {**values, "seats": Value(**{kind: wrong})}
    provider.online_write_batch(store.config, view, [(key, corrupted, stamp, None)], progress=None)
    try:
        found = check_view(store, "aircraft", features, sample=1000)
        assert found["features"]["seats"]["mismatches"] == 1
        assert sum(f["mismatches"] for f in found["features"].values()) == 1
        example = found["examples"][0]
        assert example["entity"] == {"tailnum": tailnum} and example["online"] == wrong
    finally:
        provider.online_write_batch(
            store.config, view, [(key, {**values, "seats": original}, stamp, None)], progress=None
        )
    assert check_view(store, "aircraft", features, sample=1000)["features"]["seats"]["mismatches"] == 0


def test_the_html_report_renders_its_plots_in_a_real_browser(
    monitored: Monitored, drift_runs: tuple[int, dict[str, Any], dict[str, Any]], tmp_path: Path
) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "Debian's chromium is needed: `apt-get install chromium` (make test installs it)"
    page = Path(drift_runs[2]["report"])
    # The report is a local file that must render with no network: the browser gets none (and so
    # makes none of its own background requests either).
    flags = [
        *OFFLINE,
        "--hide-scrollbars",
        "--window-size=1320,3000",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    report = json.loads(page.with_suffix(".json").read_text())
    assert dom.count('<svg class="hist"') == len(report["features"])  # one histogram per feature
    assert dom.count('<svg class="trend"') >= 2 and "Drift report" in dom
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "drift_report.png"
    subprocess.run(
        [browser, *flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120, check=True
    )
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3)
    # The bars are drawn in the reference and current colours: the screenshot must contain both.
    for colour in ((0x4C, 0x72, 0xB0), (0xDD, 0x84, 0x52)):
        assert (pixels == colour).all(axis=1).sum() > 500, colour


def test_an_empty_window_says_so_and_gives_no_verdict(monitored: Monitored) -> None:
    from flows.drift import drift

    start = datetime(2013, 1, 2, tzinfo=UTC)  # nothing was served for this time
    result = drift(_params(start))
    assert result["rows"] == 0 and result["drifted"] is None and result["decayed"] is None
    assert result["event"] is False and result["event_id"] is None
    report = json.loads(Path(result["report"]).with_suffix(".json").read_text())
    assert report["verdict"]["reason"] == "window too small: 0 rows < 300; no verdict"
    assert "no decay verdict" in report["decay"]["reason"]


def test_prometheus_scrapes_serving_and_the_drift_gauges_with_the_shipped_rules(
    monitored: Monitored, drift_runs: tuple[int, dict[str, Any], dict[str, Any]], tmp_path: Path
) -> None:
    """Debian's Prometheus with `make up`'s config: the target is up, a drift gauge has a value, the
    alert rules load, and every metric the rules and the Grafana dashboard use exists."""
    from featureloop.operations.services import ALERT_RULES, prometheus_config
    from tests.integration.conftest import free_port

    binary = shutil.which("prometheus")
    assert binary, "Debian's prometheus is needed: `apt-get install prometheus` (make test installs it)"
    serving_port = int(monitored.url.rsplit(":", 1)[1])
    (tmp_path / "prometheus.yml").write_text(prometheus_config(serving_port, interval="1s"))
    port = free_port()
    api = f"http://127.0.0.1:{port}/api/v1"
    proc = subprocess.Popen(
        [binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        result = until(
            lambda: (
                answer := httpx.get(f"{api}/query", params={"query": "featureloop_drift_verdict"}, timeout=5).json()
            )["data"]["result"] and answer,
            timeout=60, what="prometheus scraping the drift gauge", process=proc,
            ignoring=(httpx.HTTPError, ValueError),  # not listening yet, or not answering JSON yet
            interval=0.5,
        )  # fmt: skip
        written = re.search(
            r"^featureloop_drift_verdict\{[^}]*\} (\S+)$",
            (monitored.settings.drift_dir / "metrics.prom").read_text(),
            re.M,
        )
        assert written and float(result["data"]["result"][0]["value"][1]) == float(
            written.group(1)
        )  # the last run's
        targets = httpx.get(f"{api}/targets", timeout=5).json()["data"]["activeTargets"]
        assert [t["health"] for t in targets] == ["up"]
        groups = httpx.get(f"{api}/rules", timeout=5).json()["data"]["groups"]
        assert {g["name"] for g in groups} == {"featureloop-model", "featureloop-serving"}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = httpx.get(f"{monitored.url}/metrics", timeout=30).text
    exposed = set(re.findall(r"^(?:# TYPE )?(featureloop_[a-z0-9_]+)", text, re.M))  # declared, even if unset
    dashboard = (PROJECT_ROOT / "docs" / "grafana" / "featureloop-dashboard.json").read_text()
    used = set(re.findall(r"featureloop_[a-z0-9_]+", ALERT_RULES.read_text() + dashboard)) - {"featureloop_"}
    assert used and used <= exposed, used - exposed


def test_up_starts_the_stack_healthy_and_down_stops_exactly_it(
    monitored: Monitored, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make up` / `make status` / `make down` for real, on free ports and a run folder of its own."""
    from featureloop.operations import stack
    from tests.integration.conftest import free_port

    monkeypatch.setattr(stack, "RUN_DIR", tmp_path / "run")
    for name in ("prefect", "serving", "mlflow", "prometheus", "dashboard"):
        monkeypatch.setenv(f"FEATURELOOP_{name.upper()}_PORT", str(free_port()))
    try:
        urls = stack.up(Settings(), report=lambda _m: None)
        assert set(urls) == {"prefect", "deployments", "mlflow", "serving", "prometheus", "dashboard"}
        # The dashboard reads this stack's Prometheus: every panel answers, none names an error.
        live = httpx.get(f"{urls['dashboard']}api/live", params={"minutes": 5}, timeout=30).json()
        assert live["prometheus"].endswith(os.environ["FEATURELOOP_PROMETHEUS_PORT"])
        assert len(live["panels"]) == 13 and not any(p["errors"] for p in live["panels"])
        assert all(url.startswith("http://127.0.0.1:") for url in urls.values()), urls
        rows = stack.status(Settings())
        assert all(state.startswith("healthy") for _, state, _ in rows), rows
        assert httpx.get(f"{urls['serving']}/ready", timeout=30).json()["model_version"] == "1"
        pids = {name: int((tmp_path / "run" / f"{name}.pid").read_text().split()[0]) for name in urls}
        assert stack.up(Settings(), report=lambda _m: None) == urls  # a second `up` starts nothing new
    finally:
        stopped = stack.down(report=lambda _m: None)
    assert set(stopped) == set(pids)
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)  # each whole process group is gone
    assert (
        httpx.get(f"{monitored.url}/health", timeout=30).status_code == 200
    )  # what it did not start runs on
    assert all(state == "stopped" for _, state, _ in stack.status(Settings()))
