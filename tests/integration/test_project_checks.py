"""A spec against a real Feast registry and the offline tables: the worked example's passes; each
mismatch is one sentence naming the field, and `featureloop validate` exits 2 printing them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from featureloop.project.checks import check_project
from featureloop.project.spec import ProjectSpec
from featureloop.settings import PROJECT_ROOT
from tests.integration.conftest import FeastEnv

pytestmark = pytest.mark.integration


def _spec(**changes: Any) -> ProjectSpec:
    raw = yaml.safe_load((PROJECT_ROOT / "feature_repo" / "project.yaml").read_text())
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = raw
        for part in parents:
            node = node[part]
        node[last] = value
    return ProjectSpec.model_validate(raw)


def _problems(feast_env: FeastEnv, **changes: Any) -> list[str]:
    return check_project(_spec(**changes), feast_env.store, feast_env.settings.offline_dir)


def test_the_worked_examples_spec_has_no_problems(feast_env: FeastEnv) -> None:
    assert _problems(feast_env) == []


# (the change, a phrase the one problem must hold)
MISMATCHES = [
    ({"feature_service": "flight_delay_v9"}, "feature_service: 'flight_delay_v9' is not in the registry (known: ['flight_delay_v1'])"),
    ({"spine__entity_keys": ["tailnum", "origin", "carrier"]}, "the service joins on ['route'], which the spec does not list"),
    ({"spine__entity_keys": ["tailnum", "origin", "carrier", "route", "dest"]}, "['dest'] are not join keys of any view"),
    ({"spine__derived_keys": {}}, "join key 'route' can be built from no request"),
    ({"spine__request_fields": [*_spec().model_dump()["spine"]["request_fields"], {"name": "temp", "type": "float"}]},
     "['temp'] are also features of 'flight_delay_v1'"),
    ({"spine__table": "planes"}, "spine.table: 'planes' is not in the offline store"),
    ({"spine__id": "flight_key"}, "spine.id: ['flight_key'] not in the columns of flights.parquet"),
    ({"task__label": "arrival_delay > 15"}, "task.label: 'arrival_delay > 15' cannot be computed over flights.parquet"),
    ({"task__label": "arr_delay"}, "a binary task needs a true/false expression; 'arr_delay' gives DOUBLE"),
    ({"task__type": "regression", "task__label": "arr_delay > 15"}, "a regression task needs a number; 'arr_delay > 15' gives BOOLEAN"),
    ({"task__outcome_known": {"column": "landed_at"}}, "task.outcome_known.column: ['landed_at'] not in the columns"),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "phrase"), MISMATCHES, ids=[p.split(":")[0][:40] for _, p in MISMATCHES])
def test_each_mismatch_is_one_sentence_naming_the_field(
    feast_env: FeastEnv, changes: dict[str, Any], phrase: str
) -> None:
    problems = _problems(feast_env, **changes)
    assert len(problems) == 1 and phrase in problems[0], problems


def test_a_regression_label_over_the_spine_passes(feast_env: FeastEnv) -> None:
    assert _problems(feast_env, task__type="regression", task__label="arr_delay") == []


def _repo_copy(root: Path, spec: str) -> Path:
    repo = root / "feature_repo"
    repo.mkdir(parents=True)
    for source in (PROJECT_ROOT / "feature_repo").iterdir():
        if source.is_file():
            (repo / source.name).write_bytes(source.read_bytes())
    (repo / "project.yaml").write_text(spec)
    return repo


def _featureloop(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "featureloop"), command],
        env={**os.environ, **env}, capture_output=True, text=True,
    )  # fmt: skip


def test_validate_exits_2_naming_each_problem(feast_env: FeastEnv, tmp_path: Path) -> None:
    raw = _spec(spine__derived_keys={}, task__label="arr_delay").model_dump(exclude_defaults=True)
    repo = _repo_copy(tmp_path, yaml.safe_dump(raw))
    env = {"FEATURELOOP_DATA_DIR": str(feast_env.settings.data_dir), "FEATURELOOP_FEATURE_REPO": str(repo)}
    done = _featureloop("validate", env)
    assert done.returncode == 2, done.stderr
    assert "error: 2 problem(s) in" in done.stderr
    assert "join key 'route' can be built from no request" in done.stderr
    assert "a binary task needs a true/false expression" in done.stderr


def test_apply_checks_the_spec_before_and_after_applying(feast_env: FeastEnv, tmp_path: Path) -> None:
    """A spec that does not load stops `apply` before Feast writes anything; one that disagrees with
    the registry is named after the apply, with exit 2."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "offline").symlink_to(feast_env.settings.offline_dir.resolve(), target_is_directory=True)
    broken = _repo_copy(tmp_path / "broken", "name: flight_delay\nfeature_servce: flight_delay_v1\n")
    env = {"FEATURELOOP_DATA_DIR": str(data), "FEATURELOOP_FEATURE_REPO": str(broken)}
    done = _featureloop("apply", env)
    assert done.returncode == 2, done.stderr
    assert "feature_servce: not a field of the spec (misspelt?)" in done.stderr
    assert "Nothing was applied." in done.stderr
    assert not (data / "feast").exists()  # no registry, no online store

    raw = _spec(spine__derived_keys={}).model_dump(exclude_defaults=True)
    env["FEATURELOOP_FEATURE_REPO"] = str(_repo_copy(tmp_path / "keyless", yaml.safe_dump(raw)))
    done = _featureloop("apply", env)
    assert done.returncode == 2, done.stderr
    assert "the registry is applied, but 1 problem(s)" in done.stderr
    assert "join key 'route' can be built from no request" in done.stderr


def test_the_drift_runs_thresholds_are_the_projects() -> None:
    """`monitoring` in project.yaml is where an operator edits the thresholds: the scheduled
    deployment's form and `featureloop drift` start from it; what is given explicitly wins."""
    from featureloop.params import drift_params_for
    from flows.deploy import deployments

    spec = _spec(monitoring__window="3d", monitoring__persistence_k=1)
    params = drift_params_for(spec.monitoring, skew_sample=0, window_hours=None)
    assert params.drift.min_psi == 0.2 and params.drift.share_threshold == 0.4  # the worked example's
    assert params.window_hours == 72 and params.persistence_k == 1 and params.skew_sample == 0
    drift = next(d for d in deployments(None, None) if d.name == "drift")
    form = drift.parameters["params"]
    assert form["drift"]["min_psi"] == 0.2 and form["drift"]["share_threshold"] == 0.4
    assert form["window_hours"] == 168 and form["persistence_k"] == 2 and form["skew_sample"] == 200


GATED = """
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64

gate = Entity(name="gate", join_keys=["gate_id"], value_type=ValueType.STRING)
gate_source = FileSource(path="{path}", timestamp_field="event_timestamp")
gate_load = FeatureView(
    name="gate_load", entities=[gate], ttl=timedelta(days=1), schema=[Field(name="load", dtype=Float64)],
    source=gate_source,
)
gated_v1 = FeatureService(name="gated_v1", features=[gate_load])
"""


def test_serving_refuses_to_start_on_a_service_joined_on_a_key_no_request_builds(
    feast_env: FeastEnv, tmp_path: Path
) -> None:
    """A champion of a service that joins on `gate_id`, which a /predict request does not carry:
    serving does not start (naming the key), rather than answering every request with a 503."""
    import asyncio

    import pandas as pd

    from featureloop.featurestore.store import apply_repo, open_store
    from featureloop.settings import Settings
    from serving.app import UnservableService, create_app
    from serving.model import ServingModel

    gates = tmp_path / "gates.parquet"
    pd.DataFrame(
        {"gate_id": ["A1"], "event_timestamp": pd.to_datetime(["2013-01-02"], utc=True), "load": [0.5]}
    ).to_parquet(gates)
    repo = _repo_copy(tmp_path, (PROJECT_ROOT / "feature_repo" / "project.yaml").read_text())
    (repo / "gates.py").write_text(GATED.format(path=gates))
    data = tmp_path / "data"
    data.mkdir()
    (data / "offline").symlink_to(feast_env.settings.offline_dir.resolve(), target_is_directory=True)
    settings = Settings(data_dir=data, feature_repo=repo)
    apply_repo(settings)

    class GatedModels:
        def resolver(self, alias: str) -> Any:
            return lambda: ("1", {}) if alias == "champion" else None

        def load(self, version: str, tags: dict[str, str]) -> ServingModel:
            return ServingModel("gated", version, None, [], [], "gated_v1", 0.0)

    app = create_app(settings, store=open_store(settings), models=GatedModels())

    async def start() -> None:
        async with app.router.lifespan_context(app):
            pass

    with pytest.raises(
        UnservableService, match=r"joins on \['gate_id'\], which no /predict request can build"
    ):
        asyncio.run(start())


def test_serving_refuses_a_champion_of_another_task_than_the_spec_declares(feast_env: FeastEnv) -> None:
    """A regression model under the worked example's (binary) spec would be answered with the wrong
    response model: serving does not start, and says which model to serve."""
    import asyncio

    from serving.app import UnservableService, create_app
    from serving.model import ServingModel

    class RegressionModels:
        def resolver(self, alias: str) -> Any:
            return lambda: ("7", {}) if alias == "champion" else None

        def load(self, version: str, tags: dict[str, str]) -> ServingModel:
            return ServingModel("wear", version, None, [], [], "flight_delay_v1", 0.0, task="regression")

    app = create_app(feast_env.settings, store=feast_env.store, models=RegressionModels())

    async def start() -> None:
        async with app.router.lifespan_context(app):
            pass

    with pytest.raises(
        UnservableService,
        match=r"version 7\) predicts a regression task and the project's spec declares binary",
    ):
        asyncio.run(start())
