"""Training-set shaping, time splits, metrics and profiles (pure logic, hand-computed values)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from featureloop.monitoring.profiles import OTHER, build_profile
from featureloop.project.spec import load_spec
from featureloop.settings import PROJECT_ROOT
from featureloop.training.dataset import (
    LABEL_COLUMN,
    TIME_COLUMN,
    TrainingDataError,
    build_entity_frame,
    check_split,
    frame_digest,
    slice_needs,
    split_by_time,
)
from featureloop.training.metrics import evaluate
from featureloop.training.model import build_pipeline, model_input

SPEC = load_spec(PROJECT_ROOT / "feature_repo")  # the worked example's spine and label (arr_delay > 15)
JAN = datetime(2013, 1, 1, tzinfo=UTC)
FEB = datetime(2013, 2, 1, tzinfo=UTC)


def _flights(arr_delays: list[float | None]) -> pd.DataFrame:
    n = len(arr_delays)
    return pd.DataFrame(
        {
            "flight_id": [f"F{i}" for i in range(n)],
            "sched_dep_ts": pd.date_range("2013-01-02", periods=n, freq="h", tz="UTC"),
            "tailnum": "N1",
            "origin": "EWR",
            "carrier": "UA",
            "route": "EWR-BOS",
            "distance": 200.0,
            "sched_hour": 8,
            "day_of_week": 2,
            "arr_delay": arr_delays,
        }
    )


def test_entity_frame_labels_landed_flights_and_skips_the_unlanded() -> None:
    frame = build_entity_frame(_flights([0.0, 30.0, None, 16.0, 15.0]), SPEC, JAN, FEB)
    assert frame[LABEL_COLUMN].tolist() == [0, 1, 1, 0]
    assert frame["flight_id"].tolist() == ["F0", "F1", "F3", "F4"]
    assert "arr_delay" not in frame.columns  # the outcome never reaches the features


def test_window_without_labelled_rows_is_a_named_error() -> None:
    with pytest.raises(
        TrainingDataError, match=r"gives no labelled rows .* no outcome known; the data covers"
    ):
        build_entity_frame(_flights([None, None]), SPEC, JAN, FEB)
    with pytest.raises(TrainingDataError, match="no labelled rows"):
        build_entity_frame(_flights([10.0]), SPEC, FEB, datetime(2013, 3, 1, tzinfo=UTC))


def test_label_with_one_class_is_a_named_error() -> None:
    with pytest.raises(
        TrainingDataError, match=r"the label `arr_delay > 15` is false for all of them \(one class only, 0\)"
    ):
        build_entity_frame(_flights([0.0, 5.0, 10.0]), SPEC, JAN, FEB)


def test_split_by_time_keeps_the_most_recent_rows_for_holdout_without_overlap() -> None:
    frame = build_entity_frame(_flights([float(20 * (i % 2)) for i in range(100)]), SPEC, JAN, FEB)
    split = split_by_time(frame.sample(frac=1.0, random_state=0), 0.2, 0.1, "flight_id")
    assert (len(split.train), len(split.validation), len(split.holdout)) == (70, 20, 10)
    assert split.train[TIME_COLUMN].max() < split.validation[TIME_COLUMN].min()
    assert split.validation[TIME_COLUMN].max() < split.holdout[TIME_COLUMN].min()


def test_metrics_match_hand_computed_values() -> None:
    y, p = np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])
    m = evaluate(y, p)
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["brier"] == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)
    assert m["log_loss"] == pytest.approx(
        -(math.log(0.9) + math.log(0.6) + math.log(0.35) + math.log(0.8)) / 4
    )
    # ECE over 10 bins: bins 0.1, 0.3, 0.4, 0.8 hold one row each.
    assert m["ece"] == pytest.approx((0.1 + 0.4 + 0.65 + 0.2) / 4)


def test_digest_ignores_row_order_but_not_values() -> None:
    frame = build_entity_frame(_flights([0.0, 30.0, 20.0]), SPEC, JAN, FEB)
    assert frame_digest(frame, "flight_id") == frame_digest(frame.iloc[::-1], "flight_id")
    changed = frame.copy()
    changed.loc[0, "distance"] = 201.0
    assert frame_digest(changed, "flight_id") != frame_digest(frame, "flight_id")


def test_model_input_is_float_for_numbers_and_strings_or_nan_for_categories() -> None:
    frame = pd.DataFrame({"a": pd.array([1, None], dtype="Int64"), "b": ["x", None]})
    x = model_input(frame, ["a"], ["b"])
    assert x["a"].dtype == np.float64 and np.isnan(x["a"].iloc[1])
    assert x["b"].iloc[0] == "x" and pd.isna(x["b"].iloc[1])


def test_profile_counts_add_up_and_record_missing_shares() -> None:
    frame = pd.DataFrame(
        {
            "x": [float(i) for i in range(99)] + [np.nan],
            "c": ["a"] * 60 + ["b"] * 30 + [None] * 10,
        }
    )
    profile = build_profile(frame, ["x"], ["c"])["features"]
    x, c = profile["x"], profile["c"]
    assert sum(x["counts"]) == 99 and len(x["counts"]) == len(x["edges"]) - 1 == 10
    assert x["edges"][0] is None and x["edges"][-1] is None  # open-ended outer bins
    assert x["missing_share"] == pytest.approx(0.01)
    assert x["quantiles"]["0.5"] == pytest.approx(49.0)
    assert c["counts"] == {"a": 60, "b": 30} and c["missing_share"] == pytest.approx(0.1)


def test_profile_folds_rare_categories_into_other() -> None:
    frame = pd.DataFrame({"c": [f"v{i}" for i in range(60)] + ["v0"] * 5})
    counts = build_profile(frame, [], ["c"])["features"]["c"]["counts"]
    assert len(counts) == 51 and counts[OTHER] == 10 and counts["v0"] == 6


def test_serving_input_from_columns_equals_the_training_input() -> None:
    from featureloop.training.model import model_input_from_columns

    columns = {"a": [1, None, 3], "b": [0.5, 1.5, None], "c": ["x", None, "y"]}
    frame = pd.DataFrame(
        {"a": pd.array([1, None, 3], dtype="Int64"), "b": [0.5, 1.5, None], "c": ["x", None, "y"]}
    )
    pd.testing.assert_frame_equal(
        model_input_from_columns(columns, ["a", "b"], ["c"]), model_input(frame, ["a", "b"], ["c"])
    )


def test_entity_frame_with_labels_as_of_keeps_only_outcomes_known_by_then() -> None:
    flights = _flights([0.0, 30.0, 16.0, 5.0])
    flights["outcome_known_ts"] = flights["sched_dep_ts"] + pd.Timedelta(hours=3)
    as_of = flights["sched_dep_ts"].iloc[1] + pd.Timedelta(hours=3)  # flights 0 and 1 have landed
    frame = build_entity_frame(flights, SPEC, JAN, FEB, labels_as_of=as_of.to_pydatetime())
    assert frame["flight_id"].tolist() == ["F0", "F1"]
    with pytest.raises(TrainingDataError, match="no outcome known by"):
        build_entity_frame(flights, SPEC, JAN, FEB, labels_as_of=datetime(2013, 1, 1, tzinfo=UTC))


def test_dataset_schema_from_sample_rows_equals_mlflows_inference_over_every_row() -> None:
    import warnings

    from mlflow.types.utils import _infer_schema

    from featureloop.training.registration import dataset_schema

    rng = np.random.default_rng(3)
    n = 500
    frame = pd.DataFrame(
        {
            "flight_id": [f"F{i}" for i in range(n)],
            "event_timestamp": pd.date_range("2013-01-02", periods=n, freq="h", tz="UTC"),
            "temp": np.where(rng.random(n) < 0.1, np.nan, rng.normal(50, 10, n)),
            "plane_year": pd.array(np.where(rng.random(n) < 0.3, None, 2000), dtype="Int64"),
            "seats": rng.integers(50, 300, n),
            "manufacturer": np.where(rng.random(n) < 0.2, None, "BOEING").astype(object),
            "engine_type": ["Turbo-fan"] * n,
            "label": rng.integers(0, 2, n),
        }
    )
    frame.loc[n - 1, "engine_type"] = None  # the only gap, in the last row
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        expected = _infer_schema(frame)
    assert dataset_schema(frame) == expected
    assert any(not c.required for c in expected.inputs)  # the case that needs the missing rows


def _labelled(labels: list[int]) -> pd.DataFrame:
    """Entity rows an hour apart with these labels (arrival delay 20 or 0 at the 15-minute label)."""
    return build_entity_frame(_flights([20.0 * y for y in labels]), SPEC, JAN, FEB)


def test_a_slice_short_of_a_class_is_named_with_its_rows_and_what_it_needs() -> None:
    frame = _labelled([i % 2 for i in range(90)] + [0] * 10)  # the latest 10 rows: all on time
    needs = slice_needs("logistic_regression", {})
    about = {"train_start": JAN, "train_end": FEB}
    with pytest.raises(TrainingDataError) as raised:
        check_split(frame, 0.2, 0.1, needs, about, id_column="flight_id")
    assert raised.value.describe(
        lambda name, _v: {"train_start": "--start 2013-01", "train_end": "--end 2013-02"}[name]
    ) == (
        "--start 2013-01 --end 2013-02 gives 100 labelled rows; its holdout (the latest 10%, on which the "
        "gate compares models) has 10 (0 positive, 10 negative), and the gate's ROC AUC needs a row of each "
        "label class (at least 2 rows, 1 of each): use a wider window, with at least 20 labelled rows"
    )
    assert str(raised.value).startswith(
        "train_start=2013-01-01T00:00:00+00:00 train_end=2013-02-01T00:00:00+00:00 gives"
    )
    split = check_split(_labelled([i % 2 for i in range(100)]), 0.2, 0.1, needs, about, id_column="flight_id")
    assert (len(split.train), len(split.validation), len(split.holdout)) == (70, 20, 10)


@pytest.mark.filterwarnings("ignore::UserWarning")  # scikit-learn on a handful of rows
def test_gradient_boostings_training_slice_need_is_the_least_its_early_stopping_split_fits() -> None:
    """11 rows, 2 of each class: scikit-learn sets aside ceil(10%) for early stopping, stratified."""
    need = slice_needs("hist_gradient_boosting", {})["train"]
    assert (need.rows, need.per_class) == (11, 2)
    assert slice_needs("hist_gradient_boosting", {"early_stopping": False})["train"].rows == 2
    assert slice_needs("hist_gradient_boosting", {"validation_fraction": 0.25})["train"].rows == 5

    def fit(rows: int, positives: int) -> None:
        x = pd.DataFrame({"a": np.arange(rows, dtype=float)})
        y = np.array([1] * positives + [0] * (rows - positives))
        build_pipeline("hist_gradient_boosting", ["a"], [], {}).fit(x, y)

    fit(need.rows, need.per_class)  # exactly the need: it fits
    with pytest.raises(ValueError):
        fit(need.rows - 1, need.per_class)
    with pytest.raises(ValueError):
        fit(need.rows, need.per_class - 1)


def test_a_feature_without_a_value_in_the_training_slice_is_left_out_of_the_model() -> None:
    """A sparse statistic (an aircraft's last hour) can be empty in a short window's training slice:
    scikit-learn 1.9's gradient boosting fails on such a column with numpy's "window shape cannot be
    larger than input array shape"; the model goes without it, and the profile still describes it."""
    from featureloop.params import TrainParams
    from featureloop.training.fit import fit_candidate
    from featureloop.training.training_set import TrainingSet

    rng = np.random.default_rng(0)
    frame = _labelled([int(v) for v in rng.random(400) < 0.3])
    frame["dense"] = rng.normal(size=len(frame)) + frame[LABEL_COLUMN]
    frame["sparse"] = np.where(np.arange(len(frame)) >= 300, 1.0, np.nan)  # values only after training
    training_set = TrainingSet(
        frame, ["dense", "sparse"], {}, SPEC.spine.request_features, SPEC, Path("flights.parquet")
    )
    for family in ("hist_gradient_boosting", "logistic_regression"):
        candidate = fit_candidate(
            training_set, TrainParams(train_start=JAN, train_end=FEB, model_family=family)
        )
        assert candidate.left_out == ("sparse",)
        assert "sparse" not in candidate.numeric and "dense" in candidate.numeric
        assert candidate.profile["features"]["sparse"]["missing_share"] == 1.0
        assert candidate.metrics["holdout"]["roc_auc"] > 0.6
