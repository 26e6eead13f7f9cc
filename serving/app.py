"""The serving app: predictions and online features over HTTP, from Feast and the MLflow champion.

Start it with `make serve` (uvicorn, `create_app` factory). Endpoints:
`POST /predict`, `POST /get-online-features` (the same JSON as `feast serve`), `GET /health`,
`GET /ready`, `GET /metrics` (Prometheus), `GET /docs` (the OpenAPI page; serving/docs.py).
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from featureloop.project.spec import ProjectSpec, load_spec
from featureloop.settings import Settings
from serving.contract import Contract, build_contract
from serving.docs import add_docs
from serving.http import ServingLayer, answer_online_features, answer_predict
from serving.metrics import ServingMetrics
from serving.model import ChampionWatcher, ModelSource, RegistryModels, ServingModel
from serving.online_features import OnlineFeatures
from serving.prediction_log import PredictionLog
from serving.predictor import Batcher, OnlineStoreUnavailable
from serving.schemas import (
    FEATURES_ERRORS,
    NOT_READY,
    PREDICT_ERRORS,
    UNAUTHORIZED,
    GetOnlineFeaturesRequest,
)
from serving.sqlite_store import SqliteStoreFile
from serving.state import AppState

if TYPE_CHECKING:
    from feast import FeatureStore

logger = logging.getLogger(__name__)
SWITCH_INTERVAL_SECONDS = 0.0005


class ServingApp(FastAPI):
    """FastAPI, entered through `ServingLayer` (serving/http.py): /predict, the latency and error
    metrics and the body size limit are handled before FastAPI's own per-request machinery."""

    layer: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.layer(scope, receive, send)


class UnservableService(RuntimeError):
    """The champion's feature service joins on a key no /predict request can build."""


def check_keys_buildable(store: FeatureStore, service: str, contract: Contract) -> None:
    """Refuse to start (naming the key) when a join key of `service` cannot be built from a request,
    rather than answer every /predict with a 503."""
    from featureloop.project.checks import service_contract

    found = service_contract(store, service)
    if isinstance(found, str):
        raise UnservableService(found)
    buildable = [*contract.fields, *(key for key, _ in contract.derived)]
    missing = [key for key in found[0] if key not in buildable]
    if missing:
        raise UnservableService(
            f"the champion's feature service {service!r} joins on {missing}, which no /predict request "
            f"can build (a request gives {buildable}); serve a model of a service joined on those "
            "keys, or declare them in the project's spec (spine.request_fields or spine.derived_keys)"
        )


def _log_to_stderr() -> None:
    """Serving's own INFO lines (a swap of the champion and its load time, a lost tracking store)
    beside uvicorn's: under uvicorn nothing else prints the `serving` logger."""
    log = logging.getLogger("serving")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def create_app(
    settings: Settings | None = None,
    *,
    store: FeatureStore | None = None,
    models: ModelSource | None = None,
    log: PredictionLog | None = None,
    spec: ProjectSpec | None = None,
) -> ServingApp:
    """The app; Feast, the champion and the prediction log open in its lifespan.

    Each can be given instead: `store` (a Feast store; default: the settings' repository), `models`
    (where the champion and challenger come from; default: the MLflow registry) and `log` (the
    prediction log; default: the settings' folder); `spec` (the project, whose request and response
    /predict takes and gives; default: the spec in the settings' feature repository). Until the lifespan has run, requests are still
    validated, authorised and refused as usual (the HTTP contract tests drive the app so, in-process).
    """
    settings = settings or Settings()
    _log_to_stderr()
    contract = build_contract(spec or load_spec(settings.feature_repo))
    metrics = ServingMetrics()
    state = AppState(settings=settings, metrics=metrics, contract=contract)
    metrics.count_cache_lookups(state.cache_lookups)
    metrics.show_release(lambda: state.plan().describe())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        from featureloop.featurestore.store import import_feast_unchecked, open_store
        from featureloop.training.registry import CHALLENGER, CHAMPION

        if store is None:
            import_feast_unchecked()  # serving reads the registry `feast apply` checked: seconds less boot
        state.store = store if store is not None else open_store(settings)
        source = models if models is not None else RegistryModels(settings)
        online_type = getattr(state.store.config.online_store, "type", None)
        if online_type == "sqlite":
            # A locked store answers 'busy' after the timeout (a quick 503, and the next request
            # succeeds once the lock is gone); a removed one a 503 that names it.
            state.sqlite_file = SqliteStoreFile(state.store, settings.online_store_timeout_ms)
        elif online_type == "redis":
            _bound_redis_waits(state.store, settings.online_store_timeout_ms)
        state.online_features = OnlineFeatures(
            state.store,
            state.sqlite_file,
            on_answer=lambda path: metrics.online_features.labels(path).inc(),
            cache_entries=settings.online_cache_entries,
        )
        watcher = ChampionWatcher(
            resolve=source.resolver(CHAMPION),  # raises TrackingUnavailable, naming the URI: refuse to start
            load=source.load,
            interval=settings.model_reload_seconds,
            on_swap=lambda m: _record_swap(metrics, m),
            on_error=lambda _e: metrics.tracking_errors.inc(),
        )
        champion = watcher.load_now()
        check_keys_buildable(state.store, champion.feature_service, contract)  # or refuse to start
        if champion.task != contract.task:
            raise UnservableService(
                f"the champion (version {champion.version}) predicts a {champion.task} task and the "
                f"project's spec declares {contract.task}: serve the project's own model "
                "(FEATURELOOP_MODEL_NAME) or fix task.type in its spec"
            )
        watcher.start()
        state.watcher = watcher
        # The challenger is optional: until the alias exists (a release, or an operator's switch),
        # everything is the champion's; when it is removed, serving stops using it.
        state.challenger = ChampionWatcher(
            resolve=source.resolver(CHALLENGER),
            load=source.load,
            interval=settings.model_reload_seconds,
            on_error=lambda _e: metrics.tracking_errors.inc(),
            keep_when_gone=False,
            name="challenger",
        )
        state.challenger.check()
        state.challenger.start()
        state.log = log or PredictionLog(
            settings.prediction_log_dir,
            flush_seconds=settings.prediction_log_flush_seconds,
            max_queue=settings.prediction_log_max_queue,
            on_written=metrics.log_rows.inc,
            on_dropped=lambda reason, n: metrics.log_dropped.labels(reason).inc(n),
            on_spilled=metrics.log_spilled.set,
        )
        state.log.start()
        state.batcher = Batcher(
            state.score_batch,
            lambda body: len(contract.rows_of(body)),
            max_rows=max(settings.predict_max_batch, 256),
            inline=online_type == "sqlite",
        )
        state.batcher.start()
        # Feast, MLflow and the model leave a large heap of long-lived objects: freeze it so that full
        # garbage collections stop scanning it (each paused requests for a long moment).
        gc.collect()
        gc.freeze()
        # A request that comes in while the prediction log's or the champion watcher's thread runs
        # waits for the interpreter lock for up to the switch interval: at Python's default (5 ms)
        # that wait was the p99 at one connection (figures: bench/README.md, serving).
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
        try:
            yield
        finally:
            sys.setswitchinterval(switch_interval)
            await state.batcher.stop()
            watcher.stop()
            if state.challenger is not None:
                state.challenger.stop()
            state.log.close()

    app = ServingApp(
        title="featureloop serving", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    add_docs(app)  # /docs from the Swagger UI in the package, not from a CDN
    app.layer = ServingLayer(partial(FastAPI.__call__, app), state)
    app.state.featureloop = state

    @app.exception_handler(OnlineStoreUnavailable)
    async def store_down(_request: Request, exc: OnlineStoreUnavailable) -> JSONResponse:
        return JSONResponse({"detail": f"online store unavailable: {exc}; retry shortly"}, status_code=503)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "alive"}

    # The routes below that need the token get it checked in `ServingLayer` (serving/http.py).
    @app.get("/ready", responses={**UNAUTHORIZED, **NOT_READY})
    def ready() -> JSONResponse:
        model = state.champion
        checks = {
            "model_loaded": model is not None,
            "online_store": state.store_reachable(),
            "tracking_store": bool(state.watcher and state.watcher.healthy),
        }
        body = {
            "ready": checks["model_loaded"] and checks["online_store"],
            "checks": checks,
            "model_version": model.version if model else None,
            "release": state.plan().describe(),
            "tracking_error": state.watcher.last_error if state.watcher else None,
            "prediction_log_error": state.log.last_error if state.log else None,
        }
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    @app.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {}}, "description": "Prometheus metrics."},
            **UNAUTHORIZED,
        },
    )
    def prometheus() -> Response:
        # The drift flow's gauges (its last report) are served here too, so one scrape sees both.
        gauges = settings.drift_dir / "metrics.prom"
        drift = gauges.read_bytes() if gauges.exists() else b""
        return Response(generate_latest(metrics.registry) + drift, media_type=CONTENT_TYPE_LATEST)

    async def predict(_body: Any, request: Request) -> Response:
        """Scores rows. Served by `ServingLayer` below FastAPI; this route documents the endpoint
        in the OpenAPI schema and answers the same way if the layer is not mounted."""
        status, body = await answer_predict(state, await request.body())
        return Response(body, status_code=status, media_type="application/json")

    predict.__annotations__["_body"] = contract.request_model  # the project's own request model
    app.post("/predict", response_model=contract.response_model, responses=PREDICT_ERRORS)(predict)

    @app.post("/get-online-features", responses=FEATURES_ERRORS)
    def get_online_features(body: GetOnlineFeaturesRequest) -> Response:
        """Feast's feature-server endpoint, answered with the body `feast serve` gives. Served by
        `ServingLayer` below FastAPI; this route documents it and answers the same way without the
        layer (and the layer's invalid bodies come here for FastAPI's 422)."""
        status, answer = answer_online_features(state, body)
        return Response(answer, status_code=status, media_type="application/json")

    return app


def _bound_redis_waits(store: Any, timeout_ms: int) -> None:
    """Redis down answers a 503 within `timeout_ms` (a hung one within a second): redis-py's default
    is three retries with exponential backoff (seconds of sleep while Redis is down) and no socket
    timeout (a hung server holds the request forever). One immediate retry stays: it reconnects a
    pooled connection that Redis dropped while idle."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    provider: Any = store._get_provider()
    client = provider.online_store._get_client(store.config.online_store)
    client.set_retry(Retry(NoBackoff(), 1))
    # Connecting is quick or refused; a reply may wait behind a busy machine's scheduler: 1 s at least.
    client.connection_pool.connection_kwargs.update(
        socket_connect_timeout=timeout_ms / 1000, socket_timeout=max(timeout_ms, 1000) / 1000
    )


def _record_swap(metrics: ServingMetrics, model: ServingModel) -> None:
    gc.freeze()  # the new model's objects are long-lived too
    metrics.model_swaps.inc()
    metrics.model_version.set(float(model.version))
    metrics.model_load_seconds.set(model.load_seconds)
