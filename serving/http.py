"""The serving app's hot path, below FastAPI.

`/predict` is answered by a plain ASGI handler: the body is read (bounded), validated by pydantic's
Rust JSON validator against the same `PredictRequest` model the OpenAPI schema documents, scored by
the batcher, and the response sent as the bytes the batch's worker thread encoded. For one row,
FastAPI's router, dependency injection, body handling and exception middleware cost as much as the
features and the model together; every other endpoint still goes through FastAPI.

The same layer measures every endpoint's latency and errors, and reads every request body itself,
refusing bodies over `max_request_bytes` with a 413 (before reading them when Content-Length says
so, and as soon as a chunked body passes the limit).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr, ValidationError
from pydantic_core import to_json

from featureloop.event_time import EventTimeBounds
from serving.online_features import FeaturesRequestError
from serving.online_features_plan import Prepared
from serving.predictor import OnlineStoreUnavailable
from serving.schemas import GetOnlineFeaturesRequest

if TYPE_CHECKING:
    from serving.state import AppState

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ENDPOINTS = frozenset(
    {"/predict", "/get-online-features", "/health", "/ready", "/metrics", "/docs", "/openapi.json"}
)
TOKEN_REQUIRED = "missing or wrong bearer token (Authorization: Bearer <FEATURELOOP_SERVING_TOKEN>)"
# What a token opens: every endpoint but /health and the API's documentation (/docs, its assets and
# /openapi.json hold no data, and a browser sends no token for them). Checked here only, in
# `ServingLayer`, for FastAPI's routes too.
PROTECTED = frozenset({"/predict", "/get-online-features", "/ready", "/metrics"})


def token_matches(authorization: str | None, expected: SecretStr | None) -> bool:
    """No token configured, or `Authorization: Bearer <token>` with the token (constant-time compare)."""
    if expected is None:
        return True
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        given = ""
    return secrets.compare_digest(given.strip().encode(), expected.get_secret_value().encode())


def _detail(message: str | list[Any]) -> bytes:
    return to_json({"detail": message}, fallback=str, inf_nan_mode="null")


async def answer_predict(state: AppState, raw: bytes) -> tuple[int, bytes]:
    """The status and JSON body of a /predict request (authorisation already checked)."""
    try:
        request = state.contract.request_model.model_validate_json(raw)
    except ValidationError as exc:
        errors = [{**e, "loc": ["body", *e["loc"]]} for e in exc.errors(include_url=False)]
        for error in errors:  # a body that is not UTF-8 comes back as text, not as bytes JSON cannot hold
            given = error.get("input")
            if isinstance(given, bytes):
                error["input"] = given.decode("utf-8", "replace")
        return 422, _detail(errors)
    limit = state.settings.predict_max_batch
    rows = state.contract.rows_of(request)
    if len(rows) > limit:
        return 413, _detail(
            f"{state.contract.batch_field}: {len(rows)} rows exceed the batch limit of {limit} "
            "(send smaller batches, or raise FEATURELOOP_PREDICT_MAX_BATCH)"
        )
    out_of_range = _event_time_errors(rows, state.contract.batch_field, state.settings.event_time_bounds)
    if out_of_range:
        return 422, _detail(out_of_range)
    if state.batcher is None or state.watcher is None or state.watcher.current is None:
        return 503, _detail("no model loaded yet; retry shortly")
    try:
        return 200, await state.batcher.submit(request)
    except OnlineStoreUnavailable as exc:
        return 503, _detail(f"online store unavailable: {exc}; retry shortly")


def answer_online_features(
    state: AppState, request: GetOnlineFeaturesRequest, prepared: Prepared | None = None
) -> tuple[int, bytes]:
    """The status and JSON body of a /get-online-features request (authorisation already checked):
    Feast's answer, its refusal as a 400, or a 503 when the online store could not be read."""
    if state.online_features is None:
        return 503, _detail("the online store is not open yet; retry shortly")
    try:
        return 200, state.online_features.answer(request, prepared)
    except FeaturesRequestError as exc:
        return 400, _detail(str(exc))
    except Exception as exc:
        return 503, _detail(f"online store unavailable: {type(exc).__name__}: {exc}; retry shortly")


def _event_time_errors(rows: list[Any], batch_field: str, bounds: EventTimeBounds) -> list[dict[str, Any]]:
    """A validation error per row whose prediction time is outside the accepted range (one such
    request would otherwise move every later default drift window; see featureloop.event_time)."""
    now = datetime.now(UTC)
    errors = []
    for i, row in enumerate(rows):
        if row.event_timestamp is None:
            continue
        problem = bounds.problem(row.event_timestamp, now)
        if problem is not None:
            errors.append(
                {
                    "type": "value_error",
                    "loc": ["body", batch_field, i, "event_timestamp"],
                    "msg": problem,
                    "input": row.event_timestamp.isoformat(),
                }
            )
    return errors


class ServingLayer:
    """ASGI middleware: /predict without FastAPI's per-request machinery; latency, errors and the
    request size limit for every endpoint."""

    def __init__(self, app: ASGIApp, state: AppState) -> None:
        self.app = app
        self.state = state
        self.max_bytes = state.settings.max_request_bytes
        self._reads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="online-features")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        endpoint = _endpoint(path)
        metrics = self.state.metrics
        start = time.perf_counter()
        status = 0

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        disconnected = False
        try:
            length = _header(scope, b"content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
                await _respond(send_and_record, 413, self._too_large())
            elif scope["method"] not in ("POST", "PUT", "PATCH"):
                if await self._authorized(scope, send_and_record):
                    await self.app(scope, receive, send_and_record)
            else:
                # Every body is read here, bounded, before anything else sees it (FastAPI would read
                # a chunked body of any size before checking the token).
                body = await self._read_body(receive, send_and_record)
                if body is None:
                    disconnected = status == 0
                elif not await self._authorized(scope, send_and_record):
                    pass  # 401 sent
                elif path == "/predict" and scope["method"] == "POST":
                    await self._predict(body, send_and_record)
                elif path == "/get-online-features" and scope["method"] == "POST":
                    await self._online_features(scope, body, receive, send_and_record)
                else:
                    await self.app(scope, _replay(body, receive), send_and_record)
        finally:
            metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
            if disconnected:  # the client went away: not a server error
                metrics.errors.labels(endpoint, "disconnect").inc()
            elif status >= 400 or status == 0:  # 0: nothing was sent, the server answers 500
                metrics.errors.labels(endpoint, str(status or 500)).inc()

    async def _read_body(self, receive: Receive, send: Send) -> bytes | None:
        """The whole request body, or None once a 413 was sent or the client went away."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _respond(send, 413, self._too_large())
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _too_large(self) -> bytes:
        return _detail(
            f"request body over {self.max_bytes} bytes (split it, or raise FEATURELOOP_MAX_REQUEST_BYTES)"
        )

    async def _authorized(self, scope: Scope, send: Send) -> bool:
        """True when the endpoint is open or the request carries the token; else a 401 is sent."""
        if scope["path"] not in PROTECTED or token_matches(
            _header(scope, b"authorization"), self.state.settings.serving_token
        ):
            return True
        await _respond(send, 401, _detail(TOKEN_REQUIRED), [(b"www-authenticate", b"Bearer")])
        return False

    async def _predict(self, body: bytes, send: Send) -> None:
        try:
            status, answer = await answer_predict(self.state, body)
        except Exception as exc:
            logger.exception("/predict failed")
            status, answer = 500, _detail(f"internal error: {type(exc).__name__}: {exc}")
        await _respond(send, status, answer)

    async def _online_features(self, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
        try:
            request = GetOnlineFeaturesRequest.model_validate_json(body)
        except ValidationError:
            await self.app(scope, _replay(body, receive), send)  # FastAPI's 422, as `feast serve` answers
            return
        features = self.state.online_features
        prepared = features.prepare(request) if features is not None and features.local else None
        if prepared is not None:
            # A read of the local SQLite file, answered on the event loop: handing it to a thread and
            # back cost more than the read itself (bench/README.md, serving), and it waits at most the busy
            # timeout (FEATURELOOP_ONLINE_STORE_TIMEOUT_MS) for a writer's lock, none in WAL mode.
            status, answer = answer_online_features(self.state, request, prepared)
        else:
            # Redis (the network), or Feast's own code (any size of work): one worker thread, so
            # that a slow read holds no other request; one, not many: threads doing Python work in
            # turn under the GIL served a third fewer requests than one.
            status, answer = await asyncio.get_running_loop().run_in_executor(
                self._reads, answer_online_features, self.state, request
            )
        await _respond(send, status, answer)


def _endpoint(path: str) -> str:
    """The metrics label: a known endpoint's path (the docs page's assets count as /docs), else "other"."""
    if path in ENDPOINTS:
        return path
    return "/docs" if path.startswith("/docs/") else "other"


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the body already read, then waits on the client as before."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _respond(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})
