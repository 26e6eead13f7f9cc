"""What the dashboard shows, as JSON: live serving series from Prometheus's HTTP API (the Grafana
dashboard's own panels and queries: one definition for teams with Grafana and without), and the
loop's history per checked window from the drift run's files (PSI and KS per feature, dataset drift
share, window AUC against the holdout's, events) and MLflow (retrains and release decisions)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from featureloop.settings import PROJECT_ROOT, Settings

GRAFANA = PROJECT_ROOT / "docs" / "grafana" / "featureloop-dashboard.json"
TOP_FEATURES = 8  # the features shown per chart: the most drifted over the history


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    queries: list[Query]


def grafana_panels(path: Path = GRAFANA) -> list[Panel]:
    """The Grafana dashboard's panels: their titles, PromQL and legend formats."""
    panels = json.loads(path.read_text())["panels"]
    return [
        Panel(p["title"], [Query(t["expr"], t.get("legendFormat", "")) for t in p.get("targets", [])])
        for p in panels
        if p.get("targets")
    ]


def _legend(template: str, labels: dict[str, str]) -> str:
    text = template
    for key, value in labels.items():
        text = text.replace("{{" + key + "}}", value)
    return text or ", ".join(f"{k}={v}" for k, v in labels.items() if k != "__name__") or "value"


def _number(value: str) -> float | None:
    number = float(value)
    return None if math.isnan(number) or math.isinf(number) else number


def live(
    prometheus: str, start: float, end: float, step: float, panels: list[Panel] | None = None
) -> dict[str, Any]:
    """Each panel's series over [start, end] (Unix seconds) from Prometheus's range queries; a query
    that fails names its error on the panel instead of failing the page."""
    found = []
    with httpx.Client(base_url=prometheus, timeout=10) as client:
        for panel in panels or grafana_panels():
            series, errors = [], []
            for query in panel.queries:
                try:
                    response = client.get(
                        "/api/v1/query_range",
                        params={"query": query.expr, "start": start, "end": end, "step": step},
                    )
                    body = response.json()
                except (httpx.HTTPError, ValueError) as exc:
                    errors.append(f"{query.expr}: {type(exc).__name__}: {exc}")
                    continue
                if body.get("status") != "success":
                    errors.append(f"{query.expr}: {body.get('error', response.status_code)}")
                    continue
                for result in body["data"]["result"]:
                    series.append(
                        {
                            "label": _legend(query.legend, result["metric"]),
                            "points": [[float(t), _number(v)] for t, v in result["values"]],
                        }
                    )
            found.append({"title": panel.title, "series": series, "errors": errors})
    return {"prometheus": prometheus, "start": start, "end": end, "step": step, "panels": found}


def windows(settings: Settings) -> dict[str, Any]:
    """Per checked window (the drift run's reports, oldest first): the window's end, the serving
    version, dataset drift share, ROC AUC on delayed labels and the holdout's, the verdicts and the
    event; PSI and KS p-value per feature for the most drifted features over the history."""
    reports = sorted((settings.drift_dir / "reports").glob("*.json"))
    rows: list[dict[str, Any]] = []
    psi: dict[str, dict[str, float | None]] = {}
    ks: dict[str, dict[str, float | None]] = {}
    for path in reports:
        report = json.loads(path.read_text())
        summary = report["summary"]
        end = summary["window_end"]
        rows.append(
            {
                "window_end": end,
                "model_version": summary.get("model_version"),
                "rows": summary.get("rows"),
                "share": summary.get("share"),
                "drifted": summary.get("drifted"),
                "auc": summary.get("auc"),
                "holdout_auc": summary.get("holdout_auc"),
                "mae": summary.get("mae"),
                "decayed": summary.get("decayed"),
                "event": summary.get("event"),
                "held": summary.get("held"),
            }
        )
        for feature in report.get("features", []):
            psi.setdefault(feature["name"], {})[end] = feature.get("psi")
            ks.setdefault(feature["name"], {})[end] = feature.get("ks_p_value")
    ends = [r["window_end"] for r in rows]
    top = sorted(psi, key=lambda name: -sum(v or 0.0 for v in psi[name].values()))[:TOP_FEATURES]
    return {
        "windows": rows,
        "features": top,
        "psi": {name: [psi[name].get(e) for e in ends] for name in top},
        "ks_p_value": {name: [ks[name].get(e) for e in ends] for name in top},
    }


def events(settings: Settings) -> list[dict[str, Any]]:
    """The model's versions as events: each registered version (its training window's end), the
    gate's answer, each release decision (its time on the release clock) and how the release ended."""
    from featureloop.training.registry import open_tracking

    client, _ = open_tracking(settings)
    found = []
    for version in client.search_model_versions(f"name = '{settings.model_name}'"):
        tags = version.tags
        found.append(
            {
                "at": tags.get("train_end") or tags.get("labels_as_of"),
                "version": str(version.version),
                "kind": "retrain",
                "what": "gate passed" if tags.get("gate.promoted") == "true" else "gate refused"
                if tags.get("gate.promoted") == "false" else "registered",
                "detail": tags.get("gate.reason", ""),
            }
        )  # fmt: skip
        last = None
        for stage in ("shadow", "canary"):
            try:
                decision = json.loads(tags.get(f"release.{stage}.decision") or "{}")
            except json.JSONDecodeError:  # a record cut at MLflow's tag length
                continue
            if decision.get("verdict") in ("pass", "fail"):
                last = decision.get("as_of")
                found.append({"at": last, "version": str(version.version), "kind": "release",
                              "what": f"{stage} {decision['verdict']}", "detail": decision.get("reason", "")})  # fmt: skip
        if tags.get("release.stage") in ("promoted", "rolled_back"):
            found.append({"at": last, "version": str(version.version), "kind": "release",
                          "what": tags["release.stage"].replace("_", " "), "detail": tags.get("release.reason", "")})  # fmt: skip
    return sorted(found, key=lambda e: (e["at"] or "", int(e["version"])))
