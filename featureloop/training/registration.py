"""Log a fitted candidate's run in MLflow (parameters, metrics, the training set as the run's
input, the model, its lineage and reference profile) and register it as a model version."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from featureloop.params import TrainParams
from featureloop.training.dataset import LABEL_COLUMN
from featureloop.training.fit import Candidate
from featureloop.training.model import model_input
from featureloop.training.tasks import task_kind
from featureloop.training.training_set import TrainingSet

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from featureloop.training.registry import VersionInfo


def dataset_schema(frame: pd.DataFrame) -> Any:
    """MLflow's schema of a typed frame, inferred from its first row and, per column with missing
    values, one row where it is missing (that is what makes a column optional): equal to MLflow's
    inference over every row (tested) at a fraction of the time."""
    from mlflow.types.utils import _infer_schema

    rows = {0}
    for column in frame.columns:
        missing = np.flatnonzero(frame[column].isna().to_numpy())
        if len(missing):
            rows.add(int(missing[0]))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        return _infer_schema(frame.iloc[sorted(rows)])


def register_candidate(
    client: MlflowClient,
    experiment_id: str,
    model_name: str,
    params: TrainParams,
    training_set: TrainingSet,
    candidate: Candidate,
    offline_dir: Path,
    parent_run_id: str | None = None,
) -> VersionInfo:
    """Log the run (params, metrics, model, lineage, reference profile) and register a model version;
    `parent_run_id`: the run is a child of that one (a tuning experiment's)."""
    import mlflow
    import sklearn
    import skops.io as skops_io
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.models import infer_signature

    from featureloop.training.registry import VersionInfo, creator_tags

    x_example = model_input(candidate.split.holdout.head(200), candidate.numeric, candidate.categorical)
    signature = infer_signature(x_example, task_kind(candidate.task).predict(candidate.pipeline, x_example))
    with warnings.catch_warnings():
        # MLflow registers the local-file source twice and warns that a path is ambiguous between them.
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        # The label and request fields are integers without missing values; the hint does not apply.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        dataset = from_pandas(
            training_set.frame,
            source=training_set.source.resolve().as_uri(),
            targets=LABEL_COLUMN,
            name=f"{params.feature_service}@{params.start.date()}..{params.end.date()}",
            digest=training_set.lineage["training_set_digest"],
        )
    # MLflow would infer the dataset's schema value by value over the whole frame (7 s for two
    # months of the worked example); the same schema comes from the rows that show each column's type and gaps.
    dataset.__dict__["schema"] = dataset_schema(training_set.frame)
    inputs = {"numeric": candidate.numeric, "categorical": candidate.categorical}
    # The run names its process: a later train tells a version still being tagged by a live run
    # from one a killed run left without tags (registry.find_half_made).
    parent = {"mlflow.parentRunId": parent_run_id} if parent_run_id else {}
    with mlflow.start_run(experiment_id=experiment_id, tags={**creator_tags(), **parent}) as run:
        mlflow.log_params(
            {
                "model_family": params.model_family,
                "validation_fraction": params.validation_fraction,
                "holdout_fraction": params.holdout_fraction,
                "shuffle_labels": params.shuffle_labels,
                **{f"hp.{k}": v for k, v in params.hyperparameters.items()},
            }
        )
        mlflow.set_tags({f"lineage.{k}": v for k, v in training_set.lineage.items()})
        for part, values in candidate.metrics.items():
            mlflow.log_metrics({f"{part}.{k}": v for k, v in values.items()})
        with warnings.catch_warnings():
            # The dataset's schema is inferred here; its integer columns (label, request fields) have no gaps.
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
            mlflow.log_input(dataset, context="training")
        mlflow.log_dict(candidate.profile, "reference_profile.json")
        mlflow.log_dict({"holdout": candidate.calibration}, "calibration.json")
        mlflow.log_dict(inputs, "model_inputs.json")
        info = mlflow.sklearn.log_model(
            candidate.pipeline,
            name="model",
            serialization_format="skops",
            # We built this pipeline ourselves: trust exactly the types it contains, nothing more.
            skops_trusted_types=skops_io.get_untrusted_types(data=skops_io.dumps(candidate.pipeline)),
            signature=signature,
            input_example=x_example.head(3),
            pip_requirements=[
                f"scikit-learn=={sklearn.__version__}",
                f"pandas=={pd.__version__}",
                f"numpy=={np.__version__}",
            ],
            registered_model_name=model_name,
        )
        version = str(info.registered_model_version)
        tags = {
            **training_set.lineage,
            "run_id": run.info.run_id,
            "model_family": params.model_family,
            "model_inputs": json.dumps(inputs),
            "reference_profile": f"runs:/{run.info.run_id}/reference_profile.json",
            **({"model_inputs_left_out": ",".join(candidate.left_out)} if candidate.left_out else {}),
            **{f"holdout.{k}": repr(v) for k, v in candidate.metrics["holdout"].items()},
        }
        # Inside the run: a failure while tagging ends the run FAILED (a kill leaves it RUNNING).
        for key, value in tags.items():
            client.set_model_version_tag(model_name, version, key, value)
    return VersionInfo(name=model_name, version=version, run_id=run.info.run_id, tags=tags)
