"""Training-set shaping, time splits, the model pipeline and its metrics (pure: no Feast, MLflow, Prefect)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from featureloop.params import Label, ModelFamily, parameter_label
from featureloop.project.spec import ProjectSpec

# The entity frame's columns: the spine's id (its own name), then these two beside the keys and
# the request fields.
TIME_COLUMN = "event_timestamp"


LABEL_COLUMN = "label"


class TrainingDataError(ValueError):
    """The training window cannot produce a model: the message says why and what to change.

    `about` holds the parameters the sentence is about (name: value), in the order it names them
    before `detail`; `describe` names them as a caller spells them (the command line's options)."""

    def __init__(self, detail: str, about: Mapping[str, object] | None = None) -> None:
        self.detail = detail
        self.about = dict(about or {})
        super().__init__(self.describe())

    def describe(self, label: Label = parameter_label) -> str:
        """The sentence, each parameter it is about shown by `label`."""
        subject = " ".join(label(name, value) for name, value in self.about.items())
        return f"{subject} {self.detail}" if subject else self.detail


def _day(value: pd.Timestamp) -> str:
    return f"{value:%Y-%m-%d %H:%M}"


def labels_of(rows: pd.DataFrame, spec: ProjectSpec) -> pd.Series:
    """The spec's label over spine rows (NULL: no outcome yet; binary as 0/1)."""
    from featureloop.sql import session

    with session() as con:
        con.register("spine", rows)
        label = con.execute(f"SELECT ({spec.task.label}) AS label FROM spine").df()["label"]
    label.index = rows.index
    return label.astype("Int64") if spec.task.type == "binary" else label


def known_times(rows: pd.DataFrame, spec: ProjectSpec) -> pd.Series:
    """When each spine row's outcome becomes known (`known_at_sql`, the rule decay runs too)."""
    from featureloop.project.outcomes import known_at_sql
    from featureloop.sql import session

    with session() as con:
        con.register("spine", rows)
        query = f"SELECT {known_at_sql(spec.spine, spec.task.outcome_known)} AS known_at FROM spine"
        known = con.execute(query).df()["known_at"]
    known.index = rows.index
    return known


def build_entity_frame(
    spine: pd.DataFrame,
    spec: ProjectSpec,
    start: datetime,
    end: datetime,
    labels_as_of: datetime | None = None,
) -> pd.DataFrame:
    """One row per prediction event of the spine in [start, end) whose label is known (with
    `labels_as_of`: known by then): id, prediction time, keys, request fields, label."""
    sched = spine[spec.spine.time]
    window = spine[(sched >= pd.Timestamp(start)) & (sched < pd.Timestamp(end))]
    label = labels_of(window, spec)
    landed = label.notna()
    if labels_as_of is not None:
        landed &= known_times(window, spec) <= pd.Timestamp(labels_as_of)
    labelled = window[landed]
    about = {"train_start": start, "train_end": end}
    if labelled.empty:
        known = f" by {labels_as_of.isoformat()}" if labels_as_of is not None else ""
        data = f"the data covers {_day(sched.min())} .. {_day(sched.max())} UTC" if len(sched) else "no data"
        raise TrainingDataError(
            f"gives no labelled rows to train on ({len(window)} in the window, no outcome known{known}; "
            f"{data}): use a window inside the data",
            about,
        )
    keys = [k for k in spec.spine.entity_keys if k not in spec.spine.derived_keys or k in labelled.columns]
    frame = labelled[[spec.spine.id, *keys, *spec.spine.request_features]].copy()
    for key, template in spec.spine.derived_keys.items():
        if key not in frame.columns:
            frame[key] = [template.format_map(row) for row in labelled.to_dict("records")]
    frame.insert(1, TIME_COLUMN, labelled[spec.spine.time])
    frame[LABEL_COLUMN] = label[landed].astype("int64" if spec.task.type == "binary" else "float64")
    if spec.task.type == "binary" and frame[LABEL_COLUMN].nunique() < 2:
        only = int(frame[LABEL_COLUMN].iloc[0])
        raise TrainingDataError(
            f"gives {len(frame):,} labelled rows, and the label `{spec.task.label}` is "
            f"{'true' if only else 'false'} for all of them (one class only, {only}): use a wider window, "
            "or a label with both outcomes (task.label in the project's spec)",
            about,
        )
    return frame.sort_values([TIME_COLUMN, spec.spine.id], kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    validation: pd.DataFrame
    holdout: pd.DataFrame


def split_by_time(
    frame: pd.DataFrame, validation_fraction: float, holdout_fraction: float, id_column: str
) -> Split:
    """Oldest rows to train, then validation, then the most recent slice as holdout; no time overlaps
    (ties in time in the order of `id_column`, the spine's id)."""
    ordered = frame.sort_values([TIME_COLUMN, id_column], kind="stable").reset_index(drop=True)
    times = ordered[TIME_COLUMN]
    cut_val = times.quantile(1 - validation_fraction - holdout_fraction)
    cut_hold = times.quantile(1 - holdout_fraction)
    return Split(
        train=ordered[times < cut_val],
        validation=ordered[(times >= cut_val) & (times < cut_hold)],
        holdout=ordered[times >= cut_hold],
    )


@dataclass(frozen=True)
class SliceNeed:
    """The fewest rows, and the fewest of each label class, one slice needs, and the step that needs them."""

    rows: int
    per_class: int
    why: str


def slice_needs(
    family: ModelFamily, hyperparameters: Mapping[str, Any], task: str = "binary"
) -> dict[str, SliceNeed]:
    """What each slice of the split needs for the training steps to run (and give their figures)."""
    if task == "regression":
        rows = 2
        settings = {"early_stopping": True, "validation_fraction": 0.1, **hyperparameters}
        if family == "hist_gradient_boosting" and settings["early_stopping"] is True:
            share = settings["validation_fraction"]
            rows = math.floor(1 / float(share)) + 1 if share is not None and float(share) < 1 else 2
        return {
            "train": SliceNeed(rows, 0, f"the {family} fit needs {rows} rows"),
            "validation": SliceNeed(2, 0, "its R2 needs 2 rows"),
            "holdout": SliceNeed(2, 0, "the gate's R2 needs 2 rows"),
        }
    train = SliceNeed(2, 1, f"the {family} fit needs a row of each label class")
    if family == "hist_gradient_boosting":
        settings = {"early_stopping": True, "validation_fraction": 0.1, **hyperparameters}
        if settings["early_stopping"] is True and settings["validation_fraction"] is not None:
            # scikit-learn sets aside a stratified share for early stopping: it must hold one row
            # of each class (ceil(share * n) >= 2), and what remains both classes too.
            share = float(settings["validation_fraction"])
            train = SliceNeed(
                math.floor(1 / share) + 1 if share < 1 else 2,
                2,
                f"the {family} fit sets aside {share:.0%} for early stopping, with both classes in each part",
            )
    return {
        "train": train,
        "validation": SliceNeed(2, 1, "its ROC AUC needs a row of each label class"),
        "holdout": SliceNeed(2, 1, "the gate's ROC AUC needs a row of each label class"),
    }


SLICE_NAMES = {
    "train": "training slice (the oldest {share:.0%})",
    "validation": "validation slice (the next {share:.0%})",
    "holdout": "holdout (the latest {share:.0%}, on which the gate compares models)",
}


def check_split(
    frame: pd.DataFrame,
    validation_fraction: float,
    holdout_fraction: float,
    needs: Mapping[str, SliceNeed],
    about: Mapping[str, object],
    *,
    id_column: str,
    task: str = "binary",
) -> Split:
    """The time split of a training set (or of its entity rows, before any feature is fetched), or a
    named error when a slice has fewer rows or label classes than a step needs."""
    split = split_by_time(frame, validation_fraction, holdout_fraction, id_column)
    shares = {
        "train": 1 - validation_fraction - holdout_fraction,
        "validation": validation_fraction,
        "holdout": holdout_fraction,
    }
    for name, need in needs.items():
        part: pd.DataFrame = getattr(split, name)
        positives = int(part[LABEL_COLUMN].sum()) if task == "binary" else 0
        least = min(positives, len(part) - positives) if task == "binary" else 0
        if len(part) >= need.rows and least >= need.per_class:
            continue
        # The window that would give this slice enough rows at the same share (ties in time aside).
        window = math.ceil(max(need.rows, 2 * need.per_class) / shares[name])
        has = (
            f"{len(part):,} ({positives:,} positive, {len(part) - positives:,} negative)"
            if task == "binary"
            else f"{len(part):,}"
        )
        least_of_each = f", {need.per_class} of each" if task == "binary" else ""
        raise TrainingDataError(
            f"gives {len(frame):,} labelled rows; its {SLICE_NAMES[name].format(share=shares[name])} "
            f"has {has}, and {need.why} (at least {need.rows} rows{least_of_each}): use a wider window, "
            f"with at least {window:,} labelled rows",
            about,
        )
    return split


def feature_columns(
    frame: pd.DataFrame, service_features: list[str], request_features: list[str]
) -> tuple[list[str], list[str]]:
    """Numeric and categorical model inputs: the service's features plus the request fields."""
    columns = [*service_features, *request_features]
    numeric = [c for c in columns if pd.api.types.is_numeric_dtype(frame[c]) or frame[c].isna().all()]
    categorical = [c for c in columns if c not in numeric]
    return numeric, categorical


def columns_without_values(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    """The columns that hold no value at all in `frame` (nothing a model can learn from them)."""
    return [c for c in columns if not frame[c].notna().any()]


def frame_digest(frame: pd.DataFrame, id_column: str) -> str:
    """A content hash of a training set, independent of row order (`id_column`: the spine's id)."""
    ordered = frame.sort_values([id_column, TIME_COLUMN], kind="stable").reset_index(drop=True)
    ordered = ordered[sorted(ordered.columns)]
    digest = hashlib.sha256()
    digest.update(",".join(ordered.columns).encode())
    digest.update(pd.util.hash_pandas_object(ordered, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]
