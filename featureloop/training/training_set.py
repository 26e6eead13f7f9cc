"""The training set through Feast: the window's labelled flights (the spine), their point-in-time
features from the feature service, and the lineage that rebuilds the same set later.

The frame shaping underneath (entity rows, time splits, what each step needs) is pure and lives in
`featureloop.training.dataset`; this module is where Feast, the offline files and git come in.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from featureloop.params import TrainParams
from featureloop.project.spec import ProjectSpec, load_spec, spec_hash
from featureloop.settings import PROJECT_ROOT
from featureloop.training.dataset import (
    TIME_COLUMN,
    Split,
    TrainingDataError,
    build_entity_frame,
    check_split,
    frame_digest,
    slice_needs,
)

if TYPE_CHECKING:
    from feast import FeatureStore


@dataclass(frozen=True)
class TrainingSet:
    """A point-in-time training set and where it came from."""

    frame: pd.DataFrame
    service_features: list[str]
    lineage: dict[str, str]
    request_features: list[str]  # the request fields the model takes as inputs (the spec's)
    spec: ProjectSpec  # the project it was built for (its task, its spine's id)
    source: Path  # the spine's table the rows come from


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


def fetch_features(store: FeatureStore, entity: pd.DataFrame, service: str, id_column: str) -> pd.DataFrame:
    """Point-in-time features of a service for entity rows, in the entity frame's row order
    (`id_column`: the spine's id, which with the prediction time names a row)."""
    job = store.get_historical_features(entity_df=entity, features=store.get_feature_service(service))
    got = job.to_df()
    features, _ = service_features(store, service)
    # Feast reorders rows: join back on the id and the prediction time.
    merged = entity.merge(got[[id_column, TIME_COLUMN, *features]], on=[id_column, TIME_COLUMN], how="left")
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


def path_of_spine(offline_dir: Path, spec: ProjectSpec) -> Path:
    """The spine's table in the offline store."""
    return offline_dir / f"{spec.spine.table}.parquet"


def training_window(params: TrainParams) -> dict[str, object]:
    """The window's bounds, as a failed check of the window's rows names them."""
    return {"train_start": params.train_start, "train_end": params.train_end}


def training_spine(offline_dir: Path, params: TrainParams, spec: ProjectSpec) -> Split:
    """The window's labelled prediction events (keys, prediction times, request fields, labels: the
    spec's spine and label) split by time, checked against what every training step needs: the
    check before any feature is fetched."""
    path = path_of_spine(offline_dir, spec)
    if not path.exists():
        raise TrainingDataError(
            f"no prediction events to train on: {path} does not exist; run `featureloop prepare` "
            "(or point FEATURELOOP_DATA_DIR at a prepared data folder)"
        )
    entity = build_entity_frame(
        pd.read_parquet(path), spec, params.train_start, params.train_end, params.labels_as_of
    )
    needs = slice_needs(params.model_family, params.hyperparameters, spec.task.type)
    return check_split(
        entity,
        params.validation_fraction,
        params.holdout_fraction,
        needs,
        training_window(params),
        id_column=spec.spine.id,
        task=spec.task.type,
    )


def load_training_set(
    store: FeatureStore,
    offline_dir: Path,
    params: TrainParams,
    spine: Split | None = None,
    spec: ProjectSpec | None = None,
) -> TrainingSet:
    """The labelled, point-in-time-correct training set for the window, through the feature service
    (`spine`: the window's checked entity rows, when `training_spine` already built them; `spec`:
    the project's, default the one beside the store's feature_store.yaml)."""
    from featureloop.dataset_versions import read_manifest

    spec = spec or load_spec(Path(str(store.repo_path)))
    features, views = service_features(store, params.feature_service)
    spine = spine or training_spine(offline_dir, params, spec)
    entity = pd.concat([spine.train, spine.validation, spine.holdout], ignore_index=True)
    frame = fetch_features(store, entity, params.feature_service, spec.spine.id)
    service_version = hashlib.sha256(",".join(sorted(features)).encode()).hexdigest()[:12]
    lineage = {
        "feature_service": params.feature_service,
        "feature_service_version": service_version,
        "feature_views": ",".join(views),
        "feast_registry_hash": _registry_hash(store),
        "dataset_version": read_manifest(offline_dir)["dataset_version"],
        "train_start": params.train_start.isoformat(),
        "train_end": params.train_end.isoformat(),
        "label": spec.task.label,
        "task": spec.task.type,
        "project": spec.name,
        "project_spec_hash": spec_hash(spec),
        "labels_as_of": params.labels_as_of.isoformat() if params.labels_as_of else "all landed",
        "training_set_digest": frame_digest(frame, spec.spine.id),
        "training_rows": str(len(frame)),
        "code_version": code_version(),
    }
    return TrainingSet(
        frame=frame,
        service_features=features,
        lineage=lineage,
        request_features=spec.spine.request_features,
        spec=spec,
        source=path_of_spine(offline_dir, spec),
    )
