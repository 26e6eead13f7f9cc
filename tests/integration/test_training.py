"""Training through Feast into a real MLflow registry, with the gate and rollback, run as Prefect flows."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from featureloop.featurestore.store import open_store
from featureloop.params import TrainParams
from featureloop.project.spec import load_spec, spec_hash
from featureloop.settings import Settings
from featureloop.training.dataset import TrainingDataError, frame_digest
from featureloop.training.gate import GateConfig
from featureloop.training.pipeline import run_training
from featureloop.training.registry import CHAMPION, PREVIOUS, TrackingUnavailable, get_alias, open_tracking
from featureloop.training.training_set import load_training_set
from tests.integration.conftest import FeastEnv

pytestmark = pytest.mark.integration

WINDOW = {
    "train_start": datetime(2013, 1, 1, tzinfo=UTC),
    "train_end": datetime(2013, 1, 30, tzinfo=UTC),
}
WEAK = {"max_iter": 1, "max_depth": 1}  # a single stump: better than the prior, worse than a real model


@pytest.fixture()
def settings(fresh_registry: Settings) -> Settings:
    return fresh_registry


def _versions(settings: Settings) -> list[str]:
    client, _ = open_tracking(settings)
    return sorted(v.version for v in client.search_model_versions(f"name='{settings.model_name}'"))


def _alias(settings: Settings, alias: str) -> str | None:
    client, _ = open_tracking(settings)
    found = get_alias(client, settings.model_name, alias)
    return found.version if found else None


def test_gate_promotes_better_refuses_worse_and_rollback_restores_previous(
    settings: Settings, prefect_server: None
) -> None:
    from flows.train import rollback, train

    first = train(TrainParams(**WINDOW, hyperparameters=WEAK))
    assert first["promoted"] and _alias(settings, CHAMPION) == first["version"]

    shuffled = train(TrainParams(**WINDOW, shuffle_labels=True))
    assert not shuffled["promoted"]
    assert "auc_gain" in shuffled["reason"]
    assert _alias(settings, CHAMPION) == first["version"]  # a worse challenger never moves the alias

    # The holdout has 565 flights: their 10-bin calibration error moves by a few hundredths between
    # equally good models, so this run tolerates 0.05 (the guardrail itself: tests/unit/test_gate.py).
    better = train(TrainParams(**WINDOW, gate=GateConfig(max_ece_increase=0.05)))
    assert better["promoted"], better["reason"]
    assert better["holdout"]["roc_auc"] > better["champion_holdout"]["roc_auc"]
    assert (_alias(settings, CHAMPION), _alias(settings, PREVIOUS)) == (better["version"], first["version"])

    client, _ = open_tracking(settings)
    refused = client.get_model_version(settings.model_name, shuffled["version"]).tags
    assert refused["gate.promoted"] == "false" and refused["gate.champion_version"] == first["version"]
    assert refused["gate.window_overlaps_champion_training"] == "true"  # same window as the champion's
    checks = json.loads(refused["gate.checks"])
    assert {c["check"] for c in checks} == {"auc_gain", "log_loss_guardrail", "calibration_guardrail"}

    restored = rollback()
    assert restored == {"champion": first["version"], "demoted": better["version"]}
    assert (_alias(settings, CHAMPION), _alias(settings, PREVIOUS)) == (first["version"], None)
    assert client.get_model_version(settings.model_name, better["version"]).tags["rolled_back"] == "true"


def test_lineage_rebuilds_the_same_training_set(settings: Settings) -> None:
    summary = run_training(settings, TrainParams(**WINDOW, promote=False), report=lambda _m: None)
    client, _ = open_tracking(settings)
    tags = client.get_model_version(settings.model_name, summary["version"]).tags
    for key in ("feature_service", "feature_service_version", "feature_views", "feast_registry_hash",
                "dataset_version", "code_version", "reference_profile", "model_inputs"):  # fmt: skip
        assert tags[key], key
    rebuilt = load_training_set(
        open_store(settings),
        settings.offline_dir,
        TrainParams(
            feature_service=tags["feature_service"],
            train_start=datetime.fromisoformat(tags["train_start"]),
            train_end=datetime.fromisoformat(tags["train_end"]),
        ),
    )
    assert (
        tags["label"] == "arr_delay > 15" and tags["task"] == "binary" and tags["project"] == "flight_delay"
    )
    assert tags["project_spec_hash"] == spec_hash(load_spec(settings.feature_repo))
    assert frame_digest(rebuilt.frame, "flight_id") == tags["training_set_digest"]
    run = client.get_run(summary["run_id"])
    assert run.inputs.dataset_inputs[0].dataset.digest == tags["training_set_digest"]
    profile = client.download_artifacts(summary["run_id"], "reference_profile.json")
    features = json.loads(Path(profile).read_text())["features"]
    assert "visib" in features and sum(features["visib"]["counts"]) > 0
    assert _alias(settings, CHAMPION) is None  # promote=False moves nothing


def test_no_training_row_uses_a_feature_observed_after_its_prediction_time(
    settings: Settings, feast_env: FeastEnv
) -> None:
    training = load_training_set(open_store(settings), settings.offline_dir, TrainParams(**WINDOW)).frame
    weather = feast_env.table("weather").sort_values("event_timestamp")
    rows = training[["flight_id", "origin", "event_timestamp", "temp"]].sort_values("event_timestamp")
    backward = pd.merge_asof(rows, weather, on="event_timestamp", by="origin", direction="backward",
                             suffixes=("", "_at_or_before"))  # fmt: skip
    forward = pd.merge_asof(rows, weather, on="event_timestamp", by="origin", direction="forward",
                            allow_exact_matches=False, suffixes=("", "_after"))  # fmt: skip
    # Every served value is the reading at or before the prediction time ...
    pd.testing.assert_series_equal(backward["temp"], backward["temp_at_or_before"], check_names=False)
    # ... and never the next one (which differs often enough for this to catch a leak).
    assert (forward["temp"] != forward["temp_after"]).mean() > 0.9


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"train_start": datetime(2014, 6, 1, tzinfo=UTC), "train_end": datetime(2014, 7, 1, tzinfo=UTC)},
         "gives no labelled rows"),
        ({"feature_service": "flight_delay_v99"}, "feature_service='flight_delay_v99' is not a feature service"),
    ],
)  # fmt: skip
def test_bad_input_stops_training_and_registers_nothing(
    settings: Settings, change: dict[str, object], message: str
) -> None:
    params = TrainParams(**{**WINDOW, **change})  # type: ignore[arg-type]
    with pytest.raises(TrainingDataError, match=message):
        run_training(settings, params, report=lambda _m: None)
    assert _versions(settings) == []
    assert _alias(settings, CHAMPION) is None


def test_the_label_comes_from_the_projects_spec(settings: Settings, tmp_path: Path) -> None:
    """The same repository with another label in its spec: a label true for no flight is refused as
    one class only, naming the expression; a label of the other sense trains and is the lineage's."""
    repo = tmp_path / "feature_repo"
    shutil.copytree(settings.feature_repo, repo, ignore=shutil.ignore_patterns("__pycache__"))
    spec = (repo / "project.yaml").read_text()
    (repo / "project.yaml").write_text(spec.replace("label: arr_delay > 15", "label: arr_delay > 100000"))
    elsewhere = settings.model_copy(update={"feature_repo": repo})
    with pytest.raises(TrainingDataError, match=r"the label `arr_delay > 100000` is false for all of them"):
        run_training(elsewhere, TrainParams(**WINDOW, promote=False), report=lambda _m: None)
    (repo / "project.yaml").write_text(spec.replace("label: arr_delay > 15", "label: arr_delay > 60"))
    summary = run_training(elsewhere, TrainParams(**WINDOW, promote=False), report=lambda _m: None)
    client, _ = open_tracking(settings)
    assert client.get_model_version(settings.model_name, summary["version"]).tags["label"] == "arr_delay > 60"


def test_unreachable_tracking_store_is_named_and_nothing_runs(settings: Settings) -> None:
    down = settings.model_copy(update={"mlflow_tracking_uri": "http://127.0.0.1:9"})
    with pytest.raises(
        TrackingUnavailable, match=r"MLflow tracking store http://127\.0\.0\.1:9 is unreachable"
    ):
        run_training(down, TrainParams(**WINDOW), report=lambda _m: None)
