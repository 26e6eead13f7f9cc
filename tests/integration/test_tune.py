"""Tuning as an experiment, end to end on a real Prefect server and MLflow: the `tune` flow fits each
trial as a mapped task and a child run of one parent run, registers only the best by the validation
metric, through the gate, with the lineage `train` records; the CLI runs the same search."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from featureloop.settings import Settings
from featureloop.training.registry import open_tracking
from tests.integration.conftest import featureloop_ok

pytestmark = pytest.mark.integration

WINDOW = {"train_start": datetime(2013, 1, 1, tzinfo=UTC), "train_end": datetime(2013, 1, 22, tzinfo=UTC)}
# Four trials: a stump-like model that cannot win, and three that can.
GRID = {"max_iter": [1, 60], "max_leaf_nodes": [2, 15]}


@pytest.fixture()
def settings(fresh_registry: Settings) -> Settings:
    return fresh_registry


def test_tune_maps_trials_as_child_runs_and_registers_only_the_best_through_the_gate(
    prefect_server: None, settings: Settings
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from featureloop.params import TrainParams
    from featureloop.training.tuning import TuneParams
    from flows.tune import tune

    state = tune(TuneParams(train=TrainParams(**WINDOW), grid=GRID), return_state=True)
    assert state.is_completed(), state
    summary = state.result()
    client, experiment_id = open_tracking(settings)

    # One parent run, a child run per trial, each with its hyperparameters and validation metrics.
    parent = client.get_run(summary["parent_run_id"])
    children = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    trials = [r for r in children if "featureloop.trial" in r.data.tags]
    assert len(trials) == 4 and all(r.info.status == "FINISHED" for r in trials)
    assert {(r.data.params["hp.max_iter"], r.data.params["hp.max_leaf_nodes"]) for r in trials} == {
        ("1", "2"), ("1", "15"), ("60", "2"), ("60", "15")}  # fmt: skip
    best = max(trials, key=lambda r: r.data.metrics["validation.roc_auc"])
    assert parent.data.tags["featureloop.best_trial_run"] == best.info.run_id
    assert summary["trials"][summary["best_trial"]]["run_id"] == best.info.run_id

    # Only the best is registered (its own run, a child of the parent too), through the gate.
    versions = client.search_model_versions(f"name = '{settings.model_name}'")
    assert (
        [str(v.version) for v in versions]
        == [summary["version"]]
        == [parent.data.tags["featureloop.registered_version"]]
    )
    version = versions[0]
    registered = client.get_run(version.run_id)
    assert registered.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert {k: registered.data.params[f"hp.{k}"] for k in GRID} == {
        k: best.data.params[f"hp.{k}"] for k in GRID}  # fmt: skip
    assert version.tags["gate.promoted"] == "true" and summary["promoted"]
    assert "champion" in client.get_model_version(settings.model_name, version.version).aliases
    # The lineage of every trial is the registered version's (the same training set, service, spec).
    for key in (
        "dataset_version",
        "feature_service",
        "project_spec_hash",
        "training_set_digest",
        "train_start",
    ):
        assert {r.data.tags[f"lineage.{key}"] for r in trials} == {version.tags[key]}, key

    # The trials ran as mapped tasks of the flow run.
    with get_client(sync_client=True) as prefect:
        tasks = prefect.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    assert sorted(t.name.split("-")[0] for t in tasks if t.name.startswith("fit_trial")) == ["fit_trial"] * 4


def test_the_cli_tunes_the_same_way_and_a_bad_grid_is_named(settings: Settings) -> None:
    from typer.testing import CliRunner

    from featureloop.cli import app

    result = featureloop_ok(
        "tune", "--start", "2013-01-01", "--end", "2013-01-22", "--grid", "max_iter=1,40", "--max-trials", "2"
    )
    assert "trial 1/2 {'max_iter': 1}" in result.output and "trial 2/2 {'max_iter': 40}" in result.output
    assert "best trial 1 {'max_iter': 40}" in result.output and "tune done in" in result.output
    refused = CliRunner().invoke(app, ["tune", "--grid", "max_iter"])
    assert refused.exit_code == 2 and "is not NAME=V1,V2" in refused.output
