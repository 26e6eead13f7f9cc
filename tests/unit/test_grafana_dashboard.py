"""docs/grafana/featureloop-dashboard.json queries only metrics that exist: every metric name in its
expressions is one the serving app's /metrics exposes (its own registry, the drift run's gauges it
serves, the release it reports), read from the exposition that code writes."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from featureloop.monitoring.outputs import gauges_text
from featureloop.settings import PROJECT_ROOT
from serving.metrics import ServingMetrics

DASHBOARD = PROJECT_ROOT / "docs" / "grafana" / "featureloop-dashboard.json"
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
            "gauge": ("",), "summary": ("_count", "_sum", "_created"), "unknown": ("",)}  # fmt: skip
PROMQL_WORDS = {"sum", "by", "rate", "histogram_quantile", "max", "min", "avg", "increase", "le", "without"}


def _report() -> dict[str, Any]:
    """A drift run's report, as the drift pipeline writes it (the fields the gauges read)."""
    summary = {"drifted": True, "share": 0.4, "event": False, "rows": 100, "decayed": False, "auc": 0.7,
               "mae": None, "skew_mismatches": 0, "window_end": datetime(2013, 5, 1, tzinfo=UTC).isoformat()}  # fmt: skip
    return {
        "model": {"version": "3"},
        "summary": summary,
        "features": [{"name": "temp", "psi": 0.3, "drifted": True}],
    }


def _exposed() -> set[str]:
    metrics = ServingMetrics()
    metrics.count_cache_lookups(lambda: (1, 2))
    metrics.show_release(lambda: {"challenger_version": "4", "stage": "canary"})
    text = generate_latest(metrics.registry).decode() + gauges_text(_report())
    names = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def _queried() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            # Label matchers, ranges, strings and grouping clauses name labels, not metrics.
            expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"|\b(?:by|without)\s*\([^)]*\)", "", target["expr"])
            words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr)) - PROMQL_WORDS
            found.setdefault(panel["title"], set()).update(w for w in words if not w.isdigit())
    return found


def test_every_metric_the_grafana_dashboard_queries_is_one_serving_exposes() -> None:
    exposed = _exposed()
    queried = _queried()
    assert len(queried) >= 13
    unknown = {title: names - exposed for title, names in queried.items() if names - exposed}
    assert not unknown, f"the dashboard queries metrics nothing exposes: {unknown}"
    # The panels the issue names are there: predictions by version and role, latency, errors, drift,
    # AUC, the release in progress.
    every = set().union(*queried.values())
    assert {"featureloop_predictions_total", "featureloop_request_seconds_bucket", "featureloop_errors_total",
            "featureloop_drift_feature_psi", "featureloop_window_roc_auc", "featureloop_release_stage"} <= every  # fmt: skip


def test_the_check_would_see_a_misspelt_metric() -> None:
    assert "featureloop_predictons_total" not in _exposed()
    assert "featureloop_release_stage" in _exposed()


def test_the_dashboard_page_loads_only_its_own_vendored_files() -> None:
    """The page names nothing outside its origin, and the uPlot it loads is the one published on npm
    (SHA256SUMS written by scripts/vendor_uplot.sh from the tarball it checked)."""
    import hashlib

    static = PROJECT_ROOT / "dashboard" / "static"
    page = (static / "index.html").read_text()
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources and all(s.startswith("/static/") for s in sources), sources
    for source in sources:
        assert (static / source.removeprefix("/static/")).is_file(), source
    vendored = static / "vendor" / "uplot-1.6.32"
    sums = dict(
        reversed(line.split(maxsplit=1)) for line in (vendored / "SHA256SUMS").read_text().splitlines()
    )
    assert {"uPlot.iife.min.js", "uPlot.min.css", "LICENSE"} == sums.keys()
    for name, digest in sums.items():
        assert hashlib.sha256((vendored / name).read_bytes()).hexdigest() == digest, name
    assert "http" not in (static / "dashboard.js").read_text().replace("http://127.0.0.1", "")
