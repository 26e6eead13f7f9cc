"""A regression task end to end in the pure parts: its spine and split, the fit and its metrics
beside the training-mean baseline, the gate's decisions in MAE and RMSE, and decay on them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from featureloop.monitoring.decay import measure_decay
from featureloop.monitoring.thresholds import DecayConfig
from featureloop.params import TrainParams
from featureloop.project.spec import ProjectSpec
from featureloop.training.dataset import (
    LABEL_COLUMN,
    TrainingDataError,
    build_entity_frame,
    check_split,
    slice_needs,
)
from featureloop.training.fit import fit_candidate
from featureloop.training.gate import GateConfig, decide
from featureloop.training.metrics import evaluate_regression
from featureloop.training.training_set import TrainingSet

START, END = datetime(2021, 1, 1, tzinfo=UTC), datetime(2021, 3, 1, tzinfo=UTC)
SPEC = ProjectSpec.model_validate(
    {
        "name": "sensor_wear", "feature_service": "sensor_v1",
        "spine": {
            "table": "readings", "id": "reading_id", "time": "read_at", "entity_keys": ["sensor"],
            "request_fields": [
                {"name": "sensor", "type": "string"},
                {"name": "load", "type": "float", "feature": True},
            ],
        },
        "task": {"type": "regression", "label": "wear_next_6h * 10", "outcome_known": {"delay": "6h"}},
    }
)  # fmt: skip


def _readings(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    load = rng.uniform(0, 1, n)
    return pd.DataFrame(
        {
            "reading_id": [f"r{i}" for i in range(n)],
            "read_at": pd.date_range(START, periods=n, freq="10min", tz="UTC"),
            "sensor": rng.choice(["s1", "s2", "s3"], n),
            "load": load,
            "wear_next_6h": np.where(np.arange(n) < n - 3, 2 + 5 * load + rng.normal(0, 0.3, n), np.nan),
        }
    )


def test_the_spine_gives_a_numeric_label_from_the_expression_and_skips_unknown_outcomes() -> None:
    readings = _readings(200)
    frame = build_entity_frame(readings, SPEC, START, END)
    assert len(frame) == 197 and frame[LABEL_COLUMN].dtype == "float64"  # the last 3 are not known yet
    first = readings.iloc[0]
    assert frame[LABEL_COLUMN].iloc[0] == pytest.approx(first["wear_next_6h"] * 10)
    assert list(frame.columns[:2]) == ["reading_id", "event_timestamp"]


def test_a_regression_split_needs_rows_not_classes() -> None:
    frame = build_entity_frame(_readings(12), SPEC, START, END)
    needs = slice_needs("hist_gradient_boosting", {}, "regression")
    assert needs["train"].per_class == 0 and needs["train"].rows == 11  # early stopping's 10% needs 11
    with pytest.raises(TrainingDataError, match=r"has \d+, and the hist_gradient_boosting fit needs 11 rows"):
        check_split(frame, 0.15, 0.15, needs, {}, id_column="reading_id", task="regression")


def test_the_fit_beats_the_training_mean_and_reports_mae_rmse_r2() -> None:
    frame = build_entity_frame(_readings(3000), SPEC, START, END)
    frame["sensor_mean_load"] = 0.5  # a service feature without information
    training_set = TrainingSet(frame, ["sensor_mean_load"], {}, ["load"], SPEC, Path("readings.parquet"))
    candidate = fit_candidate(training_set, TrainParams(train_start=START, train_end=END))
    holdout, baseline = candidate.metrics["holdout"], candidate.metrics["baseline_holdout"]
    assert set(holdout) >= {"mae", "rmse", "r2", "mae_se", "n"}
    assert holdout["mae"] < 0.5 * baseline["mae"] and holdout["r2"] > 0.8 and abs(baseline["r2"]) < 0.05
    assert candidate.calibration == [] and candidate.task == "regression"
    assert decide(holdout, None, baseline, GateConfig(), "regression").promote


def _figures(mae: float, rmse: float) -> dict[str, float]:
    return {"mae": mae, "rmse": rmse}


@pytest.mark.parametrize(
    ("challenger", "champion", "promote", "failed"),
    [
        (_figures(9.0, 12.0), _figures(10.0, 12.0), True, []),
        (_figures(9.98, 12.0), _figures(10.0, 12.0), False, ["mae_gain"]),  # 0.2% < the 0.5% asked
        (_figures(9.0, 12.5), _figures(10.0, 12.0), False, ["rmse_guardrail"]),  # RMSE +4.2% > 2%
    ],
)
def test_the_gate_compares_regressions_on_relative_mae_and_rmse(
    challenger: dict[str, float], champion: dict[str, float], promote: bool, failed: list[str]
) -> None:
    decision = decide(challenger, champion, _figures(20.0, 25.0), GateConfig(), "regression")
    assert decision.promote is promote
    assert [c["check"] for c in decision.checks if not c["passed"]] == failed


def test_a_first_regression_model_must_cut_the_baselines_mae() -> None:
    baseline = _figures(10.0, 12.0)
    assert not decide(_figures(9.9, 11.0), None, baseline, GateConfig(), "regression").promote  # 1% < 2%
    assert decide(_figures(9.7, 11.0), None, baseline, GateConfig(), "regression").promote


def _holdout(rng: np.random.Generator, n: int) -> dict[str, Any]:
    y = rng.normal(50, 10, n)
    return evaluate_regression(y, y + rng.normal(0, 2, n))


def test_decay_in_mae_beyond_margin_and_noise_and_none_within() -> None:
    rng = np.random.default_rng(1)
    holdout = _holdout(rng, 4000)
    y = rng.normal(50, 10, 2000)
    errors = rng.normal(0, 2, 2000)
    same = measure_decay(y, y + errors, 2000, holdout, DecayConfig(), "regression")
    assert same.decayed is False and "within margins" in same.reason
    # Errors 30% larger: beyond the 10% margin, and on 2,000 labels beyond noise.
    worse = measure_decay(y, y + 1.3 * errors, 2000, holdout, DecayConfig(), "regression")
    assert worse.decayed is True and "MAE" in worse.reason and "above the holdout's" in worse.reason
    # Exactly 30% above the holdout's MAE on 20 labels: beyond the margin, not beyond sampling noise.
    few_errors = errors[:20] * 1.3 * holdout["mae"] / np.abs(errors[:20]).mean()
    few = measure_decay(y[:20], y[:20] + few_errors, 20, holdout, DecayConfig(min_labels=10), "regression")
    assert few.metrics["mae"] == pytest.approx(1.3 * holdout["mae"])
    assert few.decayed is False and few.metrics["mae_rise_noise"] > 0.3 * holdout["mae"]
    assert measure_decay(y[:20], y[:20], 20, holdout, DecayConfig(), "regression").decayed is None  # < 500
