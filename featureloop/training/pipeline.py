"""The training steps: training set from Feast, fit and evaluate, register in MLflow, gate, promote.

Each step is a plain function so the Prefect flow can run them as tasks and the CLI can run them
directly; neither adds logic of its own.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from featureloop.monitoring.profiles import build_profile
from featureloop.params import TrainParams
from featureloop.settings import PROJECT_ROOT, Settings
from featureloop.training.dataset import (
    ID_COLUMN,
    LABEL_COLUMN,
    TIME_COLUMN,
    Split,
    TrainingDataError,
    build_entity_frame,
    check_split,
    columns_without_values,
    feature_columns,
    frame_digest,
    slice_needs,
)
from featureloop.training.gate import Decision, decide
from featureloop.training.metrics import calibration_table, evaluate
from featureloop.training.model import build_pipeline, model_input

if TYPE_CHECKING:
    from feast import FeatureStore
    from mlflow import MlflowClient
    from sklearn.pipeline import Pipeline

    from featureloop.training.registry import VersionInfo


@dataclass(frozen=True)
class TrainingSet:
    """A point-in-time training set and where it came from."""

    frame: pd.DataFrame
    service_features: list[str]
    lineage: dict[str, str]


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

    @property
    def holdout_window(self) -> tuple[str, str]:
        times = self.split.holdout[TIME_COLUMN]
        return times.min().isoformat(), times.max().isoformat()


def service_features(store: FeatureStore, name: str) -> tuple[list[str], list[str]]:
    """Feature names and the views they come from, for a feature service (error names the known ones)."""
    from feast.errors import FeatureServiceNotFoundException

    try:
        service = store.get_feature_service(name)
    except FeatureServiceNotFoundException as exc:
        known = ", ".join(sorted(s.name for s in store.list_feature_services())) or "none"
        raise TrainingDataError(
            f"is not a feature service of the Feast registry (it has: {known}): use one of those, "
            "or run `featureloop apply` after adding it to the feature repository",
            {"feature_service": name},
        ) from exc
    features = [f.name for p in service.feature_view_projections for f in p.features]
    views = sorted({p.name for p in service.feature_view_projections})
    return features, views


def fetch_features(store: FeatureStore, entity: pd.DataFrame, service: str) -> pd.DataFrame:
    """Point-in-time features of a service for entity rows, in the entity frame's row order."""
    job = store.get_historical_features(entity_df=entity, features=store.get_feature_service(service))
    got = job.to_df()
    features, _ = service_features(store, service)
    # Feast reorders rows: join back on the flight and its prediction time.
    merged = entity.merge(got[[ID_COLUMN, TIME_COLUMN, *features]], on=[ID_COLUMN, TIME_COLUMN], how="left")
    if len(merged) != len(entity):
        raise RuntimeError(
            f"Feast returned {len(got)} rows for {len(entity)} entity rows: keys are not unique"
        )
    return merged


def _registry_hash(store: FeatureStore) -> str:
    return hashlib.sha256(store.registry.proto().SerializeToString(deterministic=True)).hexdigest()[:16]


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=5
    ).stdout.strip()


def code_version() -> str:
    """The git commit of the code that trained (with `-dirty` for uncommitted changes), if known."""
    try:
        sha = _git("rev-parse", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha[:12]}-dirty" if dirty else sha[:12]


def _window(params: TrainParams) -> dict[str, object]:
    return {"train_start": params.train_start, "train_end": params.train_end}


def training_spine(offline_dir: Path, params: TrainParams) -> Split:
    """The window's labelled flights (keys, prediction times, request fields, labels) split by time,
    checked against what every training step needs: the check before any feature is fetched."""
    flights = pd.read_parquet(offline_dir / "flights.parquet")
    entity = build_entity_frame(
        flights, params.train_start, params.train_end, params.label_threshold_minutes, params.labels_as_of
    )
    needs = slice_needs(params.model_family, params.hyperparameters)
    return check_split(entity, params.validation_fraction, params.holdout_fraction, needs, _window(params))


def load_training_set(
    store: FeatureStore, offline_dir: Path, params: TrainParams, spine: Split | None = None
) -> TrainingSet:
    """The labelled, point-in-time-correct training set for the window, through the feature service
    (`spine`: the window's checked entity rows, when `training_spine` already built them)."""
    from featureloop.dataset_versions import read_manifest

    features, views = service_features(store, params.feature_service)
    spine = spine or training_spine(offline_dir, params)
    entity = pd.concat([spine.train, spine.validation, spine.holdout], ignore_index=True)
    frame = fetch_features(store, entity, params.feature_service)
    service_version = hashlib.sha256(",".join(sorted(features)).encode()).hexdigest()[:12]
    lineage = {
        "feature_service": params.feature_service,
        "feature_service_version": service_version,
        "feature_views": ",".join(views),
        "feast_registry_hash": _registry_hash(store),
        "dataset_version": read_manifest(offline_dir)["dataset_version"],
        "train_start": params.train_start.isoformat(),
        "train_end": params.train_end.isoformat(),
        "label": f"arr_delay > {params.label_threshold_minutes}",
        "label_threshold_minutes": str(params.label_threshold_minutes),
        "labels_as_of": params.labels_as_of.isoformat() if params.labels_as_of else "all landed",
        "training_set_digest": frame_digest(frame),
        "training_rows": str(len(frame)),
        "code_version": code_version(),
    }
    return TrainingSet(frame=frame, service_features=features, lineage=lineage)


def fit_candidate(training_set: TrainingSet, params: TrainParams) -> Candidate:
    """Split by time, fit the pipeline, measure it (and the prior-rate baseline) on validation and holdout."""
    needs = slice_needs(params.model_family, params.hyperparameters)
    split = check_split(
        training_set.frame, params.validation_fraction, params.holdout_fraction, needs, _window(params)
    )
    columns, categorical = feature_columns(training_set.frame, training_set.service_features)
    # A feature without a single value in the training slice (a sparse statistic in a short window)
    # teaches nothing, and scikit-learn's gradient boosting cannot bin it (1.9 fails with numpy's
    # "window shape cannot be larger than input array shape"): this model goes without it.
    left_out = columns_without_values(split.train, columns)
    numeric = [c for c in columns if c not in left_out]
    pipeline = build_pipeline(params.model_family, numeric, categorical, dict(params.hyperparameters))
    y_train = split.train[LABEL_COLUMN].to_numpy()
    if params.shuffle_labels:
        y_train = np.random.default_rng(0).permutation(y_train)
    pipeline.fit(model_input(split.train, numeric, categorical), y_train)
    prior = float(y_train.mean())
    metrics: dict[str, dict[str, float]] = {}
    for name, part in (("validation", split.validation), ("holdout", split.holdout)):
        y = part[LABEL_COLUMN].to_numpy()
        metrics[name] = evaluate(y, pipeline.predict_proba(model_input(part, numeric, categorical))[:, 1])
        metrics[f"baseline_{name}"] = evaluate(y, np.full(len(y), prior))
    profile = build_profile(split.train, columns, categorical)  # the data's profile, every feature
    holdout_y = split.holdout[LABEL_COLUMN].to_numpy()
    holdout_p = pipeline.predict_proba(model_input(split.holdout, numeric, categorical))[:, 1]
    calibration = calibration_table(holdout_y, holdout_p)
    return Candidate(
        pipeline, numeric, categorical, split, metrics, profile, calibration, left_out=tuple(left_out)
    )


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
) -> VersionInfo:
    """Log the run (params, metrics, model, lineage, reference profile) and register a model version."""
    import mlflow
    import sklearn
    import skops.io as skops_io
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.models import infer_signature

    from featureloop.training.registry import VersionInfo, creator_tags

    x_example = model_input(candidate.split.holdout.head(200), candidate.numeric, candidate.categorical)
    signature = infer_signature(x_example, candidate.pipeline.predict_proba(x_example)[:, 1])
    with warnings.catch_warnings():
        # MLflow registers the local-file source twice and warns that a path is ambiguous between them.
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        # The label and request fields are integers without missing values; the hint does not apply.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        dataset = from_pandas(
            training_set.frame,
            source=(offline_dir / "flights.parquet").resolve().as_uri(),
            targets=LABEL_COLUMN,
            name=f"{params.feature_service}@{params.train_start.date()}..{params.train_end.date()}",
            digest=training_set.lineage["training_set_digest"],
        )
    # MLflow would infer the dataset's schema value by value over the whole frame (7 s for two
    # months of flights); the same schema comes from the rows that show each column's type and gaps.
    dataset.__dict__["schema"] = dataset_schema(training_set.frame)
    inputs = {"numeric": candidate.numeric, "categorical": candidate.categorical}
    # The run names its process: a later train tells a version still being tagged by a live run
    # from one a killed run left without tags (model_registry.find_half_made).
    with mlflow.start_run(experiment_id=experiment_id, tags=creator_tags()) as run:
        mlflow.log_params(
            {
                "model_family": params.model_family,
                "label_threshold_minutes": params.label_threshold_minutes,
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


def score_version(
    store: FeatureStore, version: VersionInfo, holdout: pd.DataFrame, training_service: str
) -> dict[str, float]:
    """A registered model's metrics on a labelled window, with the features of its own service."""
    from featureloop.training.registry import load_model

    inputs = json.loads(version.tags["model_inputs"])
    service = version.tags.get("feature_service", training_service)
    frame = holdout
    if service != training_service:
        keep = [c for c in holdout.columns if c not in set(inputs["numeric"]) | set(inputs["categorical"])]
        frame = fetch_features(store, holdout[keep], service)
    model = load_model(version.uri)
    proba = model.predict_proba(model_input(frame, inputs["numeric"], inputs["categorical"]))[:, 1]
    return evaluate(frame[LABEL_COLUMN].to_numpy(), proba)


def gate_and_promote(
    client: MlflowClient,
    store: FeatureStore,
    challenger: VersionInfo,
    candidate: Candidate,
    params: TrainParams,
) -> tuple[Decision, dict[str, float] | None]:
    """Compare with the champion on the challenger's holdout, record the decision, promote if it passes."""
    from featureloop.training.registry import CHAMPION, get_alias, promote, record_decision

    champion = get_alias(client, challenger.name, CHAMPION)
    champion_metrics = (
        score_version(store, champion, candidate.split.holdout, params.feature_service) if champion else None
    )
    decision = decide(
        candidate.metrics["holdout"], champion_metrics, candidate.metrics["baseline_holdout"], params.gate
    )
    record = decision.as_dict()
    record["champion_version"] = champion.version if champion else None
    holdout_start, holdout_end = candidate.holdout_window
    record["window"] = f"{holdout_start}..{holdout_end}"
    # The champion may have trained on part of this window (a retrain on the same period): that
    # favours the champion, so the gate errs on the side of keeping it. Say so on the record.
    record["window_overlaps_champion_training"] = bool(
        champion and champion.tags.get("train_end", "") > holdout_start
    )
    record_decision(client, challenger, record)
    if champion_metrics is not None:
        client.set_model_version_tag(
            challenger.name, challenger.version, "gate.champion_metrics", json.dumps(champion_metrics)
        )
    if decision.promote:
        promote(client, challenger)
    return decision, champion_metrics


def run_training(
    settings: Settings, params: TrainParams, report: Any = print, check_only: bool = False
) -> dict[str, Any]:
    """Every step in order (what the `train` flow runs as tasks); returns a summary for people.

    The window's rows are checked first, against what every step needs; `check_only` stops after
    that and the feature service's check (nothing is fetched, fitted or registered)."""
    from featureloop.featurestore.store import open_store
    from featureloop.training.registry import connect, find_half_made

    spine = training_spine(settings.offline_dir, params)
    rows = {name: len(getattr(spine, name)) for name in ("train", "validation", "holdout")}
    report(
        f"window {params.train_start.date()} .. {params.train_end.date()}: {sum(rows.values()):,} labelled "
        f"flights (train {rows['train']:,} / validation {rows['validation']:,} / holdout {rows['holdout']:,})"
    )
    if check_only:
        service_features(open_store(settings), params.feature_service)
        return {"checked": True, "rows": rows, "feature_service": params.feature_service}
    client, experiment_id = connect(settings.tracking_uri, settings.artifact_location, settings.experiment)
    half_made = find_half_made(client, settings.model_name)
    for found in half_made:
        report(f"warning: {found.describe()}")
    store = open_store(settings)
    report(f"training set: {params.feature_service} {params.train_start.date()} .. {params.train_end.date()}")
    training_set = load_training_set(store, settings.offline_dir, params, spine)
    report(
        f"training set: {len(training_set.frame):,} rows, digest {training_set.lineage['training_set_digest']}"
    )
    candidate = fit_candidate(training_set, params)
    if candidate.left_out:
        report(f"left out (no value in the training slice): {', '.join(candidate.left_out)}")
    report(f"fitted {params.model_family}: holdout ROC AUC {candidate.metrics['holdout']['roc_auc']:.4f}")
    version = register_candidate(
        client, experiment_id, settings.model_name, params, training_set, candidate, settings.offline_dir
    )
    report(f"registered {version.name} version {version.version}")
    decision, champion_metrics = (
        gate_and_promote(client, store, version, candidate, params) if params.promote else (None, None)
    )
    if decision is not None:
        report(decision.reason)
    summary = summarize(version, candidate, decision, champion_metrics)
    summary["half_made"] = [found.describe() for found in half_made]
    return summary


def summarize(
    version: VersionInfo,
    candidate: Candidate,
    decision: Decision | None,
    champion_metrics: dict[str, float] | None,
) -> dict[str, Any]:
    """What a person wants to read after a training run."""
    return {
        "model": version.name,
        "version": version.version,
        "run_id": version.run_id,
        "rows": {name: len(getattr(candidate.split, name)) for name in ("train", "validation", "holdout")},
        "holdout": candidate.metrics["holdout"],
        "baseline_holdout": candidate.metrics["baseline_holdout"],
        "champion_holdout": champion_metrics,
        "promoted": bool(decision and decision.promote),
        "reason": decision.reason if decision else "gate not run (promote=false)",
        "left_out": list(candidate.left_out),
        "lineage": {
            k: version.tags[k] for k in ("feature_service", "dataset_version", "training_set_digest")
        },
    }
