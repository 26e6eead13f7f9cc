"""The /docs page needs nothing outside the app: its Swagger UI assets ship in the package."""

from __future__ import annotations

import asyncio
import hashlib
import re
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from featureloop.settings import Settings
from serving.app import create_app
from serving.docs import SWAGGER_UI_DIR

ASSETS = {
    "swagger-ui-bundle.js": "javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
# Any URL in an attribute, a url(...) or a string of the page: absolute or scheme-relative ones leave the app.
_REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\(\s*["']?([^"')]+)|["'](/[^"'\s]*)["']""")
_EXTERNAL = re.compile(r"""(?:https?:)?//[^\s"'<>)]+""")


class _Client:
    """The app in process, through its ASGI entry (the serving layer included), without its lifespan:
    no store and no model, only the routes."""

    def __init__(self, token: str | None = None) -> None:
        self.app = create_app(Settings(serving_token=SecretStr(token) if token else None))

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://serving") as client:
                return await client.request(method, path, **kwargs)

        return asyncio.run(send())

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)


def test_the_docs_page_references_no_url_outside_the_app() -> None:
    page = _Client().get("/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert _EXTERNAL.findall(page.text) == []
    referenced = {a or b or c for a, b, c in _REFERENCE.findall(page.text)}
    assert {"/docs/static/swagger-ui-bundle.js", "/docs/static/swagger-ui.css", "/openapi.json"} <= referenced


@pytest.mark.parametrize(("name", "content_type"), ASSETS.items())
def test_each_asset_the_page_loads_is_served_from_the_package(name: str, content_type: str) -> None:
    client = _Client()
    assert f"/docs/static/{name}" in client.get("/docs").text
    asset = client.get(f"/docs/static/{name}")
    assert asset.status_code == 200 and content_type in asset.headers["content-type"]
    assert asset.content == (SWAGGER_UI_DIR / name).read_bytes()
    registry = client.app.state.featureloop.metrics.registry  # the assets are counted as /docs, not "other"
    count = "featureloop_request_seconds_count"
    assert registry.get_sample_value(count, {"endpoint": "/docs"}) == 2
    assert registry.get_sample_value(count, {"endpoint": "other"}) is None


def test_the_vendored_files_are_the_published_ones() -> None:
    """SHA256SUMS was written by scripts/vendor_swagger_ui.sh from the tarball it checked."""
    lines = (SWAGGER_UI_DIR / "SHA256SUMS").read_text().splitlines()
    sums = dict(reversed(line.split(maxsplit=1)) for line in lines)
    assert {"swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE"} <= sums.keys()
    for name, digest in sums.items():
        assert hashlib.sha256((SWAGGER_UI_DIR / name).read_bytes()).hexdigest() == digest, name


def test_with_a_token_the_docs_stay_readable_and_the_operations_do_not() -> None:
    client = _Client(token="s3cret")
    for path in ("/docs", "/openapi.json", *(f"/docs/static/{name}" for name in ASSETS)):
        assert client.get(path).status_code == 200, path
    assert client.get("/metrics").status_code == 401
    assert client.post("/get-online-features", json={"features": [], "entities": {}}).status_code == 401


def test_redoc_which_would_load_from_a_cdn_is_not_offered() -> None:
    assert _Client().get("/redoc").status_code == 404
