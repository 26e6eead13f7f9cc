"""The serving app: predictions and online features over HTTP, from Feast and the MLflow champion.

Start it with `make serve` (uvicorn, `create_app` factory). Endpoints:
`POST /predict`, `POST /get-online-features` (the same JSON as `feast serve`), `GET /health`,
`GET /ready`, `GET /metrics` (Prometheus).
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from featureloop.settings import Settings
from serving.features import ENTITY_KEYS, MISSING, STALE, ServiceReader
from serving.metrics import ServingMetrics
from serving.model import ChampionWatcher, ServingModel, load_version
from serving.prediction_log import PredictionLog
from serving.schemas import GetOnlineFeaturesRequest, Prediction, PredictRequest, PredictResponse

logger = logging.getLogger(__name__)


@dataclass
class AppState:
    """What the lifespan opens once and every request shares."""

    settings: Settings
    metrics: ServingMetrics
    store: Any = None
    watcher: ChampionWatcher | None = None
    log: PredictionLog | None = None
    readers: dict[str, ServiceReader] = field(default_factory=dict)


class OnlineStoreUnavailable(RuntimeError):
    """The online store could not be read; the request is answered 503."""


_bearer = HTTPBearer(auto_error=False)


def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """With FEATURELOOP_SERVING_TOKEN set, a matching bearer token (compared in constant time)."""
    expected = request.app.state.featureloop.settings.serving_token
    if expected is None:
        return
    given = credentials.credentials if credentials else ""
    if not secrets.compare_digest(given.encode(), expected.get_secret_value().encode()):
        raise HTTPException(
            401, "missing or wrong bearer token (Authorization: Bearer <FEATURELOOP_SERVING_TOKEN>)"
        )


Authorized = Annotated[None, Depends(require_token)]


def _resolver(settings: Settings) -> Any:
    from featureloop.model_registry import CHAMPION, connect, get_alias

    client, _ = connect(settings.tracking_uri, settings.artifact_location, settings.experiment)

    def resolve() -> tuple[str, dict[str, str]] | None:
        found = get_alias(client, settings.model_name, CHAMPION)
        return (found.version, found.tags) if found else None

    return resolve


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app; Feast, the champion and the prediction log open in its lifespan."""
    settings = settings or Settings()
    metrics = ServingMetrics()
    state = AppState(settings=settings, metrics=metrics)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        from featureloop.feast_store import open_store

        state.store = open_store(settings)
        watcher = ChampionWatcher(
            resolve=_resolver(settings),  # raises TrackingUnavailable, naming the URI: refuse to start
            load=lambda version, tags: load_version(settings.model_name, version, tags),
            interval=settings.model_reload_seconds,
            on_swap=lambda m: _record_swap(metrics, m),
            on_error=lambda _e: metrics.tracking_errors.inc(),
        )
        watcher.load_now()
        watcher.start()
        state.watcher = watcher
        state.log = PredictionLog(
            settings.prediction_log_dir,
            flush_seconds=settings.prediction_log_flush_seconds,
            max_queue=settings.prediction_log_max_queue,
            on_written=metrics.log_rows.inc,
            on_dropped=lambda reason, n: metrics.log_dropped.labels(reason).inc(n),
        )
        state.log.start()
        try:
            yield
        finally:
            watcher.stop()
            state.log.close()

    app = FastAPI(title="featureloop serving", version="0.1.0", lifespan=lifespan)
    app.state.featureloop = state

    @app.middleware("http")
    async def measure(request: Request, call_next: Any) -> Response:
        start = time.perf_counter()
        response: Response = await call_next(request)
        metrics.latency.labels(request.url.path).observe(time.perf_counter() - start)
        if response.status_code >= 400:
            metrics.errors.labels(request.url.path, str(response.status_code)).inc()
        return response

    @app.exception_handler(OnlineStoreUnavailable)
    async def store_down(_request: Request, exc: OnlineStoreUnavailable) -> JSONResponse:
        return JSONResponse({"detail": f"online store unavailable: {exc}; retry shortly"}, status_code=503)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/ready")
    def ready(_auth: Authorized) -> JSONResponse:
        model = state.watcher.current if state.watcher else None
        checks = {
            "model_loaded": model is not None,
            "online_store": _store_reachable(state),
            "tracking_store": bool(state.watcher and state.watcher.healthy),
        }
        body = {
            "ready": checks["model_loaded"] and checks["online_store"],
            "checks": checks,
            "model_version": model.version if model else None,
            "tracking_error": state.watcher.last_error if state.watcher else None,
            "prediction_log_error": state.log.last_error if state.log else None,
        }
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    @app.get("/metrics")
    def prometheus(_auth: Authorized) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/predict", response_model=PredictResponse)
    def predict(body: PredictRequest, _auth: Authorized) -> PredictResponse:
        if len(body.flights) > settings.predict_max_batch:
            raise HTTPException(
                413,
                f"flights: {len(body.flights)} rows exceed the batch limit of {settings.predict_max_batch}",
            )
        assert state.watcher is not None and state.watcher.current is not None
        model = state.watcher.current  # one model answers the whole request
        return _predict(state, model, body)

    @app.post("/get-online-features")
    def get_online_features(body: GetOnlineFeaturesRequest, _auth: Authorized) -> JSONResponse:
        from feast.errors import FeastError
        from feast.feature_server_utils import convert_response_to_dict

        features: Any = body.features
        try:
            if body.feature_service:
                features = state.store.get_feature_service(body.feature_service, allow_cache=True)
            response = state.store.get_online_features(
                features=features, entity_rows=body.entities, full_feature_names=body.full_feature_names
            )
        except (FeastError, ValueError, KeyError) as exc:
            raise HTTPException(400, f"{type(exc).__name__}: {exc}") from exc
        except Exception as exc:
            raise OnlineStoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
        return JSONResponse(convert_response_to_dict(response.proto))

    return app


def _record_swap(metrics: ServingMetrics, model: ServingModel) -> None:
    metrics.model_swaps.inc()
    metrics.model_version.set(float(model.version))
    metrics.model_load_seconds.set(model.load_seconds)


def _store_reachable(state: AppState) -> bool:
    try:
        state.store.get_online_features(
            features=["carrier_stats:carrier_flights_1h"], entity_rows=[{"carrier": ""}]
        )
    except Exception:
        return False
    return True


def _predict(state: AppState, model: ServingModel, body: PredictRequest) -> PredictResponse:
    start = time.perf_counter()
    request_id = uuid.uuid4().hex
    now = datetime.now(UTC)
    times = [(f.event_timestamp or now).astimezone(UTC) for f in body.flights]
    rows: list[dict[str, Any]] = [
        {
            "flight_id": f.flight_id,
            "tailnum": f.tailnum or "",
            "origin": f.origin,
            "carrier": f.carrier,
            "route": f"{f.origin}-{f.dest}",
            "dest": f.dest,
            "distance": f.distance,
            "sched_hour": f.sched_hour,
            "day_of_week": f.day_of_week,
            "event_timestamp": t,
        }
        for f, t in zip(body.flights, times, strict=True)
    ]
    reader = state.readers.get(model.feature_service)
    if reader is None:
        reader = state.readers[model.feature_service] = ServiceReader(state.store, model.feature_service)
    try:
        served = reader.read([{k: r[k] for k in ENTITY_KEYS} for r in rows], times)
    except Exception as exc:
        raise OnlineStoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
    frame = pd.concat([pd.DataFrame(rows), served.values], axis=1)
    probability = model.predict(frame)
    delayed = probability >= state.settings.decision_threshold
    predictions, log_rows = [], []
    latency_ms = (time.perf_counter() - start) * 1000
    for i, row in enumerate(rows):
        status = served.status.iloc[i]
        missing = [str(name) for name, s in status.items() if s == MISSING]
        stale = [str(name) for name, s in status.items() if s == STALE]
        predictions.append(
            Prediction(
                flight_id=row["flight_id"],
                probability=float(probability[i]),
                delayed=bool(delayed[i]),
                missing_features=missing,
                stale_features=stale,
            )
        )
        log_rows.append(
            {
                "request_id": request_id,
                "served_at": now,
                **row,
                **{name: _plain(served.values.iloc[i][name]) for name in served.values.columns},
                "missing_features": ",".join(missing),
                "stale_features": ",".join(stale),
                "model_name": model.name,
                "model_version": model.version,
                "probability": float(probability[i]),
                "delayed": bool(delayed[i]),
                "latency_ms": latency_ms,
            }
        )
    metrics = state.metrics
    metrics.predictions.labels(model.version).inc(len(rows))
    counts = served.status.stack().value_counts()
    for status_name, n in counts.items():
        metrics.feature_status.labels(str(status_name)).inc(int(n))
    assert state.log is not None
    state.log.append(log_rows)
    return PredictResponse(
        request_id=request_id,
        model_name=model.name,
        model_version=model.version,
        feature_service=model.feature_service,
        predictions=predictions,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value
