"""What docs/monitoring.md and `make up` send users to, against Debian's prometheus with `make up`'s
config: every URL answers, every promtool command succeeds, the alerts page lists every rule."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from featureloop.operations.services import ALERT_RULES, prometheus_config, services
from featureloop.settings import PROJECT_ROOT, Settings
from tests.integration.conftest import free_port
from tests.waiting import until

pytestmark = pytest.mark.integration

GUIDE = PROJECT_ROOT / "docs" / "monitoring.md"
DOCUMENTED_PORT = "9090"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's prometheus on a free port, with the config `make up` writes (its serving target is
    down: the pages and the rules do not need it)."""
    binary = shutil.which("prometheus")
    assert binary, "Debian's prometheus is needed: `apt-get install prometheus` (make test installs it)"
    tmp = tmp_path_factory.mktemp("prometheus")
    (tmp / "prometheus.yml").write_text(prometheus_config(free_port(), interval="1s"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [binary, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        until(
            lambda: _rules_loaded(url),
            timeout=60,
            what="prometheus loading the rules",
            process=proc,
            interval=0.2,
        )
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _rules_loaded(url: str) -> bool:
    try:
        return bool(httpx.get(f"{url}/api/v1/rules", timeout=2).json()["data"]["groups"])
    except (httpx.HTTPError, ValueError, KeyError):  # not listening, or not ready yet
        return False


def _on(url: str, port: str) -> str:
    return url.replace(f"127.0.0.1:{DOCUMENTED_PORT}", f"127.0.0.1:{port}")


def test_every_prometheus_url_the_guide_gives_answers(prometheus: str) -> None:
    port = prometheus.rsplit(":", 1)[1]
    found = re.findall(rf"http://127\.0\.0\.1:{DOCUMENTED_PORT}/[^\s`),]*", GUIDE.read_text())
    urls = {url.rstrip(".:") for url in found}  # not the sentence's punctuation
    assert {u.split("?")[0].rsplit("/", 1)[1] for u in urls} >= {"alerts", "rules", "query", "targets"}
    for url in sorted(urls):
        response = httpx.get(_on(url, port), timeout=10)
        assert response.status_code == 200, url
        if "/api/" in url:
            assert response.json()["status"] == "success", url


def test_the_alerts_page_lists_every_rule(prometheus: str) -> None:
    rules = [r["alert"] for g in yaml.safe_load(ALERT_RULES.read_text())["groups"] for r in g["rules"]]
    page = httpx.get(f"{prometheus}/classic/alerts", timeout=10).text
    assert rules and [name for name in rules if name not in page] == []
    api = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    assert sorted(r["name"] for g in api for r in g["rules"]) == sorted(rules)


def test_every_promtool_command_the_guide_gives_succeeds(prometheus: str) -> None:
    assert shutil.which("promtool"), "promtool comes with Debian's prometheus package"
    port = prometheus.rsplit(":", 1)[1]
    commands = re.findall(r"`(promtool [^`]+)`", GUIDE.read_text())
    assert any(" check rules " in c for c in commands) and any(" query instant " in c for c in commands)
    for command in commands:
        done = subprocess.run(
            shlex.split(_on(command, port)), cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, (command, done.stdout, done.stderr)


def test_the_prometheus_url_make_up_prints_answers(
    prometheus: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FEATURELOOP_PROMETHEUS_PORT", prometheus.rsplit(":", 1)[1])
    (service,) = [
        s for s in services(Settings(data_dir=tmp_path), tmp_path / "run") if s.name == "prometheus"
    ]
    response = httpx.get(service.url, timeout=10)
    assert response.status_code == 200 and response.json()["status"] == "success", service.url
