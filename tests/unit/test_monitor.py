"""Decay on delayed labels, the drift run's conclusion and gauges, the HTML report, skew comparison."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from featureloop.monitoring.checks import Champion, conclude
from featureloop.monitoring.comparison import compare_window
from featureloop.monitoring.decay import labelled_predictions, measure_decay, outcomes_sql
from featureloop.monitoring.outputs import build_report, gauges_text, markdown, write_outputs
from featureloop.monitoring.profiles import build_profile
from featureloop.monitoring.report import render
from featureloop.monitoring.skew import _same
from featureloop.monitoring.thresholds import DecayConfig, DriftConfig, FeatureOverride
from featureloop.monitoring.window import Window
from featureloop.params import DriftParams
from featureloop.project.spec import ProjectSpec, load_spec
from featureloop.settings import PROJECT_ROOT, Settings
from featureloop.training.registry import VersionInfo

HOLDOUT = {"roc_auc": 0.80, "ece": 0.02}


def _scores(n: int, separation: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    logits = separation * (y - 0.5) + rng.normal(0, 1, n)
    return y, 1 / (1 + np.exp(-logits))


def test_a_model_that_lost_its_edge_has_decayed() -> None:
    y, p = _scores(4000, separation=0.2)  # AUC ~ 0.55
    decay = measure_decay(y, p, 4000, HOLDOUT, DecayConfig())
    assert decay.decayed is True and "below the holdout's 0.800" in decay.reason
    assert decay.metrics["roc_auc"] < 0.6 and decay.calibration


def test_a_model_as_good_as_its_holdout_has_not_decayed() -> None:
    y, p = _scores(4000, separation=2.4)
    auc = measure_decay(y, p, 4000, HOLDOUT, DecayConfig(max_ece_rise=1.0)).metrics["roc_auc"]
    decay = measure_decay(y, p, 4000, {"roc_auc": auc + 0.01, "ece": 0.0}, DecayConfig(max_ece_rise=1.0))
    assert decay.decayed is False and "within margins" in decay.reason


def test_too_few_labels_or_one_outcome_give_no_verdict() -> None:
    y, p = _scores(100, 1.0)
    few = measure_decay(y, p, 5000, HOLDOUT, DecayConfig(min_labels=500))
    assert few.decayed is None and "100 labelled predictions < 500 (of 5000 served)" in few.reason
    one = measure_decay(np.ones(600, dtype=int), np.full(600, 0.3), 600, HOLDOUT, DecayConfig())
    assert one.decayed is None and "one outcome" in one.reason


def test_labels_join_only_outcomes_known_by_then_and_the_last_prediction_per_flight(tmp_path: Path) -> None:
    flights = pd.DataFrame(
        {
            "flight_id": ["a", "b", "c"],
            "arr_delay": [30.0, 0.0, None],
            "outcome_known_ts": pd.to_datetime(["2013-05-01T10:00Z", "2013-05-01T14:00Z", pd.NaT], utc=True),
        }
    )
    flights.to_parquet(tmp_path / "flights.parquet")
    con = duckdb.connect()
    log = pd.DataFrame(
        {
            "flight_id": ["a", "a", "b", "c"],
            "prediction": [0.1, 0.9, 0.2, 0.5],
            "served_at": pd.to_datetime(
                ["2013-05-01T08:00Z", "2013-05-01T09:00Z", "2013-05-01T08:00Z", "2013-05-01T08:00Z"], utc=True
            ),
        }
    )
    con.register("log", log)
    spec = load_spec(PROJECT_ROOT / "feature_repo")  # the worked example's: arr_delay > 15, outcome_known_ts
    outcomes = outcomes_sql(
        tmp_path / "flights.parquet", spec.spine, spec.task.outcome_known, spec.task.label
    )
    early = datetime(2013, 5, 1, 12, tzinfo=UTC)
    y, p, served = labelled_predictions("log", outcomes, "flight_id", early, con=con)
    assert served == 3 and y.tolist() == [1] and p.tolist() == [0.9]  # b's outcome is not known yet
    y, p, _ = labelled_predictions("log", outcomes, "flight_id", early.replace(hour=15), con=con)
    assert sorted(zip(y.tolist(), p.tolist(), strict=True)) == [(0, 0.2), (1, 0.9)]


def test_an_outcome_known_a_fixed_time_later_and_any_label_expression(tmp_path: Path) -> None:
    """A project whose outcome is known 90 days after the prediction ("buys again within 90 days"),
    with its label an expression over two columns."""
    spine = pd.DataFrame(
        {
            "customer_order": ["o1", "o2", "o3"],
            "ordered_at": pd.to_datetime(
                ["2013-01-01T00:00Z", "2013-02-01T00:00Z", "2013-03-01T00:00Z"], utc=True
            ),
            "orders_next_90d": [2, 0, 1],
            "returns_next_90d": [1, 0, 1],
        }
    )
    spine.to_parquet(tmp_path / "orders.parquet")
    spec = ProjectSpec.model_validate(
        {
            "name": "repeat", "feature_service": "s",
            "spine": {"table": "orders", "id": "customer_order", "time": "ordered_at"},
            "task": {"type": "binary", "label": "orders_next_90d - returns_next_90d > 0", "outcome_known": {"window": "90d"}},
        }
    )  # fmt: skip
    outcomes = outcomes_sql(tmp_path / "orders.parquet", spec.spine, spec.task.outcome_known, spec.task.label)
    con = duckdb.connect()
    log = pd.DataFrame(
        {
            "customer_order": ["o1", "o2", "o3"],
            "prediction": [0.7, 0.2, 0.4],
            "served_at": spine["ordered_at"],
        }
    )
    con.register("log", log)
    y, p, served = labelled_predictions(
        "log", outcomes, "customer_order", datetime(2013, 5, 15, tzinfo=UTC), con=con
    )
    # o1 known 2013-04-01 and o2 2013-05-02 (90 days on); o3 not before 2013-05-30.
    assert served == 3 and sorted(zip(y.tolist(), p.tolist(), strict=True)) == [(0, 0.2), (1, 0.7)]


def test_small_numeric_windows_use_ks_and_overrides_can_ignore_a_feature() -> None:
    rng = np.random.default_rng(3)
    reference = build_profile(
        pd.DataFrame({"x": rng.normal(0, 1, 5000), "y": rng.normal(0, 1, 5000)}), ["x", "y"], []
    )
    con = duckdb.connect()
    con.register("cur", pd.DataFrame({"x": rng.normal(1.5, 1, 40), "y": rng.normal(1.5, 1, 40)}))
    config = DriftConfig(min_rows=10, features={"y": FeatureOverride(ignore=True)})
    report = compare_window(reference, "cur", config, con=con)
    by_name = {f["name"]: f for f in report["features"]}
    assert by_name["x"]["test"] == "ks" and by_name["x"]["drifted"] and by_name["x"]["wasserstein"] > 1
    assert not by_name["y"]["drifted"] and "ignored by configuration" in by_name["y"]["notes"][0]


def _champion() -> Champion:
    version = VersionInfo("m", "3", "run", {"feature_service": "svc"})
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.normal(0, 1, 3000), "c": rng.choice(["a", "b"], 3000)})
    return Champion(version, build_profile(frame, ["x"], ["c"]), HOLDOUT, "arr_delay > 15")


def _window(champion: Champion, shift: float, rows: int = 2000) -> dict[str, Any]:
    rng = np.random.default_rng(int(shift * 10))
    con = duckdb.connect()
    con.register("cur", pd.DataFrame({"x": rng.normal(shift, 1, rows), "c": rng.choice(["a", "b"], rows)}))
    return compare_window(champion.reference, "cur", DriftConfig(share_threshold=0.5), con=con)


def _summary(champion: Champion, shift: float, day: int, history: list[dict[str, Any]]) -> dict[str, Any]:
    start, end = datetime(2013, 5, day, tzinfo=UTC), datetime(2013, 5, day + 1, tzinfo=UTC)
    decay = {"decayed": None, "labelled": 0, "served": 0, "reason": "none"}
    return conclude(
        champion, Window(start, end), _window(champion, shift), decay, None, history, DriftParams()
    )


def test_the_event_fires_only_when_drift_holds_in_k_of_the_last_n_windows() -> None:
    champion = _champion()
    history: list[dict[str, Any]] = []
    events = []
    for day, shift in enumerate([0.0, 1.0, 0.0, 1.0, 1.0], start=1):
        summary = _summary(champion, shift, day, history)
        events.append(summary["event"])
        history.append(summary)
    # Drift in windows 2, 4, 5: 2 of the last 3 first holds at window 4.
    assert [h["drifted"] for h in history] == [False, True, False, True, True]
    assert events == [False, False, False, True, True]
    assert "drift in 2 of the last 3 windows" in history[3]["reasons"][0]
    # Another model version's windows do not count: a new champion starts over.
    other = Champion(VersionInfo("m", "4", "run", {}), champion.reference, HOLDOUT, "arr_delay > 15")
    assert _summary(other, 1.0, 6, history)["event"] is False


def test_decay_alone_fires_the_event() -> None:
    champion = _champion()
    window = _window(champion, 0.0)
    decay = {"decayed": True, "labelled": 900, "served": 1000, "reason": "ROC AUC 0.61 is 0.19 below",
             "metrics": {"roc_auc": 0.61, "ece": 0.03}}  # fmt: skip
    start, end = datetime(2013, 5, 1, tzinfo=UTC), datetime(2013, 5, 2, tzinfo=UTC)
    summary = conclude(champion, Window(start, end), window, decay, None, [], DriftParams())
    assert summary["drifted"] is False and summary["event"] and summary["reasons"][0].startswith("decay:")


def test_outputs_report_gauges_and_history(tmp_path: Path) -> None:
    champion = _champion()
    settings = Settings(data_dir=tmp_path)
    history: list[dict[str, Any]] = []
    for day, shift in enumerate([0.0, 1.0], start=1):
        window = _window(champion, shift)
        decay = {"decayed": False, "labelled": 800, "served": 900, "reason": "within margins",
                 "metrics": {"roc_auc": 0.79, "ece": 0.02},
                 "calibration": [{"bin_low": 0.0, "bin_high": 0.1, "n": 5, "mean_predicted": 0.05, "observed_rate": 0.0}]}  # fmt: skip
        start, end = datetime(2013, 5, day, tzinfo=UTC), datetime(2013, 5, day + 1, tzinfo=UTC)
        summary = conclude(champion, Window(start, end), window, decay, None, history, DriftParams())
        report = build_report(champion, window, decay, None, summary)
        paths = write_outputs(settings, report, history)
        history.append(summary)
    html = Path(paths["html"]).read_text()
    assert (
        html.count('<svg class="hist"') == 2 and html.count('<svg class="trend"') == 3
    )  # 2 trends + calibration
    assert "DRIFT" in html and "x" in html
    families = {f.name: f for f in text_string_to_metric_families(Path(paths["gauges"]).read_text())}
    assert families["featureloop_drift_verdict"].samples[0].value == 1.0
    psi = {s.labels["feature"]: s.value for s in families["featureloop_drift_feature_psi"].samples}
    assert psi["x"] > 0.1 and set(psi) == {"x", "c"}
    assert families["featureloop_window_roc_auc"].samples[0].value == pytest.approx(0.79)
    lines = (tmp_path / "drift" / "history.jsonl").read_text().splitlines()
    assert len(lines) == 2
    write_outputs(settings, report, history)  # a rerun of a window replaces its line
    assert len((tmp_path / "drift" / "history.jsonl").read_text().splitlines()) == 2
    assert re.search(r"\| x \| yes \|", markdown(report, paths))


def test_the_report_escapes_what_it_shows() -> None:
    champion = _champion()
    window = _window(champion, 0.0)
    window["absent"] = ["<script>alert(1)</script>"]
    decay = {"decayed": None, "labelled": 0, "served": 0, "reason": "<b>none</b>"}
    start, end = datetime(2013, 5, 1, tzinfo=UTC), datetime(2013, 5, 2, tzinfo=UTC)
    summary = conclude(champion, Window(start, end), window, decay, None, [], DriftParams())
    html = render(build_report(champion, window, decay, None, summary), [])
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;none" in html


def test_skew_comparison_treats_nulls_and_float_noise_sensibly() -> None:
    assert _same(None, None) and _same(float("nan"), None) and _same(1.0, 1.0 + 1e-12) and _same("UA", "UA")
    assert not _same(1.0, 1.01) and not _same(None, 0.0) and not _same(3.0, None) and not _same("UA", "DL")


def test_gauges_name_every_feature() -> None:
    champion = _champion()
    window = _window(champion, 1.0)
    decay = {"decayed": None, "labelled": 0, "served": 0, "reason": "none"}
    start, end = datetime(2013, 5, 1, tzinfo=UTC), datetime(2013, 5, 2, tzinfo=UTC)
    summary = conclude(champion, Window(start, end), window, decay, None, [], DriftParams())
    text = gauges_text(build_report(champion, window, decay, None, summary))
    assert 'featureloop_drift_feature_drifted{feature="x",model_version="3"} 1.0' in text
    assert 'featureloop_decay_verdict{model_version="3"} -1.0' in text


def test_a_drop_within_sampling_noise_is_not_decay() -> None:
    y, p = _scores(300, separation=1.6, seed=4)
    auc = measure_decay(y, p, 300, HOLDOUT, DecayConfig(min_labels=100, max_ece_rise=1.0)).metrics["roc_auc"]
    small = {"roc_auc": auc + 0.07, "ece": 0.0, "n": 120.0, "positive_rate": 0.3}
    decay = measure_decay(y, p, 300, small, DecayConfig(min_labels=100, max_ece_rise=1.0))
    assert decay.decayed is False and decay.metrics["auc_drop_noise"] > 0.07  # 0.07 > margin, < noise
    # The same drop measured on large samples is decay.
    y, p = _scores(20_000, separation=1.6, seed=4)
    auc = measure_decay(y, p, 20_000, HOLDOUT, DecayConfig(max_ece_rise=1.0)).metrics["roc_auc"]
    large = {"roc_auc": auc + 0.07, "ece": 0.0, "n": 100_000.0, "positive_rate": 0.3}
    assert measure_decay(y, p, 20_000, large, DecayConfig(max_ece_rise=1.0)).decayed is True


def test_rows_by_version_counts_rows_without_a_version_together() -> None:
    import pyarrow as pa

    from featureloop.monitoring.window import rows_by_version

    table = pa.table({"model_version": pa.array(["1", "", None, "2", "1"])})
    assert rows_by_version(table) == {"1": 2, "2": 1, "?": 2}  # "" and null are one "?", summed
