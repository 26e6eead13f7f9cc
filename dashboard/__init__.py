"""The dashboard: the panels of docs/grafana/featureloop-dashboard.json and the loop's drift, decay,
retrain and release history, viewable offline on the embedded stack (`make up` starts it)."""
