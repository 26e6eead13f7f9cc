"""Fit a challenger on the training set and measure it: the time split, the model inputs, the fit,
its metrics (and the baseline's: the training slice's positive rate or mean for every row) on
validation and holdout, its calibration (binary), and the reference profile that drift checks
compare served features against."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from featureloop.monitoring.profiles import build_profile
from featureloop.params import TrainParams
from featureloop.training.dataset import (
    LABEL_COLUMN,
    TIME_COLUMN,
    Split,
    check_split,
    columns_without_values,
    feature_columns,
    slice_needs,
)
from featureloop.training.metrics import calibration_table
from featureloop.training.model import build_pipeline, model_input
from featureloop.training.tasks import task_kind
from featureloop.training.training_set import TrainingSet, training_window

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline


@dataclass(frozen=True)
class Candidate:
    """A fitted challenger with its metrics on validation and holdout, and its reference profile."""

    pipeline: Pipeline
    numeric: list[str]
    categorical: list[str]
    split: Split
    metrics: dict[str, dict[str, float]]
    profile: dict[str, Any] = field(repr=False)
    calibration: list[dict[str, float]] = field(repr=False, default_factory=list)
    # Service features without a single value in the training slice: not model inputs this time.
    left_out: tuple[str, ...] = ()
    id_column: str = "id"  # the spine's id column of the split's frames
    task: str = "binary"

    @property
    def holdout_window(self) -> tuple[str, str]:
        times = self.split.holdout[TIME_COLUMN]
        return times.min().isoformat(), times.max().isoformat()


def fit_candidate(training_set: TrainingSet, params: TrainParams) -> Candidate:
    """Split by time, fit the pipeline, measure it (and the baseline) on validation and holdout."""
    task = training_set.spec.task.type
    kind = task_kind(task)
    needs = slice_needs(params.model_family, params.hyperparameters, task)
    split = check_split(
        training_set.frame,
        params.validation_fraction,
        params.holdout_fraction,
        needs,
        training_window(params),
        id_column=training_set.spec.spine.id,
        task=task,
    )
    columns, categorical = feature_columns(
        training_set.frame, training_set.service_features, training_set.request_features
    )
    # A feature without a single value in the training slice (a sparse statistic in a short window)
    # teaches nothing, and scikit-learn's gradient boosting cannot bin it (1.9 fails with numpy's
    # "window shape cannot be larger than input array shape"): this model goes without it.
    left_out = columns_without_values(split.train, columns)
    numeric = [c for c in columns if c not in left_out]
    pipeline = build_pipeline(params.model_family, numeric, categorical, dict(params.hyperparameters), task)
    y_train = split.train[LABEL_COLUMN].to_numpy()
    if params.shuffle_labels:
        y_train = np.random.default_rng(0).permutation(y_train)
    pipeline.fit(model_input(split.train, numeric, categorical), y_train)
    prior = float(y_train.mean())
    metrics: dict[str, dict[str, float]] = {}
    predicted: dict[str, np.ndarray] = {}
    for name, part in (("validation", split.validation), ("holdout", split.holdout)):
        y = part[LABEL_COLUMN].to_numpy()
        predicted[name] = kind.predict(pipeline, model_input(part, numeric, categorical))
        metrics[name] = kind.evaluate(y, predicted[name])
        metrics[f"baseline_{name}"] = kind.evaluate(y, np.full(len(y), prior))
    profile = build_profile(split.train, columns, categorical)  # the data's profile, every feature
    calibration = (
        calibration_table(split.holdout[LABEL_COLUMN].to_numpy(), predicted["holdout"])
        if task == "binary"
        else []
    )
    return Candidate(
        pipeline,
        numeric,
        categorical,
        split,
        metrics,
        profile,
        calibration,
        left_out=tuple(left_out),
        id_column=training_set.spec.spine.id,
        task=task,
    )
