"""/docs in a real browser that reaches nothing beyond this machine's loopback: Debian's chromium,
every other host unresolvable and every other connection sent to a closed proxy port."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.integration.conftest import OFFLINE, serve_app
from tests.integration.test_serving import Served, served

pytestmark = pytest.mark.integration
__all__ = ["served"]  # the module's fixture: a trained champion, the real app on a real port

_OPERATION = re.compile(r'class="opblock opblock-(\w+)".*?data-path="([^"]+)"', re.S)


def _render(url: str, workdir: Path) -> tuple[str, list[str]]:
    """The DOM after the page's scripts ran, and the URLs the page itself requested (from the net log:
    Chromium's own background requests have another isolation key than the page's)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "Debian's chromium is needed: `apt-get install chromium` (make test installs it)"
    netlog = workdir / "net.json"
    dom = subprocess.run(
        [browser, *OFFLINE, f"--user-data-dir={workdir / 'profile'}", f"--log-net-log={netlog}",
         "--virtual-time-budget=15000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    log = json.loads(netlog.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    page = [
        event["params"]["url"]
        for event in log["events"]
        if event["type"] == start_job
        and event.get("params", {}).get("network_isolation_key", "").startswith("http://127.0.0.1 ")
    ]
    return dom, page


def _documented(url: str) -> set[tuple[str, str]]:
    schema = httpx.get(f"{url}/openapi.json", timeout=30).json()
    return {(method, path) for path, item in schema["paths"].items() for method in item}


def test_docs_render_every_operation_with_no_network_but_loopback(served: Served, tmp_path: Path) -> None:
    dom, requested = _render(f"{served.url}/docs", tmp_path)
    rendered = set(_OPERATION.findall(dom))
    assert rendered == _documented(served.url)
    assert {("post", "/predict"), ("post", "/get-online-features")} <= rendered
    assert {f"{served.url}/docs/static/swagger-ui-bundle.js", f"{served.url}/openapi.json"} <= set(requested)
    assert [u for u in requested if not u.startswith(f"{served.url}/")] == []


def test_the_browser_really_is_offline_a_cdn_page_stays_blank(tmp_path: Path) -> None:
    """The control: FastAPI's default /docs (Swagger UI from a CDN) in the same browser renders nothing,
    and the page did ask the CDN. This is what the serving app's /docs was before it shipped the assets."""
    cdn = FastAPI()

    @cdn.get("/health")
    def health() -> dict[str, str]:
        return {"status": "alive"}

    with serve_app(cdn) as url:
        assert _documented(url) == {("get", "/health")}
        dom, requested = _render(f"{url}/docs", tmp_path)
    assert "cdn.jsdelivr.net" in dom and 'id="swagger-ui"' in dom
    assert _OPERATION.findall(dom) == [] and "opblock" not in dom
    assert any(u.startswith("https://cdn.jsdelivr.net/") for u in requested)
