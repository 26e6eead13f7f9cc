"""Prefect flows `train` and `rollback`: thin wrappers whose tasks call the core's training steps."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from featureloop.params import RollbackParams, TrainParams
from featureloop.settings import Settings
from featureloop.training.dataset import Split
from featureloop.training.gate import Decision
from featureloop.training.pipeline import (
    Candidate,
    TrainingSet,
    fit_candidate,
    gate_and_promote,
    load_training_set,
    register_candidate,
    summarize,
    training_spine,
)
from featureloop.training.registry import VersionInfo
from flows.opaque import opaque


@task(cache_policy=NO_CACHE)
def check_training_window(settings: Settings, params: TrainParams) -> Split:
    """The window's labelled flights, checked against what every step needs (no retries: the same
    window gives the same answer)."""
    return training_spine(settings.offline_dir, params)


@task(retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def connect_tracking(settings: Settings) -> tuple[Any, str]:
    """Reach the MLflow tracking store before any work (fails fast, names the URI)."""
    from featureloop.training.registry import connect

    return connect(settings.tracking_uri, settings.artifact_location, settings.experiment)


@task(retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def half_made_versions(client: Any, settings: Settings) -> list[str]:
    """Name (in the run's log) the versions a stopped train left without tags; they are not deleted."""
    from featureloop.training.registry import find_half_made

    found = [version.describe() for version in find_half_made(client, settings.model_name)]
    for line in found:
        get_run_logger().warning(line)
    return found


@task(retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def build_training_set(settings: Settings, params: TrainParams, spine: Split) -> TrainingSet:
    """Point-in-time training set through the feature service."""
    from featureloop.featurestore.store import open_store

    return load_training_set(open_store(settings), settings.offline_dir, params, spine)


@task(cache_policy=NO_CACHE)
def fit(training_set: TrainingSet, params: TrainParams) -> Candidate:
    """Fit and evaluate the challenger."""
    return fit_candidate(training_set, params)


@task(cache_policy=NO_CACHE)
def register(
    client: Any, experiment_id: str, settings: Settings, params: TrainParams, ts: TrainingSet, cand: Candidate
) -> VersionInfo:
    """Log the run and register a model version (no retries: a retry could register twice)."""
    return register_candidate(
        client, experiment_id, settings.model_name, params, ts, cand, settings.offline_dir
    )


@task(cache_policy=NO_CACHE)
def gate(
    client: Any, settings: Settings, version: VersionInfo, cand: Candidate, params: TrainParams
) -> tuple[Decision, dict[str, float] | None]:
    """Validation gate against the champion; promote when it passes."""
    from featureloop.featurestore.store import open_store

    return gate_and_promote(client, open_store(settings), version, cand, params)


def _markdown(summary: dict[str, Any]) -> str:
    rows = "\n".join(
        f"| {name} | {summary['holdout'][name]:.4f} | {summary['baseline_holdout'][name]:.4f} | "
        + (f"{summary['champion_holdout'][name]:.4f}" if summary["champion_holdout"] else "-")
        + " |"
        for name in ("roc_auc", "pr_auc", "log_loss", "brier", "ece")
    )
    return (
        f"# {summary['model']} version {summary['version']}\n\n**{summary['reason']}**\n\n"
        f"| holdout metric | challenger | prior-rate baseline | champion |\n|---|---|---|---|\n{rows}\n\n"
        f"Lineage: `{summary['lineage']}`\n"
    )


@flow(name="train")
def train(params: TrainParams | None = None) -> dict[str, Any]:
    """Train on a window through the feature service, register in MLflow, gate, promote."""
    params = params or TrainParams()
    logger = get_run_logger()
    settings = Settings()
    spine = check_training_window(settings, params)
    client, experiment_id = connect_tracking(settings)
    half_made = half_made_versions(client, settings)
    training_set = build_training_set(settings, params, opaque(spine))
    logger.info(
        "training set: %s rows, digest %s",
        len(training_set.frame),
        training_set.lineage["training_set_digest"],
    )
    candidate = fit(training_set, params)
    if candidate.left_out:
        logger.info("left out (no value in the training slice): %s", ", ".join(candidate.left_out))
    # opaque(): the candidate carries its reference profile; Prefect would walk every value of it.
    version = register(client, experiment_id, settings, params, training_set, opaque(candidate))
    decision, champion_metrics = (
        gate(client, settings, version, opaque(candidate), params) if params.promote else (None, None)
    )
    summary = {**summarize(version, candidate, decision, champion_metrics), "half_made": half_made}
    logger.info("%s version %s: %s", summary["model"], summary["version"], summary["reason"])
    create_markdown_artifact(
        _markdown(summary), key="train-summary", description="Training and gate decision"
    )
    return summary


@flow(name="rollback")
def rollback(params: RollbackParams | None = None) -> dict[str, Any]:
    """Point the champion alias back at the previous version."""
    from featureloop.training.registry import connect
    from featureloop.training.registry import rollback as rollback_alias

    params = params or RollbackParams()
    settings = Settings()
    client, _ = connect(settings.tracking_uri, settings.artifact_location, settings.experiment)
    restored, demoted = rollback_alias(client, params.model_name or settings.model_name)
    get_run_logger().info(
        "champion is version %s again (was %s)", restored.version, demoted.version if demoted else None
    )
    return {"champion": restored.version, "demoted": demoted.version if demoted else None}


if __name__ == "__main__":
    # `python -m flows.train`: one run with the default parameters (the UI form's defaults).
    print(train())
