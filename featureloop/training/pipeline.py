"""The training pipeline, written once, and the rollback.

`run_training_steps` is training's step sequence: the window's rows checked, the tracking store
reached, half-made versions named, the training set from Feast, the fit, the registration in MLflow,
the gate and the promotion. It runs each step through a `Steps` runner (featureloop.steps): the CLI
runs it through `run_training` (a plain call per step, progress lines to `report`), the Prefect
`train` flow through `flows.steps.PrefectSteps` (each step a task); both run the same steps in the
same order. `run_rollback` moves the champion alias back, for the CLI and the `rollback` flow alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from featureloop.params import RollbackParams, TrainParams
from featureloop.project.spec import load_spec
from featureloop.settings import Settings
from featureloop.steps import PlainSteps, Steps
from featureloop.training.fit import Candidate, fit_candidate
from featureloop.training.gate import Decision
from featureloop.training.promotion import gate_and_promote
from featureloop.training.registration import register_candidate
from featureloop.training.tasks import task_kind
from featureloop.training.training_set import (
    load_training_set,
    resolve_params,
    service_features,
    training_spine,
)

if TYPE_CHECKING:
    from feast import FeatureStore
    from mlflow import MlflowClient

    from featureloop.training.registry import VersionInfo
    from featureloop.training.training_set import TrainingSet


def run_training_steps(
    steps: Steps, settings: Settings, params: TrainParams, check_only: bool = False
) -> dict[str, Any]:
    """Every training step in order, each through `steps`; returns a summary for people.

    The window's rows are checked first, against what every step needs; `check_only` stops after
    that and the feature service's check (nothing is fetched, fitted or registered)."""
    from featureloop.featurestore.store import open_store
    from featureloop.training.registry import find_half_made, open_tracking

    spec = steps("load_project_spec", load_spec, settings.feature_repo)
    params = steps("resolve_parameters", resolve_params, params, spec, settings.offline_dir)
    spine = steps("check_training_window", training_spine, settings.offline_dir, params, spec)
    rows = {name: len(getattr(spine, name)) for name in ("train", "validation", "holdout")}
    steps.info(
        f"window {params.start.date()} .. {params.end.date()}: {sum(rows.values()):,} labelled "
        f"rows (train {rows['train']:,} / validation {rows['validation']:,} / holdout {rows['holdout']:,})"
    )
    if check_only:
        store = steps("open_feature_store", open_store, settings)
        steps("check_feature_service", service_features, store, params.feature_service)
        return {"checked": True, "rows": rows, "feature_service": params.feature_service}
    client, experiment_id = steps("connect_tracking", open_tracking, settings)
    # Versions a stopped train left without tags: named, never deleted.
    half_made = steps("half_made_versions", find_half_made, client, settings.model_name)
    for found in half_made:
        steps.warning(f"warning: {found.describe()}")
    store = steps("open_feature_store", open_store, settings)
    steps.info(f"training set: {params.feature_service} {params.start.date()} .. {params.end.date()}")
    training_set = steps(
        "build_training_set", load_training_set, store, settings.offline_dir, params, spine, spec
    )
    steps.info(
        f"training set: {len(training_set.frame):,} rows, digest {training_set.lineage['training_set_digest']}"
    )
    candidate = steps("fit", fit_candidate, training_set, params)
    if candidate.left_out:
        steps.info(f"left out (no value in the training slice): {', '.join(candidate.left_out)}")
    steps.info(
        f"fitted {params.model_family}: holdout {task_kind(candidate.task).describe(candidate.metrics['holdout'])}"
    )
    summary = register_and_gate(
        steps, settings, client, experiment_id, store, params, training_set, candidate
    )
    summary["half_made"] = [found.describe() for found in half_made]
    return summary


def register_and_gate(
    steps: Steps,
    settings: Settings,
    client: MlflowClient,
    experiment_id: str,
    store: FeatureStore,
    params: TrainParams,
    training_set: TrainingSet,
    candidate: Candidate,
    parent_run_id: str | None = None,
) -> dict[str, Any]:
    """Register the candidate (a child of `parent_run_id` when given), then the gate (promotion or a
    release) unless `params.promote` is off; the summary `train` and `tune` print."""
    version = steps(
        "register", register_candidate, client, experiment_id, settings.model_name, params, training_set,
        candidate, settings.offline_dir, parent_run_id,
    )  # fmt: skip
    steps.info(f"registered {version.name} version {version.version}")
    share = training_set.spec.monitoring.release.canary.share
    decision, champion_metrics = (
        steps("gate", gate_and_promote, client, store, version, candidate, params, share)
        if params.promote
        else (None, None)
    )
    if decision is not None:
        steps.info(decision.reason)
    return summarize(version, candidate, decision, champion_metrics)


def run_training(
    settings: Settings, params: TrainParams, report: Any = print, check_only: bool = False
) -> dict[str, Any]:
    """Every training step in order as plain calls (the CLI's path), progress lines to `report`;
    returns a summary for people. `check_only`: see `run_training_steps`."""
    return run_training_steps(PlainSteps(report), settings, params, check_only=check_only)


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
        "task": candidate.task,
        "run_id": version.run_id,
        "rows": {name: len(getattr(candidate.split, name)) for name in ("train", "validation", "holdout")},
        "holdout": candidate.metrics["holdout"],
        "baseline_holdout": candidate.metrics["baseline_holdout"],
        "champion_holdout": champion_metrics,
        "promoted": bool(decision and decision.promote and not decision.released),
        "released": bool(decision and decision.released),
        "reason": decision.reason if decision else "gate not run (promote=false)",
        "left_out": list(candidate.left_out),
        "lineage": {
            k: version.tags[k] for k in ("feature_service", "dataset_version", "training_set_digest")
        },
    }


def run_rollback(settings: Settings, params: RollbackParams) -> dict[str, str | None]:
    """Point the champion alias back at the `previous` version (the CLI's `rollback` and the
    `rollback` flow); returns the champion's version now and the one it replaced."""
    from featureloop.training.registry import open_tracking, rollback

    client, _ = open_tracking(settings)
    restored, demoted = rollback(client, params.model_name or settings.model_name)
    return {"champion": restored.version, "demoted": demoted.version if demoted else None}
