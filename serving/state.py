"""What the serving app opens once and every request shares, and how a batch of /predict requests
is answered with it: routed (serving/routing.py), scored, logged, counted and encoded."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_json

from featureloop.settings import Settings
from serving.contract import Contract
from serving.features import ServiceReader
from serving.metrics import ServingMetrics
from serving.model import ChampionWatcher, ServingModel
from serving.online_features import OnlineFeatures
from serving.prediction_log import PredictionLog
from serving.predictor import Batcher, Scored, score, shadow_columns
from serving.routing import Plan, plan_of, route
from serving.sqlite_store import SqliteStoreFile

logger = logging.getLogger(__name__)


@dataclass
class AppState:
    """What the lifespan opens once and every request shares. Until the lifespan has run (or when an
    app is driven without it, as the HTTP contract tests do) only `settings` and `metrics` are set:
    requests are still validated and refused as usual, and a valid /predict is a 503."""

    settings: Settings
    metrics: ServingMetrics
    contract: Contract
    store: Any = None
    watcher: ChampionWatcher | None = None
    log: PredictionLog | None = None
    readers: dict[str, ServiceReader] = field(default_factory=dict)
    batcher: Batcher | None = None
    challenger: ChampionWatcher | None = None
    sqlite_file: SqliteStoreFile | None = None
    online_features: OnlineFeatures | None = None

    @property
    def champion(self) -> ServingModel | None:
        return self.watcher.current if self.watcher else None

    def reader_for(self, model: ServingModel) -> ServiceReader:
        reader = self.readers.get(model.feature_service)
        if reader is None:
            reader = self.readers[model.feature_service] = ServiceReader(
                self.store,
                model.feature_service,
                self.sqlite_file,
                cache_entries=self.settings.online_cache_entries,
            )
        return reader

    def cache_lookups(self) -> tuple[int, int]:
        """The online answer cache's hits and misses, over every reader."""
        tables = [reader.tables for reader in list(self.readers.values())]
        if self.online_features is not None:
            tables.append(self.online_features.tables)
        return sum(t.cache_hits for t in tables), sum(t.cache_misses for t in tables)

    def store_reachable(self) -> bool:
        """One read of the champion's service for an entity that does not exist."""
        model = self.champion
        if model is None:
            return False
        try:
            self.reader_for(model).read([dict.fromkeys(self.contract.entity_keys, "")], [datetime.now(UTC)])
        except Exception:
            return False
        return True

    def plan(self) -> Plan:
        """The release plan now: the champion, and the challenger in its stage (serving/routing.py)."""
        held = self.challenger.held if self.challenger else None
        return plan_of(held, self.settings.serving_mode, self.settings.canary_share)

    def score_batch(self, bodies: list[Any]) -> list[bytes | Exception]:
        """Score a batch, log and count it, and encode each request's response (or the error that
        request gets). Each request is answered wholly by one model version: the champion, or in
        canary mode the challenger for the requests its hash selects; a canary that fails hands its
        requests to the champion (the failure is logged on their rows and counted)."""
        assert self.watcher is not None and self.watcher.current is not None and self.log is not None
        champion, plan = self.watcher.current, self.plan()
        responses: list[bytes | Exception] = [b""] * len(bodies)
        for group in route(bodies, champion, plan.challenger, plan.stage, plan.share, self.contract):
            model, indexes, role = group.model, group.indexes, group.role
            requests = [bodies[i] for i in indexes]
            failure = None
            try:
                scored = self._score(model, requests)
            except Exception as exc:  # only this group's requests fail (a canary must not fail the rest)
                if role != "canary":
                    for i in indexes:
                        responses[i] = exc
                    continue
                failure = self._failed(model, "canary", exc)
                try:
                    model, role, scored = champion, "champion", self._score(champion, requests)
                except Exception as again:
                    for i in indexes:
                        responses[i] = again
                    continue
            if plan.stage == "shadow" and plan.challenger is not None:
                self._shadow(plan.challenger, requests, scored.log_columns, "challenger_error")
            elif role == "canary":  # the champion scores the canary's rows too: compared paired
                self._shadow(champion, requests, scored.log_columns, "shadow_error")
            self.metrics.predictions.labels(model.version, role).inc(scored.rows)
            for status, n in scored.status_counts.items():
                if n:
                    self.metrics.feature_status.labels(status).inc(n)
            columns = scored.log_columns
            columns["role"] = [role] * scored.rows
            if plan.released and plan.challenger is not None:  # which release the row was served under
                columns["release_version"] = [plan.challenger.version] * scored.rows
                columns["release_stage"] = [plan.stage] * scored.rows
            if failure is not None:
                columns["challenger_error"] = [failure] * scored.rows
            self.log.append(columns)
            for i, response in zip(indexes, scored.responses, strict=True):
                responses[i] = to_json(response, inf_nan_mode="null")
        return responses

    def _score(self, model: ServingModel, requests: list[Any]) -> Scored:
        return score(self.reader_for(model), model, requests, self.contract, self.settings.decision_threshold)

    def _failed(self, challenger: ServingModel, role: str, exc: Exception) -> str:
        """Count and log a challenger's failure; the text its rows record."""
        logger.warning("%s scoring with version %s failed: %s", role, challenger.version, exc)
        self.metrics.errors.labels("/predict", role).inc()
        return f"{type(exc).__name__}: {exc}"[:300]

    def _shadow(
        self, model: ServingModel, group: list[Any], log_columns: dict[str, list[Any]], error_column: str
    ) -> None:
        """Score `model` for the log only (the challenger in the shadow stage, the champion on the
        canary's rows); its failures are counted and logged in `error_column`, never reach the caller."""
        n = len(log_columns["prediction"])
        log_columns["shadow_model_version"] = [model.version] * n
        started = time.perf_counter()
        try:
            shadow = shadow_columns(self.reader_for(model), model, group, self.contract)
        except Exception as exc:
            log_columns[error_column] = [self._failed(model, "shadow", exc)] * n
            return
        log_columns["shadow_prediction"] = shadow
        log_columns["shadow_latency_ms"] = [(time.perf_counter() - started) * 1000] * n
        self.metrics.predictions.labels(model.version, "shadow").inc(len(shadow))
