"""A train killed after MLflow registered its version, before the version got its tags, leaves a
version without lineage and without alias. The next train names it (output and log) and leaves it
in place; a version whose train is still running is not named. Real MLflow registry: the kill is
simulated at exactly that point by creating the run and the version directly with MlflowClient."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from featureloop.cli import app
from featureloop.params import TrainParams
from featureloop.settings import Settings
from featureloop.training.registry import RUN_HOST, RUN_PID, find_half_made, open_tracking
from tests.integration.conftest import FeastEnv

pytestmark = pytest.mark.integration


@pytest.fixture()
def settings(feast_env: FeastEnv, tmp_path: Path) -> Settings:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("offline", "versions", "feast"):
        (data / name).symlink_to((feast_env.settings.data_dir / name).resolve(), target_is_directory=True)
    return Settings(data_dir=data, mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


@pytest.fixture()
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A live process standing in for a train that is still tagging its version."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _registered_by(settings: Settings, pid: int, *, status: str | None = None) -> str:
    """What `register_candidate` has done when it is stopped between registering and tagging: a
    run naming its process, and a version of the model without tags. Returns the version."""
    client, experiment_id = open_tracking(settings)
    run = client.create_run(experiment_id, tags={RUN_HOST: socket.gethostname(), RUN_PID: str(pid)})
    if status is not None:
        client.set_terminated(run.info.run_id, status)
    if not client.search_registered_models(f"name = '{settings.model_name}'"):
        client.create_registered_model(settings.model_name)
    version = client.create_model_version(
        settings.model_name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    )
    return str(version.version)


def _gone_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid names no process now
    return proc.pid


def test_next_train_names_a_killed_trains_version_and_leaves_it_and_a_live_ones_alone(
    settings: Settings, sleeper: subprocess.Popen[bytes]
) -> None:
    killed = _registered_by(settings, _gone_pid())  # the kill: its run never ended
    failed = _registered_by(settings, sleeper.pid, status="FAILED")  # tagging failed in a live process
    live = _registered_by(settings, sleeper.pid)  # still tagging
    env = {
        "FEATURELOOP_DATA_DIR": str(settings.data_dir),
        "FEATURELOOP_MLFLOW_TRACKING_URI": settings.tracking_uri,
    }
    result = CliRunner().invoke(
        app, ["train", "--start", "2013-01-08", "--end", "2013-01-15", "--no-promote"], env=env
    )
    assert result.exit_code == 0, result.stderr
    for stream in (result.stdout, result.stderr):  # the summary, and the progress log
        named = {
            line.split(" version ")[1].split()[0] for line in stream.splitlines() if "warning: model" in line
        }
        assert named == {killed, failed}, stream
    assert (
        f"warning: model flight_delay version {killed} (registered " in result.stdout
        and "was left half-made by a train killed midway (its run never ended and its process, pid"
        in result.stdout
    ), result.stdout
    assert "a train whose run ended FAILED before tagging it" in result.stdout

    client, _ = open_tracking(settings)
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name = '{settings.model_name}'"))
    assert versions == [1, 2, 3, 4]  # nothing deleted; the new version is whole, so never named
    sleeper.kill()
    sleeper.wait()
    assert [h.version for h in find_half_made(client, settings.model_name)] == [killed, failed, live]


def test_train_flow_logs_the_half_made_versions(
    settings: Settings, prefect_server: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.train import train

    monkeypatch.setenv("FEATURELOOP_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("FEATURELOOP_MLFLOW_TRACKING_URI", settings.tracking_uri)
    killed = _registered_by(settings, _gone_pid())
    window = {"train_start": datetime(2013, 1, 8, tzinfo=UTC), "train_end": datetime(2013, 1, 15, tzinfo=UTC)}
    summary = train(TrainParams(**window, promote=False))
    assert [line.split(" version ")[1].split()[0] for line in summary["half_made"]] == [killed]
