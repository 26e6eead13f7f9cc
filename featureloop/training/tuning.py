"""Tuning as an experiment: a search over a model family's hyperparameters on one training set, each
trial a child MLflow run of one parent run (the MLflow UI shows them side by side, as MLflow's
hyperparameter-tuning guide does), the best by the validation metric registered and sent through the
gate, exactly as `train` does (the same lineage, the same gate, a release when asked).

`run_tuning_steps` is written once; the trials are fitted by the runner's `fit_all`: the `tune`
flow maps them as parallel Prefect tasks, the CLI fits them one after another.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from featureloop.params import TrainParams
from featureloop.settings import Settings
from featureloop.steps import Steps

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from featureloop.training.fit import Candidate
    from featureloop.training.training_set import TrainingSet

Grid = dict[str, list[float | int | str]]
# A small default search per family, around the defaults `featureloop/training/model.py` chose.
DEFAULT_GRIDS: dict[str, Grid] = {
    "hist_gradient_boosting": {
        "learning_rate": [0.05, 0.1],
        "max_leaf_nodes": [15, 31],
        "min_samples_leaf": [20, 80],
    },
    "logistic_regression": {"C": [0.01, 0.1, 1.0, 10.0]},
}


class TuneParams(BaseModel):
    """The window and everything else of training (`train`), and the search."""

    train: TrainParams = Field(default_factory=lambda: TrainParams(), description="The window, family, gate.")
    grid: Grid = Field(
        default_factory=dict,
        description="Values to try per hyperparameter, every combination a trial; default: the family's.",
    )
    max_trials: int = Field(
        8, ge=1, le=64, description="At most this many trials (evenly spread over the grid)."
    )


def trials(params: TuneParams, family: str) -> list[dict[str, Any]]:
    """The trials' hyperparameters: every combination of the grid over the base (`train`'s), at most
    `max_trials` of them, evenly spread (the same ones every time)."""
    grid = params.grid or DEFAULT_GRIDS[family]
    names = sorted(grid)
    combos = [
        dict(zip(names, values, strict=True)) for values in itertools.product(*(grid[n] for n in names))
    ]
    if len(combos) > params.max_trials:
        step = len(combos) / params.max_trials
        combos = [combos[int(i * step)] for i in range(params.max_trials)]
    return [{**params.train.hyperparameters, **combo} for combo in combos]


@dataclass(frozen=True)
class TuningContext:
    """What every trial shares: the training set (fetched once), the resolved parameters, MLflow."""

    client: MlflowClient
    experiment_id: str
    parent_run_id: str
    params: TrainParams
    training_set: TrainingSet


@dataclass(frozen=True)
class Trial:
    """One trial: its hyperparameters, child run, metrics and fitted candidate (None when it failed)."""

    index: int
    hyperparameters: dict[str, Any]
    run_id: str
    metrics: dict[str, dict[str, float]]
    candidate: Candidate | None
    seconds: float
    error: str | None = None


def fit_trial(context: TuningContext, hyperparameters: dict[str, Any], index: int) -> Trial:
    """Fit one trial on the shared training set and log it as a child run of the parent (with the
    training set's lineage); a trial that fails is recorded FAILED and never chosen."""
    from mlflow.entities import Metric, Param, RunTag

    from featureloop.training.fit import fit_candidate

    client, started = context.client, time.perf_counter()
    lineage = {f"lineage.{k}": v for k, v in context.training_set.lineage.items()}
    run = client.create_run(
        context.experiment_id,
        tags={
            "mlflow.parentRunId": context.parent_run_id,
            "mlflow.runName": f"trial {index}",
            "featureloop.trial": str(index),
            **lineage,
        },
    )
    run_id = run.info.run_id
    params = context.params.model_copy(update={"hyperparameters": hyperparameters})
    logged = {"model_family": params.model_family, **{f"hp.{k}": v for k, v in hyperparameters.items()}}
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in logged.items()])
    try:
        candidate = fit_candidate(context.training_set, params)
    except Exception as exc:  # one trial's failure (a value the family refuses) is that trial's
        client.set_tag(run_id, "featureloop.error", f"{type(exc).__name__}: {exc}"[:500])
        client.set_terminated(run_id, "FAILED")
        return Trial(
            index,
            hyperparameters,
            run_id,
            {},
            None,
            time.perf_counter() - started,
            f"{type(exc).__name__}: {exc}",
        )
    now = int(time.time() * 1000)
    metrics = [
        Metric(f"{part}.{name}", value, now, 0)
        for part, values in candidate.metrics.items()
        for name, value in values.items()
    ]
    client.log_batch(
        run_id, metrics=metrics, tags=[RunTag("featureloop.seconds", f"{time.perf_counter() - started:.2f}")]
    )
    client.set_terminated(run_id, "FINISHED")
    return Trial(index, hyperparameters, run_id, candidate.metrics, candidate, time.perf_counter() - started)


def best_of(results: list[Trial], task: str) -> Trial:
    """The trial with the best validation metric (the task's headline); the earliest on a tie."""
    from featureloop.training.tasks import task_kind

    kind = task_kind(task)
    fitted = [t for t in results if t.candidate is not None]
    if not fitted:
        errors = "; ".join(f"trial {t.index}: {t.error}" for t in results)
        raise RuntimeError(f"every trial failed, nothing was registered: {errors}")
    sign = 1 if kind.higher_is_better else -1
    return max(fitted, key=lambda t: (sign * t.metrics["validation"][kind.headline], -t.index))


FitAll = Callable[[TuningContext, list[dict[str, Any]]], list[Trial]]


def fit_one_by_one(report: Callable[[str], None]) -> FitAll:
    """The CLI's runner of the trials: one after another (each fit already uses every core)."""

    def fit_all(context: TuningContext, grid: list[dict[str, Any]]) -> list[Trial]:
        done = []
        for i, hp in enumerate(grid):
            trial = fit_trial(context, hp, i)
            figure = trial.error or ", ".join(f"{k} {v:.4f}" for k, v in trial.metrics["validation"].items())
            report(f"trial {i + 1}/{len(grid)} {hp}: validation {figure} ({trial.seconds:.1f} s)")
            done.append(trial)
        return done

    return fit_all


def run_tuning_steps(steps: Steps, settings: Settings, params: TuneParams, fit_all: FitAll) -> dict[str, Any]:
    """The search, then the best trial registered and gated as `train` does; a summary for people."""
    from featureloop.featurestore.store import open_store
    from featureloop.project.spec import load_spec
    from featureloop.training.pipeline import register_and_gate
    from featureloop.training.registry import open_tracking
    from featureloop.training.training_set import load_training_set, resolve_params, training_spine

    spec = steps("load_project_spec", load_spec, settings.feature_repo)
    train = steps("resolve_parameters", resolve_params, params.train, spec, settings.offline_dir)
    spine = steps("check_training_window", training_spine, settings.offline_dir, train, spec)
    client, experiment_id = steps("connect_tracking", open_tracking, settings)
    store = steps("open_feature_store", open_store, settings)
    training_set = steps(
        "build_training_set", load_training_set, store, settings.offline_dir, train, spine, spec
    )
    grid = trials(params, train.model_family)
    parent = client.create_run(
        experiment_id,
        tags={
            "mlflow.runName": f"tune {train.model_family} {train.start.date()}..{train.end.date()}",
            **{f"lineage.{k}": v for k, v in training_set.lineage.items()},
        },
    ).info.run_id
    steps.info(
        f"tuning {train.model_family}: {len(grid)} trials on {len(training_set.frame):,} rows (parent run {parent})"
    )
    results = fit_all(TuningContext(client, experiment_id, parent, train, training_set), grid)
    best = best_of(results, spec.task.type)
    assert best.candidate is not None
    chosen = train.model_copy(update={"hyperparameters": best.hyperparameters})
    steps.info(f"best: trial {best.index} {best.hyperparameters}")
    summary = register_and_gate(
        steps, settings, client, experiment_id, store, chosen, training_set, best.candidate, parent
    )
    client.set_tag(parent, "featureloop.best_trial_run", best.run_id)
    client.set_tag(parent, "featureloop.registered_version", summary["version"])
    client.set_terminated(parent, "FINISHED")
    summary["parent_run_id"] = parent
    summary["trials"] = [
        {
            "index": t.index,
            "hyperparameters": t.hyperparameters,
            "run_id": t.run_id,
            "validation": t.metrics.get("validation"),
            "seconds": round(t.seconds, 2),
            "error": t.error,
        }
        for t in results
    ]
    summary["best_trial"] = best.index
    return summary
