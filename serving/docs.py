"""The OpenAPI page at /docs, rendered by the Swagger UI that ships in this package.

FastAPI's default page loads Swagger UI from a CDN: offline, or wherever the CDN is blocked, it is a
blank page. Here the page and its assets come from the app itself (`serving/static/swagger-ui/`,
swagger-ui-dist vendored by `scripts/vendor_swagger_ui.sh`, version and checksums beside the files).

Like /openapi.json, /docs and its assets answer without the serving token: they describe the API and
hold no data, and a browser sends no bearer token for a stylesheet, a script or the schema Swagger UI
fetches, so requiring one would leave the page blank. The operations themselves still require it.
There is no /redoc: it would load ReDoc and its fonts from CDNs too.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

SWAGGER_UI_DIR = Path(__file__).parent / "static" / "swagger-ui"
DOCS_URL = "/docs"
ASSETS_URL = "/docs/static"


def add_docs(app: FastAPI) -> None:
    """Serve the Swagger UI page at /docs and its assets under /docs/static (create the app with
    `docs_url=None, redoc_url=None`)."""
    assert app.openapi_url is not None, "the docs page shows the OpenAPI schema: keep openapi_url"
    app.mount(ASSETS_URL, StaticFiles(directory=SWAGGER_UI_DIR), name="swagger-ui")
    openapi_url = app.openapi_url

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon-32x32.png",
            # No validator badge: it would send the schema's URL to validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )
