"""The `featureloop` and `feast` commands as a user runs them, in subprocesses."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from featureloop.settings import PROJECT_ROOT
from tests.integration.conftest import FeastEnv

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, timeout=300, check=False
    )


def test_help_starts_without_importing_heavy_libraries(tmp_path: Path) -> None:
    code = (
        "import sys; from featureloop.cli import app; "
        "heavy = [m for m in ('feast', 'prefect', 'mlflow', 'duckdb', 'pandas') if m in sys.modules]; "
        "print(heavy)"
    )
    out = _run([sys.executable, "-c", code], cwd=PROJECT_ROOT)
    assert out.stdout.strip() == "[]", out.stderr
    assert _run([str(BIN / "featureloop"), "--help"], cwd=tmp_path).returncode == 0


def test_prepare_on_broken_input_fails_with_a_named_error_and_keeps_the_previous_data(
    synthetic_raw: Path, tmp_path: Path
) -> None:
    env = {"FEATURELOOP_RAW_DIR": str(synthetic_raw), "FEATURELOOP_DATA_DIR": str(tmp_path / "data")}
    good = _run([str(BIN / "featureloop"), "prepare"], cwd=tmp_path, **env)
    assert good.returncode == 0, good.stderr
    assert "dataset version" in good.stdout and "quarantined" in good.stdout
    before = (tmp_path / "data/offline").resolve()
    (synthetic_raw / "planes.csv").write_text("tailnum,year\nN1,2000\n")
    bad = _run([str(BIN / "featureloop"), "prepare"], cwd=tmp_path, **env)
    assert bad.returncode == 2
    assert "planes.csv: column 'type' is missing" in bad.stderr
    assert "previous dataset (if any) is unchanged" in bad.stderr
    assert (tmp_path / "data/offline").resolve() == before


def test_feast_cli_apply_and_materialize_incremental_in_the_repo(feast_env: FeastEnv, tmp_path: Path) -> None:
    """What the README tells a platform engineer: `cd feature_repo && feast apply && feast materialize-incremental`."""
    repo = tmp_path / "project/feature_repo"
    shutil.copytree(PROJECT_ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("__pycache__"))
    data_dir = repo.parent / "data"  # as in a clone: the registry lives in ../data/feast
    data_dir.mkdir()
    (data_dir / "offline").symlink_to(feast_env.settings.offline_dir.resolve())
    env = {"FEATURELOOP_DATA_DIR": str(data_dir), "FEATURELOOP_FEATURE_REPO": str(repo)}
    ours = _run([str(BIN / "featureloop"), "apply"], cwd=tmp_path, **env)
    assert ours.returncode == 0, ours.stderr
    # `featureloop apply` and `feast apply` describe the same store: Feast sees nothing to change.
    plan = _run([str(BIN / "feast"), "plan"], cwd=repo, **env)
    assert plan.returncode == 0, plan.stderr + plan.stdout
    assert "No changes to infrastructure" in plan.stdout, plan.stdout
    applied = _run([str(BIN / "feast"), "apply"], cwd=repo, **env)
    assert applied.returncode == 0, applied.stderr + applied.stdout
    # Feast's first incremental run starts at wall-clock now - TTL, which misses a historical
    # dataset: the README backfills with an explicit window, then continues incrementally.
    start, end = feast_env.prepared.time_range["start"][:19], feast_env.prepared.time_range["end"][:19]
    middle = str(pd.Timestamp(start) + (pd.Timestamp(end) - pd.Timestamp(start)) / 2)[:19]
    backfill = _run([str(BIN / "feast"), "materialize", start, middle], cwd=repo, **env)
    assert backfill.returncode == 0, backfill.stderr + backfill.stdout
    loaded = _run([str(BIN / "feast"), "materialize-incremental", end], cwd=repo, **env)
    assert loaded.returncode == 0, loaded.stderr + loaded.stdout
    plain = re.sub(r"\x1b\[[0-9;]*m", "", loaded.stdout)
    assert f"from {pd.Timestamp(middle).tz_localize('UTC')}" in plain  # continues where the backfill ended
    assert (data_dir / "feast/online.db").exists()

    code = (
        "from feast import FeatureStore; import json; "
        "s = FeatureStore(repo_path='.'); "
        "print(json.dumps(s.get_online_features(features=['carrier_stats:carrier_flights_7d'], "
        "entity_rows=[{'carrier': 'UA'}]).to_dict()))"
    )
    read = _run([sys.executable, "-c", code], cwd=repo, **env)
    assert read.returncode == 0, read.stderr
    stats = feast_env.table("carrier_stats")
    expected = stats[
        (stats["carrier"] == "UA")
        & (stats["event_timestamp"] <= pd.Timestamp(feast_env.prepared.time_range["end"]))
    ]
    assert f'"carrier_flights_7d": [{int(expected["carrier_flights_7d"].iloc[-1])}]' in read.stdout


def test_rollback_without_a_previous_version_says_so(tmp_path: Path) -> None:
    env = {
        "FEATURELOOP_DATA_DIR": str(tmp_path / "data"),
        "FEATURELOOP_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    out = _run([str(BIN / "featureloop"), "rollback"], cwd=tmp_path, **env)
    assert out.returncode == 2
    assert "has no version with alias 'previous': nothing to roll back to" in out.stderr


def test_train_with_an_inverted_window_is_refused_before_any_work(tmp_path: Path) -> None:
    env = {
        "FEATURELOOP_DATA_DIR": str(tmp_path / "data"),
        "FEATURELOOP_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    out = _run(
        [str(BIN / "featureloop"), "train", "--start", "2013-03-01", "--end", "2013-02-01"],
        cwd=tmp_path,
        **env,
    )
    assert out.returncode == 2
    assert (
        "error: --start 2013-03-01 is not before --end 2013-02-01: use a start before the end" in out.stderr
    )
    assert "Nothing was registered" in out.stderr
