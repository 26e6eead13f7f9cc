"""The dashboard app: one page (static, with uPlot vendored from npm: nothing from a CDN) and the
JSON it draws (dashboard/data.py). Run it with `uvicorn dashboard.app:create_app --factory`;
`make up` starts it beside Prometheus and prints its URL."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from featureloop.settings import Settings

STATIC = Path(__file__).parent / "static"


def create_app(settings: Settings | None = None, prometheus: str | None = None) -> FastAPI:
    """The app; `prometheus`: the Prometheus to query (default: the stack's, FEATURELOOP_PROMETHEUS_PORT)."""
    from featureloop.operations.base import ports

    settings = settings or Settings()
    prometheus = prometheus or f"http://127.0.0.1:{ports()['prometheus']}"
    app = FastAPI(title="featureloop dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/api/live")
    def live(minutes: float = Query(60, gt=0, le=7 * 24 * 60)) -> dict[str, Any]:
        """The Grafana panels' series over the last `minutes`, from Prometheus."""
        from dashboard.data import live as series

        end = time.time()
        return series(prometheus, end - minutes * 60, end, step=max(minutes * 60 / 240, 1.0))

    @app.get("/api/windows")
    def windows() -> dict[str, Any]:
        """Drift, decay and events per checked window, from the drift run's reports."""
        from dashboard.data import windows as history

        return history(settings)

    @app.get("/api/events")
    def events() -> dict[str, Any]:
        """Retrains and release decisions, from MLflow (an unreachable store is named, not fatal)."""
        from dashboard.data import events as found
        from featureloop.training.registry import TrackingUnavailable

        try:
            return {"events": found(settings), "error": None}
        except TrackingUnavailable as exc:
            return {"events": [], "error": str(exc)}

    return app
