"""Prometheus metrics of the serving app, in a registry of its own (one per app)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass
class ServingMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.latency = Histogram(
            "featureloop_request_seconds",
            "Request latency by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "featureloop_errors_total", "Errors by endpoint and kind.", ["endpoint", "kind"], registry=r
        )
        self.predictions = Counter(
            "featureloop_predictions_total",
            "Rows predicted, by model version and role (champion, canary, shadow).",
            ["model_version", "role"],
            registry=r,
        )
        self.online_features = Counter(
            "featureloop_online_features_requests_total",
            "/get-online-features answers by the code that gave them: fast (our reader) or feast "
            "(Feast's own, for what the fast path does not cover).",
            ["path"],
            registry=r,
        )
        self.feature_status = Counter(
            "featureloop_feature_status_total", "Served feature values by status.", ["status"], registry=r
        )
        self.model_load_seconds = Gauge(
            "featureloop_model_load_seconds", "Time to load the serving model.", registry=r
        )
        self.model_version = Gauge(
            "featureloop_model_version", "Version of the model serving now.", registry=r
        )
        self.model_swaps = Counter("featureloop_model_swaps_total", "Champion changes picked up.", registry=r)
        self.tracking_errors = Counter(
            "featureloop_tracking_errors_total", "Failed checks of the champion alias.", registry=r
        )
        self.log_rows = Counter(
            "featureloop_prediction_log_rows_total", "Rows written to the prediction log.", registry=r
        )
        self.log_spilled = Gauge(
            "featureloop_prediction_log_spilled_rows",
            "Rows held in memory while the prediction log is unwritable (retried every flush).",
            registry=r,
        )
        self.log_dropped = Counter(
            "featureloop_prediction_log_dropped_total",
            "Rows the prediction log could not keep.",
            ["reason"],
            registry=r,
        )

    def count_cache_lookups(self, counts: Callable[[], tuple[int, int]]) -> None:
        """Export the online store's answer cache's (hits, misses), read at each scrape."""
        self.registry.register(_CacheLookups(counts))

    def show_release(self, plan: Callable[[], dict[str, object] | None]) -> None:
        """Export the release in progress (the challenger and its stage; no series without one), read
        at each scrape from the plan serving answers with."""
        self.registry.register(_Release(plan))


class _Release:
    def __init__(self, plan: Callable[[], dict[str, object] | None]) -> None:
        self._plan = plan

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "featureloop_release_stage",
            "1 for the challenger serving uses now and its stage (shadow: it scores every request; "
            "canary: it answers its share); no series without one.",
            labels=["challenger_version", "stage"],
        )
        plan = self._plan()
        if plan is not None:
            family.add_metric([str(plan["challenger_version"]), str(plan["stage"])], 1.0)
        yield family


class _CacheLookups:
    def __init__(self, counts: Callable[[], tuple[int, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        hits, misses = self._counts()
        family = CounterMetricFamily(
            "featureloop_online_cache_lookups",
            "Entity answers looked up in the online store's cache (local SQLite), by result; "
            "misses are read from the store.",
            labels=["result"],
        )
        family.add_metric(["hit"], hits)
        family.add_metric(["miss"], misses)
        yield family
