"""Prefect flows `train` and `rollback`: the core's training pipeline and rollback, run by Prefect.

The steps are the core's (featureloop.training.pipeline); here only what a flow adds: the parameters
form (`TrainParams`, `RollbackParams`), each step a task with its retries, and the run's markdown
summary as an artifact.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from featureloop.params import RollbackParams, TrainParams
from featureloop.settings import Settings
from featureloop.steps import StepOptions
from featureloop.training.pipeline import run_rollback, run_training_steps
from featureloop.training.tasks import task_kind
from flows.steps import PrefectSteps

# Steps that can pass on a second try (the tracking store or the feature store away a moment).
# Every other step runs once: the window's check gives the same answer on a second try, and a retried
# `register` or `gate` could register or promote twice.
RETRIED = StepOptions(retries=2, retry_delay_seconds=(2, 10))
TRAIN_STEP_OPTIONS = {
    name: RETRIED
    for name in ("connect_tracking", "half_made_versions", "open_feature_store", "build_training_set")
}


def _markdown(summary: dict[str, Any]) -> str:
    kind = task_kind(summary.get("task"))
    rows = "\n".join(
        f"| {name} | {summary['holdout'][name]:.4f} | {summary['baseline_holdout'][name]:.4f} | "
        + (f"{summary['champion_holdout'][name]:.4f}" if summary["champion_holdout"] else "-")
        + " |"
        for name in kind.metric_names
    )
    return (
        f"# {summary['model']} version {summary['version']}\n\n**{summary['reason']}**\n\n"
        f"| holdout metric | challenger | baseline ({kind.baseline}) | champion |\n|---|---|---|---|\n{rows}\n\n"
        f"Lineage: `{summary['lineage']}`\n"
    )


@flow(name="train")
def train(params: TrainParams | None = None) -> dict[str, Any]:
    """Train on a window through the feature service, register in MLflow, gate, promote."""
    params = params or TrainParams()
    summary = run_training_steps(PrefectSteps(TRAIN_STEP_OPTIONS), Settings(), params)
    get_run_logger().info("%s version %s: %s", summary["model"], summary["version"], summary["reason"])
    create_markdown_artifact(
        _markdown(summary), key="train-summary", description="Training and gate decision"
    )
    return summary


@flow(name="rollback")
def rollback(params: RollbackParams | None = None) -> dict[str, Any]:
    """Point the champion alias back at the previous version."""
    result = run_rollback(Settings(), params or RollbackParams())
    get_run_logger().info("champion is version %s again (was %s)", result["champion"], result["demoted"])
    return result


if __name__ == "__main__":
    # `python -m flows.train`: one run with the default parameters (the UI form's defaults).
    print(train())
