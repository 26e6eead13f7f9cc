"""The training set through Feast: the window's labelled prediction events (the spine), their point-in-time
features from the feature service, and the lineage that rebuilds the same set later.

The frame shaping underneath (entity rows, time splits, what each step needs) is pure and lives in
`featureloop.training.dataset`; this module is where Feast, the offline files and git come in.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta
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


def spine_table(offline_dir: Path, spec: ProjectSpec) -> Path:
    """The spine's table, or a named error when it is not there."""
    path = path_of_spine(offline_dir, spec)
    if not path.exists():
        raise TrainingDataError(
            f"no prediction events to train on: {path} does not exist; run `featureloop prepare` "
            "(or point FEATURELOOP_DATA_DIR at a prepared data folder)"
        )
    return path


def training_window(params: TrainParams) -> dict[str, object]:
    """The window's bounds, as a failed check of the window's rows names them."""
    return {"train_start": params.train_start, "train_end": params.train_end}


TRAINING_FIELDS = ("model_family", "hyperparameters", "validation_fraction", "holdout_fraction")


def resolve_params(params: TrainParams, spec: ProjectSpec, offline_dir: Path) -> TrainParams:
    """`params` with what its caller left to the project filled in: the spec's feature service, its
    training section (for the fields not given), and the window: it ends just after the last
    prediction with a known outcome (by `labels_as_of`, when given) and spans the spec's
    training.window."""
    from featureloop.project.spec import parse_duration

    update: dict[str, object] = {}
    if not params.feature_service:
        update["feature_service"] = spec.feature_service
    for name in TRAINING_FIELDS:
        if name not in params.model_fields_set:
            update[name] = getattr(spec.training, name)
    if params.train_start is None or params.train_end is None:
        end = params.train_end or last_labelled(offline_dir, spec, params.labels_as_of)
        start = params.train_start or end - parse_duration(spec.training.window)
        if start >= end:
            raise TrainingDataError(
                f"is not before the end of the known outcomes ({end.isoformat()}), where the window "
                "ends when no end is given: use an earlier start, or give the end too",
                {"train_start": start},
            )
        update["train_start"], update["train_end"] = start, end
    return TrainParams.model_validate({**params.model_dump(), **update}) if update else params


def last_labelled(offline_dir: Path, spec: ProjectSpec, labels_as_of: datetime | None) -> datetime:
    """Just after the latest prediction time whose label is known (by `labels_as_of`, when given)."""
    from featureloop.project.outcomes import known_at_sql
    from featureloop.sql import quote_identifier, quote_literal, session

    path = spine_table(offline_dir, spec)
    known = (
        f" AND {known_at_sql(spec.spine, spec.task.outcome_known)} <= {quote_literal(labels_as_of.isoformat())}::TIMESTAMPTZ"
        if labels_as_of is not None
        else ""
    )
    with session() as con:
        (latest,) = con.execute(
            f"SELECT max({quote_identifier(spec.spine.time)}) FROM read_parquet({quote_literal(str(path))}) "
            f"WHERE ({spec.task.label}) IS NOT NULL{known}"
        ).fetchone() or (None,)
    if latest is None:
        raise TrainingDataError(f"{path.name} holds no prediction with a known outcome: nothing to train on")
    return pd.Timestamp(latest).tz_convert("UTC").to_pydatetime() + timedelta(seconds=1)


def training_spine(offline_dir: Path, params: TrainParams, spec: ProjectSpec) -> Split:
    """The window's labelled prediction events (keys, prediction times, request fields, labels: the
    spec's spine and label) split by time, checked against what every training step needs: the
    check before any feature is fetched."""
    path = spine_table(offline_dir, spec)
    params = resolve_params(params, spec, offline_dir)
    entity = build_entity_frame(pd.read_parquet(path), spec, params.start, params.end, params.labels_as_of)
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
    params = resolve_params(params, spec, offline_dir)
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
        "train_start": params.start.isoformat(),
        "train_end": params.end.isoformat(),
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
