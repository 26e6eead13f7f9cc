"""A project that is not the worked example, as a new user gets it: `featureloop init` scaffolds a
synthetic sensor fleet (an entity of another name, numeric readings, a regression label known six
hours later), and, run in its folder with the commands its README gives, it prepares, applies,
trains, serves its own request, finds the drift its data holds, and retrains through the Prefect
flow: no line of the core names it. The binary variant of the scaffold trains and serves too."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import httpx
import pytest
from typer.testing import CliRunner

from featureloop.cli import app
from featureloop.settings import Settings
from serving.app import create_app
from tests.integration.conftest import featureloop_ok, serve_app, without_featureloop_env
from tests.waiting import until

pytestmark = pytest.mark.integration
CHANGE = datetime(2024, 3, 14, tzinfo=UTC)


@pytest.fixture()
def in_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh folder to init a project in, as the working directory, with no FEATURELOOP_* setting
    of the test session's (the project's .env is what configures it)."""
    without_featureloop_env(monkeypatch)
    monkeypatch.setenv("FEATURELOOP_MODEL_RELOAD_SECONDS", "0.5")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_scaffolded_regression_project_trains_serves_drifts_and_retrains(
    in_project: Path, prefect_server: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.retrain import RetrainParams, retrain

    featureloop_ok("init", "sensors")
    project = in_project / "sensors"
    monkeypatch.chdir(project)
    featureloop_ok("prepare")
    assert "its spec agrees with the registry and the offline tables" in featureloop_ok("apply").output
    featureloop_ok("validate")
    first = featureloop_ok("train", "--end", "2024-02-15").output
    assert "mae" in first and "promoted: passed every check against the training-mean baseline" in first
    featureloop_ok("materialize", "--end", CHANGE.isoformat())
    settings = Settings()
    assert settings.model_name == "sensors" and settings.data_dir == project / "data"
    with serve_app(create_app(settings)) as url:
        docs = httpx.get(f"{url}/openapi.json", timeout=30).json()
        assert set(docs["components"]["schemas"]["SensorsRow"]["properties"]) == {
            "reading_id", "sensor_id", "load", "ambient_temp", "event_timestamp"
        }  # fmt: skip
        one = {"reading_id": "x1", "sensor_id": "s01", "load": 0.9, "ambient_temp": 20.0}
        answer = httpx.post(f"{url}/predict", json={"readings": [one]}, timeout=30).json()
        (prediction,) = answer["predictions"]
        assert (
            prediction["reading_id"] == "x1"
            and prediction["prediction"] > 0
            and "probability" not in prediction
        )
        refused = httpx.post(f"{url}/predict", json={"readings": [{**one, "load": 3}]}, timeout=30)
        assert refused.status_code == 422 and refused.json()["detail"][0]["loc"][-1] == "load"
        sent = subprocess.run(
            [sys.executable, "send.py", "--start", "2024-03-12", "--end", CHANGE.date().isoformat(), "--url", url],
            capture_output=True, text=True, timeout=300, check=True,
        )  # fmt: skip
        assert "1,440 predictions" in sent.stdout
        log = settings.prediction_log_dir
        until(
            lambda: duckdb.sql(f"SELECT count(*) FROM read_parquet('{log}/**/*.parquet')").fetchall() == [(1441,)],
            timeout=30, what="the prediction log holding every answer", ignoring=(duckdb.Error,),
        )  # fmt: skip
        drift = featureloop_ok("drift", "--end", CHANGE.isoformat()).output
        # Half the fleet vibrates harder from 2024-03-01 and wears twice as fast under load.
        assert "vibration_max_6h                 yes" in drift and "DRIFT" in drift
        assert "MAE" in drift and "above the holdout's" in drift
        summary = retrain(RetrainParams(window_end=CHANGE, reason="drift and decay (test)"))
        # A drift-triggered retrain is released (the spec's monitoring.release.enabled): a person
        # promotes it from the command line here (test_release.py follows a release's stages).
        assert summary["released"] is True and summary["version"] == "2", summary["reason"]
        promoted = featureloop_ok("release", "promote", "--reason", "the test").output
        assert "promoted by hand: the test" in promoted
        assert summary["lineage"]["feature_service"] == "sensor_v1"
        until(
            lambda: httpx.post(f"{url}/predict", json={"readings": [one]}, timeout=30).json()["model_version"] == "2",
            timeout=30, what="serving answering with the retrained version",
        )  # fmt: skip


def test_the_binary_scaffold_trains_and_answers_a_probability_and_its_decision(in_project: Path) -> None:
    featureloop_ok("init", "wear_alarm", "--task", "binary")
    os.chdir(in_project / "wear_alarm")
    featureloop_ok("prepare")
    featureloop_ok("apply")
    trained = featureloop_ok("train", "--end", "2024-02-15").output
    assert "roc_auc" in trained and "promoted" in trained
    featureloop_ok("materialize", "--end", "2024-02-15")
    with serve_app(create_app(Settings())) as url:
        row = {"sensor_id": "s01", "load": 0.9, "ambient_temp": 20.0}
        (prediction,) = httpx.post(f"{url}/predict", json={"readings": [row]}, timeout=30).json()[
            "predictions"
        ]
    assert 0 <= prediction["probability"] <= 1 and isinstance(prediction["worn"], bool)


def test_init_refuses_a_folder_that_is_not_empty_and_writes_nothing(in_project: Path) -> None:
    (in_project / "taken").mkdir()
    (in_project / "taken" / "notes.txt").write_text("mine")
    result = CliRunner().invoke(app, ["init", "taken"])
    assert result.exit_code != 0 and "is not empty: nothing was written" in result.output
    assert [p.name for p in (in_project / "taken").iterdir()] == ["notes.txt"]


def test_the_scaffolded_projects_backtest_replays_it_and_scores_the_policies_in_mae(
    in_project: Path, prefect_server: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`featureloop backtest`'s phases on the sensor project: its spine replayed hour by hour over
    HTTP across the change, a drift run every two days, and the scorecard in the task's metric."""
    from flows.backtest import force_champion, plan, reset_replay_state, run_replay_phase
    from flows.scorecard import print_scorecard

    featureloop_ok("init", "fleet")
    monkeypatch.chdir(in_project / "fleet")
    featureloop_ok("prepare")
    settings = Settings()
    from featureloop.project.spec import load_spec

    the = plan(load_spec(settings.feature_repo), settings.offline_dir)
    # The data: hourly from 2024-01-01 to 2024-03-30 23:00; first_train 30d.
    assert (the.start, the.end) == (
        datetime(2024, 1, 31, tzinfo=UTC),
        datetime(2024, 3, 30, 23, 0, 1, tzinfo=UTC),
    )
    start, end = datetime(2024, 2, 28, tzinfo=UTC), datetime(2024, 3, 3, tzinfo=UTC)
    reset_replay_state(settings)
    featureloop_ok("apply")
    featureloop_ok("materialize", "--end", start.isoformat())
    first = featureloop_ok("train", "--end", start.isoformat())
    assert "promoted" in first.output
    force_champion(settings, "1")
    lines: list[str] = []
    weeks, card = run_replay_phase(settings, "1", lines.append, None, start=start, end=end)
    assert [w.served for w in weeks] == [30 * 48, 30 * 48]  # every reading of every two-day window
    # The feed materialised each window's end as Feast records it: the skew check compared every
    # sensor online with the offline store and found what is true, no mismatch.
    assert [(w.drift["skew_checked"], w.drift["skew_mismatches"]) for w in weeks] == [(30, 0), (30, 0)]
    from featureloop.featurestore.store import open_store

    intervals = open_store(settings).get_feature_view("sensor_stats").materialization_intervals
    assert max(e for _, e in intervals) == end
    assert card["metric"] == "MAE" and card["labelled"] == 30 * 96
    months = {m["month"]: m for m in card["months"]}
    assert set(months) == {"2024-02", "2024-03"} and months["2024-02"]["rows"] == 30 * 48
    # After the change (2024-03-01) half the fleet wears twice as fast: the first model's error grows.
    assert months["2024-03"]["never"] > months["2024-02"]["never"]
    out: list[str] = []
    print_scorecard(card, out.append)
    assert "readings  drift (windows)" in out[0] and any(
        line.startswith("totals: mean monthly MAE") for line in out
    )
    assert any(line.startswith("window 2024-02-28") for line in lines)
