"""Training-set shaping, time splits, metrics and profiles (pure logic, hand-computed values)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from featureloop.profile import OTHER, build_profile
from featureloop.training import (
    LABEL_COLUMN,
    TIME_COLUMN,
    TrainingDataError,
    build_entity_frame,
    evaluate,
    frame_digest,
    model_input,
    split_by_time,
)

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
    frame = build_entity_frame(_flights([0.0, 30.0, None, 16.0, 15.0]), JAN, FEB, 15)
    assert frame[LABEL_COLUMN].tolist() == [0, 1, 1, 0]
    assert frame["flight_id"].tolist() == ["F0", "F1", "F3", "F4"]
    assert "arr_delay" not in frame.columns  # the outcome never reaches the features


def test_window_without_labelled_rows_is_a_named_error() -> None:
    with pytest.raises(TrainingDataError, match="no labelled flights scheduled in"):
        build_entity_frame(_flights([None, None]), JAN, FEB, 15)
    with pytest.raises(TrainingDataError, match="no labelled flights"):
        build_entity_frame(_flights([10.0]), FEB, datetime(2013, 3, 1, tzinfo=UTC), 15)


def test_label_with_one_class_is_a_named_error() -> None:
    with pytest.raises(TrainingDataError, match=r"has one class only \(0\)"):
        build_entity_frame(_flights([0.0, 5.0, 10.0]), JAN, FEB, 15)


def test_split_by_time_keeps_the_most_recent_rows_for_holdout_without_overlap() -> None:
    frame = build_entity_frame(_flights([float(20 * (i % 2)) for i in range(100)]), JAN, FEB, 15)
    split = split_by_time(frame.sample(frac=1.0, random_state=0), 0.2, 0.1)
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
    frame = build_entity_frame(_flights([0.0, 30.0, 20.0]), JAN, FEB, 15)
    assert frame_digest(frame) == frame_digest(frame.iloc[::-1])
    changed = frame.copy()
    changed.loc[0, "distance"] = 201.0
    assert frame_digest(changed) != frame_digest(frame)


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
    from featureloop.training import model_input_from_columns

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
    frame = build_entity_frame(flights, JAN, FEB, 15, labels_as_of=as_of.to_pydatetime())
    assert frame["flight_id"].tolist() == ["F0", "F1"]
    with pytest.raises(TrainingDataError, match="none landed by"):
        build_entity_frame(flights, JAN, FEB, 15, labels_as_of=datetime(2013, 1, 1, tzinfo=UTC))


def test_dataset_schema_from_sample_rows_equals_mlflows_inference_over_every_row() -> None:
    import warnings

    from mlflow.types.utils import _infer_schema

    from featureloop.trainer import dataset_schema

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
