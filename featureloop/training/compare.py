"""Two registered versions side by side, on one holdout: their metrics (and, for the headline, the
paired difference with its standard error), where their lineage differs, and what the gate and a
release decided about each. For terminals and CI (`featureloop compare A B`); the MLflow UI shows
the same runs.

The holdout is one version's own (by default the newer one's): its training window's most recent
slice, rebuilt from the offline store through the feature service it recorded, with the outcomes
known as it recorded (`labels_as_of`). Each version is scored on those rows with the features of its
own service, as the gate scores a champion.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from featureloop.settings import Settings

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore
    from mlflow import MlflowClient

    from featureloop.project.spec import ProjectSpec
    from featureloop.training.registry import VersionInfo

LINEAGE = (
    "project", "task", "label", "feature_service", "feature_service_version", "feature_views",
    "feast_registry_hash", "dataset_version", "train_start", "train_end", "labels_as_of",
    "training_rows", "training_set_digest", "project_spec_hash", "code_version", "model_family",
)  # fmt: skip


class CannotCompare(ValueError):
    """Two versions that cannot be put side by side; the message says why."""


def rebuild_holdout(
    client: MlflowClient, store: FeatureStore, settings: Settings, spec: ProjectSpec, version: VersionInfo
) -> tuple[pd.DataFrame, str]:
    """`version`'s holdout rows, labelled, with the features of its service; and their window."""
    from featureloop.params import TrainParams
    from featureloop.training.dataset import TIME_COLUMN
    from featureloop.training.training_set import fetch_features, training_spine

    run = client.get_run(version.run_id).data.params
    tags = version.tags
    as_of = tags.get("labels_as_of", "all landed")
    params = TrainParams(
        feature_service=tags["feature_service"],
        train_start=datetime.fromisoformat(tags["train_start"]),
        train_end=datetime.fromisoformat(tags["train_end"]),
        labels_as_of=None if as_of == "all landed" else datetime.fromisoformat(as_of),
        model_family=run.get("model_family", "hist_gradient_boosting"),
        validation_fraction=float(run.get("validation_fraction", 0.15)),
        holdout_fraction=float(run.get("holdout_fraction", 0.15)),
    )
    split = training_spine(settings.offline_dir, params, spec)
    holdout = fetch_features(store, split.holdout, params.feature_service, spec.spine.id)
    times = split.holdout[TIME_COLUMN]
    window = f"{times.min():%Y-%m-%d %H:%M}..{times.max():%Y-%m-%d %H:%M} UTC" if len(times) else "empty"
    return holdout, window


def _decisions(version: VersionInfo, aliases: list[str]) -> dict[str, Any]:
    tags = version.tags
    return {
        "aliases": aliases,
        "gate": {
            "promoted": tags.get("gate.promoted"),
            "reason": tags.get("gate.reason"),
            "champion_version": tags.get("gate.champion_version"),
        },
        "release": {"stage": tags.get("release.stage"), "reason": tags.get("release.reason")},
        "holdout_recorded": {
            k.removeprefix("holdout."): float(v) for k, v in tags.items() if k.startswith("holdout.")
        },
    }


def compare_versions(settings: Settings, a: str, b: str, holdout_of: str | None = None) -> dict[str, Any]:
    """Versions `a` and `b` on one holdout (`holdout_of`: a or b; default the newer), for people and CI."""
    from mlflow.exceptions import MlflowException

    from featureloop.featurestore.store import open_store
    from featureloop.project.spec import load_spec
    from featureloop.release.judge import delong_paired
    from featureloop.training.dataset import LABEL_COLUMN
    from featureloop.training.promotion import predict_version
    from featureloop.training.registry import get_version, open_tracking
    from featureloop.training.tasks import task_kind

    client, _ = open_tracking(settings)
    name = settings.model_name
    try:
        va, vb = get_version(client, name, a), get_version(client, name, b)
    except MlflowException as exc:
        raise CannotCompare(
            f"model {name!r} has no version {exc.message.split('version')[-1].strip() or '?'}: {exc.message}"
        ) from exc
    for v in (va, vb):
        missing = [
            k for k in ("feature_service", "model_inputs", "train_start", "train_end") if k not in v.tags
        ]
        if missing:
            raise CannotCompare(
                f"version {v.version} lacks the tags a finished train writes ({', '.join(missing)}): a train "
                "stopped between registering and tagging it; compare finished versions"
            )
    if va.tags.get("task", "binary") != vb.tags.get("task", "binary"):
        raise CannotCompare(
            f"version {a} predicts a {va.tags.get('task', 'binary')} task and version {b} a "
            f"{vb.tags.get('task', 'binary')} one: their metrics cannot be compared"
        )
    newer = vb if int(vb.version) >= int(va.version) else va
    ref = {a: va, b: vb}.get(holdout_of or newer.version)
    if ref is None:
        raise CannotCompare(f"--holdout-of {holdout_of} is neither version {a} nor {b}")
    spec = load_spec(settings.feature_repo)
    store = open_store(settings)
    holdout, window = rebuild_holdout(client, store, settings, spec, ref)
    service, kind = ref.tags["feature_service"], task_kind(ref.tags.get("task"))
    y = holdout[LABEL_COLUMN].to_numpy(dtype=float)
    predicted = {v.version: predict_version(store, v, holdout, service, spec.spine.id) for v in (va, vb)}
    metrics = {version: kind.evaluate(y, p) for version, p in predicted.items()}
    aliases = {v.version: list(client.get_model_version(name, v.version).aliases) for v in (va, vb)}
    difference: dict[str, Any] = {"metric": kind.headline}
    if kind.name == "binary":
        (auc_a, auc_b), se = delong_paired(y, predicted[va.version], predicted[vb.version])
        difference |= {"b_minus_a": auc_b - auc_a, "standard_error": se, "test": "DeLong, paired"}
    else:
        diff = np.abs(y - predicted[vb.version]) - np.abs(y - predicted[va.version])
        se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
        difference |= {
            "b_minus_a": float(diff.mean()),
            "standard_error": se,
            "test": "paired absolute errors",
        }
    lineage = [
        {"key": k, "a": va.tags.get(k), "b": vb.tags.get(k)}
        for k in LINEAGE
        if va.tags.get(k) != vb.tags.get(k)
    ]
    return {
        "model": name, "a": va.version, "b": vb.version, "task": kind.name,
        "holdout": {"of": ref.version, "rows": len(holdout), "window": window, "feature_service": service},
        "metrics": metrics, "metric_names": list(kind.metric_names), "difference": difference,
        "lineage_differs": lineage, "lineage_same": [k for k in LINEAGE if va.tags.get(k) == vb.tags.get(k)],
        "decisions": {v.version: _decisions(v, aliases[v.version]) for v in (va, vb)},
    }  # fmt: skip
