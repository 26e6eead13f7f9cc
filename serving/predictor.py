"""Scoring: online features + the model for a batch of requests, and the batcher that forms batches.

Concurrent /predict requests are scored together: while one batch is being scored, new requests
wait (queued, or unread on their connections), and the next batch takes all of them (up to
`max_rows`). An idle server scores a request at
once (no waiting window); a busy one reads features and runs the model once per batch instead of
once per request. Every request of a batch is answered by the same model version.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from serving.contract import Contract
from serving.features import ServedFeatures, ServiceReader
from serving.model import ServingModel


class OnlineStoreUnavailable(RuntimeError):
    """The online store could not be read; the request is answered 503."""


@dataclass(frozen=True)
class Scored:
    """The responses of one batch (JSON-ready, shaped like `PredictResponse`), the rows to log as
    columns, and the feature status counts."""

    responses: list[dict[str, Any]]
    log_columns: dict[str, list[Any]]
    rows: int
    status_counts: dict[str, int]


class ServiceReadError(RuntimeError):
    """Reading the online store failed (the cause is chained)."""


def _read_and_predict(
    reader: ServiceReader, model: ServingModel, rows: list[dict[str, Any]], contract: Contract
) -> tuple[ServedFeatures, np.ndarray]:
    """The service's online features for the rows (each read by its join keys), and the model's
    predictions on them."""
    try:
        served = reader.read(rows, [r["event_timestamp"] for r in rows])
    except Exception as exc:
        raise ServiceReadError("online read failed") from exc
    request_fields = {key: [row[key] for row in rows] for key in contract.model_fields}
    return served, model.predict_columns({**request_fields, **served.columns})


def score(
    reader: ServiceReader, model: ServingModel, bodies: list[Any], contract: Contract, threshold: float
) -> Scored:
    """Score every row of every request with one feature read and one model call."""
    start = time.perf_counter()
    now = datetime.now(UTC)
    per_request = [contract.shape(body, now) for body in bodies]
    rows = [row for request_rows in per_request for row in request_rows]
    try:
        served, predicted = _read_and_predict(reader, model, rows, contract)
    except ServiceReadError as exc:
        cause = exc.__cause__
        raise OnlineStoreUnavailable(f"{type(cause).__name__}: {cause}") from cause
    values = predicted.tolist()
    binary = contract.task == "binary"
    decisions = [p >= threshold for p in values] if binary else []
    value_key = "probability" if binary else "prediction"
    id_field, decision_field = contract.id_field, contract.decision_field
    latency_ms = (time.perf_counter() - start) * 1000
    responses, request_ids, i = [], [], 0
    for request_rows in per_request:
        request_id = uuid.uuid4().hex
        request_ids.extend([request_id] * len(request_rows))
        predictions = []
        for row in request_rows:
            answer = {id_field: row[id_field], value_key: values[i]}
            if binary:
                answer[decision_field] = decisions[i]
            answer["missing_features"] = served.missing[i]
            answer["stale_features"] = served.stale[i]
            predictions.append(answer)
            i += 1
        responses.append(
            {
                "request_id": request_id,
                "model_name": model.name,
                "model_version": model.version,
                "feature_service": model.feature_service,
                "predictions": predictions,
            }
        )
    n = len(rows)
    log_columns: dict[str, list[Any]] = {
        "request_id": request_ids,
        "served_at": [now] * n,
        **{key: [row[key] for row in rows] for key in rows[0]},
        **served.columns,
        "missing_features": [",".join(names) for names in served.missing],
        "stale_features": [",".join(names) for names in served.stale],
        "model_name": [model.name] * n,
        "model_version": [model.version] * n,
        "prediction": values,
        **({"decision": decisions} if binary else {}),
        "latency_ms": [latency_ms] * n,
    }
    return Scored(responses=responses, log_columns=log_columns, rows=n, status_counts=served.status_counts())


def shadow_columns(
    reader: ServiceReader, model: ServingModel, bodies: list[Any], contract: Contract
) -> list[float]:
    """The challenger's predictions for every row (features of its own service), for the log only."""
    now = datetime.now(UTC)
    rows = [row for body in bodies for row in contract.shape(body, now)]
    _, predicted = _read_and_predict(reader, model, rows, contract)
    return [float(p) for p in predicted]


@dataclass
class _Job:
    body: Any
    future: asyncio.Future[bytes]


class Batcher:
    """Forms batches of concurrent requests and scores each batch: on the event loop when `inline`
    (a local SQLite store: handing a batch to a thread and back cost more than scoring one row),
    else in a worker thread (Redis: network waits must not hold the loop)."""

    def __init__(
        self,
        score_batch: Callable[[list[Any]], list[bytes | Exception]],
        count_rows: Callable[[Any], int],
        max_rows: int,
        *,
        inline: bool = False,
    ) -> None:
        self._score = score_batch
        self._count = count_rows
        self._max_rows = max_rows
        self._inline = inline
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def submit(self, body: Any) -> bytes:
        """The request's response body (JSON), once its batch is scored."""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(body, future))
        return await future

    async def _run(self) -> None:
        while True:
            jobs = [await self._queue.get()]
            rows = self._count(jobs[0].body)
            while not self._queue.empty() and rows < self._max_rows:
                job = self._queue.get_nowait()
                jobs.append(job)
                rows += self._count(job.body)
            try:
                bodies = [job.body for job in jobs]
                responses = (
                    self._score(bodies) if self._inline else await asyncio.to_thread(self._score, bodies)
                )
                if len(responses) != len(jobs):
                    raise RuntimeError(f"scored {len(responses)} answers for {len(jobs)} requests")
            except Exception as exc:
                responses = [exc] * len(jobs)
            for job, response in zip(jobs, responses, strict=True):
                if job.future.done():
                    continue
                if isinstance(response, BaseException):
                    job.future.set_exception(response)
                else:
                    job.future.set_result(response)
            if self._inline:
                # Let the answers go out, and the requests that came in meanwhile be read, before
                # the next batch (the queue may already hold a request, and get() would not yield).
                await asyncio.sleep(0)
