"""Prefect flow `tune`: a hyperparameter search as an experiment (featureloop.training.tuning).

The training set is fetched once; each trial is a task of its own, mapped over the grid and run in
parallel by the flow's task runner, and a child MLflow run of the search's parent run; the best by
the validation metric is registered and goes through the gate as `train`'s version does. The run's
markdown artifact lists the trials.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from featureloop.settings import Settings
from featureloop.training.tuning import Trial, TuneParams, TuningContext, fit_trial, run_tuning_steps
from flows.steps import PrefectSteps
from flows.train import TRAIN_STEP_OPTIONS


@task(name="fit_trial", cache_policy=NO_CACHE)
def fit_trial_task(context: TuningContext, hyperparameters: dict[str, Any], index: int) -> Trial:
    """One trial, a child run of the search's."""
    return fit_trial(context, hyperparameters, index)


def fit_mapped(context: TuningContext, grid: list[dict[str, Any]]) -> list[Trial]:
    """Every trial as a mapped task (the task runner runs them side by side); their results in order."""
    futures = fit_trial_task.map(unmapped(context), grid, list(range(len(grid))))
    return [future.result() for future in futures]


def _markdown(summary: dict[str, Any]) -> str:
    rows = "\n".join(
        f"| {t['index']} | `{t['hyperparameters']}` | "
        + (", ".join(f"{k} {v:.4f}" for k, v in (t["validation"] or {}).items()) or f"failed: {t['error']}")
        + f" | {'**best**' if t['index'] == summary['best_trial'] else ''} |"
        for t in summary["trials"]
    )
    return (
        f"# tuning: {summary['model']} version {summary['version']}\n\n**{summary['reason']}**\n\n"
        f"| trial | hyperparameters | validation | |\n|---|---|---|---|\n{rows}\n\n"
        f"Parent run `{summary['parent_run_id']}`; lineage `{summary['lineage']}`\n"
    )


@flow(name="tune")
def tune(params: TuneParams | None = None) -> dict[str, Any]:
    """Search hyperparameters (one child run per trial), register the best, gate it."""
    params = params or TuneParams()
    summary = run_tuning_steps(PrefectSteps(TRAIN_STEP_OPTIONS), Settings(), params, fit_mapped)
    get_run_logger().info(
        "%s version %s (trial %s of %s): %s",
        summary["model"], summary["version"], summary["best_trial"], len(summary["trials"]), summary["reason"],
    )  # fmt: skip
    create_markdown_artifact(_markdown(summary), key="tune-summary", description="Tuning trials and the gate")
    return summary


if __name__ == "__main__":
    print(tune())
