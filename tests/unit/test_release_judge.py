"""A release stage's decision (featureloop.release.judge): pure functions of the stage's evidence."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from featureloop.monitoring.thresholds import ReleaseConfig, StageWindow
from featureloop.release.judge import Evidence, Side, auc_and_se, delong_paired, judge, prediction_psi

CONFIG = ReleaseConfig()
WINDOW = StageWindow(min_rows=1000, max_time="7d")
RNG = np.random.default_rng(7)


def _scores(labels: np.ndarray, signal: float, rng: np.random.Generator) -> np.ndarray:
    """Probabilities that rank the labels with `signal` (0: at random)."""
    return 1 / (1 + np.exp(-(signal * (labels - 0.5) + rng.normal(size=len(labels)))))


def _evidence(
    *,
    signal: tuple[float, float] = (1.5, 1.5),
    n: int = 3000,
    served: int = 3000,
    elapsed: timedelta = timedelta(days=3),
    errors: int = 0,
    p99: tuple[float, float] = (4.0, 4.5),
    paired: bool = True,
    seed: int = 1,
) -> Evidence:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(float)
    champion, challenger = _scores(y, signal[0], rng), _scores(y, signal[1], rng)
    return Evidence(
        "shadow" if paired else "canary",
        served,
        elapsed,
        Side("1", served, 0, p99[0], champion, y, champion),
        Side("2", served, errors, p99[1], challenger, y, challenger),
        paired=paired,
    )


def test_delong_agrees_with_roc_auc_and_with_a_bootstrap_of_the_difference() -> None:
    y = (RNG.random(2000) < 0.3).astype(float)
    a, b = _scores(y, 1.5, RNG), _scores(y, 1.2, RNG)
    (auc_a, auc_b), se = delong_paired(y, a, b)
    assert auc_a == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    assert auc_b == pytest.approx(roc_auc_score(y, b), abs=1e-12)
    boot = []
    for _ in range(300):
        i = RNG.integers(0, len(y), len(y))
        boot.append(roc_auc_score(y[i], a[i]) - roc_auc_score(y[i], b[i]))
    assert se == pytest.approx(np.std(boot), rel=0.2)
    # Paired is tighter than the two AUCs' errors combined (the rows are shared).
    assert se < np.hypot(auc_and_se(y, a)[1], auc_and_se(y, b)[1])
    assert delong_paired(y, a, a)[1] == 0.0


def test_a_stage_waits_for_its_window_then_for_labels() -> None:
    open_window = judge(_evidence(served=400, elapsed=timedelta(days=1)), CONFIG, WINDOW, "binary")
    assert open_window.verdict == "wait" and "400 of 1,000 rows scored" in open_window.reason
    # The time is up with few rows: the window closes anyway; labels are still short: wait for them.
    few = _evidence(n=50, served=50, elapsed=timedelta(days=7, hours=1))
    waiting = judge(few, CONFIG, WINDOW, "binary")
    assert waiting.verdict == "wait" and "50 of 200 labelled" in waiting.reason
    # After the wait for labels, too few labels is no evidence that it is not worse: rolled back.
    late = _evidence(n=50, served=50, elapsed=timedelta(days=9, hours=1))
    gave_up = judge(late, CONFIG, WINDOW, "binary")
    assert gave_up.verdict == "fail" and "only 50 labelled rows" in gave_up.reason


def test_an_equal_challenger_passes_and_a_worse_one_is_rolled_back_with_the_figures() -> None:
    same = judge(_evidence(signal=(1.5, 1.5)), CONFIG, WINDOW, "binary")
    assert same.verdict == "pass", same.reason
    assert {c["check"] for c in same.checks} == {"roc_auc", "prediction_psi", "error_rate", "p99_latency_ms"}
    worse = judge(_evidence(signal=(1.5, 0.3)), CONFIG, WINDOW, "binary")
    assert worse.verdict == "fail" and "ROC AUC" in worse.reason and "lower" in worse.reason
    (auc,) = [c for c in worse.checks if c["check"] == "roc_auc"]
    assert auc["challenger"] < auc["champion"] - CONFIG.max_auc_drop and not auc["passed"]


def test_errors_latency_and_a_prediction_shift_each_roll_back() -> None:
    erring = judge(_evidence(errors=100), CONFIG, WINDOW, "binary")
    assert erring.verdict == "fail" and "100 of 3,000 scorings failed" in erring.reason
    slow = judge(_evidence(p99=(4.0, 30.0)), CONFIG, WINDOW, "binary")
    assert slow.verdict == "fail" and "p99 30.0 ms" in slow.reason
    shifted = _evidence()
    moved = Side("2", 3000, 0, 4.0, shifted.challenger.predictions * 0.2,
                 shifted.challenger.labels, shifted.challenger.labelled)  # fmt: skip
    decision = judge(
        Evidence("canary", 3000, timedelta(days=3), shifted.champion, moved, False), CONFIG, WINDOW, "binary"
    )
    assert decision.verdict == "fail" and "prediction PSI" in decision.reason
    assert "without better labelled metrics" in decision.reason


def test_a_large_prediction_shift_passes_only_with_better_labelled_metrics() -> None:
    base = _evidence(signal=(0.5, 2.5))  # the challenger ranks much better
    spread = Side("2", 3000, 0, 4.0, base.challenger.predictions**3, base.challenger.labels,
                  base.challenger.labelled**3)  # fmt: skip
    better = judge(
        Evidence("shadow", 3000, timedelta(days=3), base.champion, spread, True), CONFIG, WINDOW, "binary"
    )
    (shift,) = [c for c in better.checks if c["check"] == "prediction_psi"]
    assert shift["challenger"] > CONFIG.max_prediction_psi and shift["passed"], better.reason
    assert better.verdict == "pass" and "explained by better labelled metrics" in better.reason
    # A canary's unpaired sample may not show it; the shadow stage's paired test did.
    same = _evidence(paired=False)
    moved = Side("2", 3000, 0, 4.0, same.challenger.predictions**3, same.challenger.labels,
                  same.challenger.labelled**3)  # fmt: skip
    canary = Evidence("canary", 3000, timedelta(days=3), same.champion, moved, False)
    assert judge(canary, CONFIG, WINDOW, "binary").verdict == "fail"
    explained = judge(canary, CONFIG, WINDOW, "binary", shown_better=True)
    assert explained.verdict == "pass" and "the shadow stage's better labelled metrics" in explained.reason


def test_prediction_psi_is_small_for_one_distribution_and_none_without_rows() -> None:
    a, b = RNG.random(5000), RNG.random(5000)
    value = prediction_psi(a, b)
    assert value is not None and value < 0.02
    assert prediction_psi(a, np.array([])) is None


def test_regression_compares_mean_absolute_errors() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(size=2000)
    good, bad = y + rng.normal(scale=0.5, size=2000), y + rng.normal(scale=0.8, size=2000)
    side = lambda v, p: Side(v, 2000, 0, 3.0, p, y, p)  # noqa: E731
    ok = judge(
        Evidence("shadow", 2000, timedelta(days=3), side("1", good), side("2", good + 0.01), True),
        CONFIG,
        WINDOW,
        "regression",
    )
    assert ok.verdict == "pass", ok.reason
    worse = judge(
        Evidence("shadow", 2000, timedelta(days=3), side("1", good), side("2", bad), True),
        CONFIG,
        WINDOW,
        "regression",
    )
    assert worse.verdict == "fail" and "MAE" in worse.reason


def test_predictions_that_are_not_numbers_fail_the_metric_check() -> None:
    e = _evidence()
    broken = e.challenger.labelled.copy()
    broken[:5] = np.nan
    nan = Side("2", 3000, 0, 4.0, e.challenger.predictions, e.challenger.labels, broken)
    decision = judge(
        Evidence("shadow", 3000, timedelta(days=3), e.champion, nan, True), CONFIG, WINDOW, "regression"
    )
    assert (
        decision.verdict == "fail"
        and "5 of the challenger's labelled predictions are not finite" in decision.reason
    )
