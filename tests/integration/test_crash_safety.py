"""Crash safety: `featureloop prepare` and `train` killed with SIGKILL at a random point of their
work, then run again, end exactly where an uninterrupted run ends; no alias ever points at a
half-registered model. (`materialize` killed midway: tests/integration/test_feast_engine.py.)

Each test first times an uninterrupted run of the real CLI (a subprocess, as a user or a scheduler
runs it): from its first line of output (imports and set-up done) to its end. The crashed runs are
killed at points drawn uniformly inside that span (seeded; the seed is in every failure message),
and each is followed by a normal rerun and a comparison with the uninterrupted result."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from featureloop.settings import PROJECT_ROOT
from tests.integration.conftest import FeastEnv

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).parent / "featureloop")
KILLS = 1  # crashed runs per command and test run (each test run draws a new point)


@dataclass(frozen=True)
class Span:
    """When an uninterrupted run printed its first line and when it ended (seconds from its start)."""

    first_output: float
    end: float


def _run(
    command: list[str], env: dict[str, str], kill_after_output: float | None = None
) -> tuple[int, Span, str]:
    """Run the CLI; with `kill_after_output`, SIGKILL it that many seconds after its first line of
    output (imports and set-up are done by then), if it is still running."""
    started = time.monotonic()
    proc = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env={**env, "PYTHONUNBUFFERED": "1"},  # each progress line as it is printed
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    first = threading.Event()
    first_at: list[float] = []
    output: list[bytes] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if not first_at:
                first_at.append(time.monotonic() - started)
                first.set()
            output.append(line)
        first.set()  # ended without output

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if kill_after_output is not None:
        first.wait(timeout=600)
        try:
            proc.wait(timeout=kill_after_output)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    code = proc.wait(timeout=600)
    reader.join(timeout=30)
    assert proc.stdout is not None
    proc.stdout.close()
    end = time.monotonic() - started
    return code, Span(first_at[0] if first_at else end, end), b"".join(output).decode(errors="replace")


def _crash_points(window: float, seed: int, kills: int = KILLS) -> list[float]:
    """Seconds after the first output line, uniform over the `window` the work takes."""
    rng = random.Random(seed)
    return [rng.uniform(0, window) for _ in range(kills)]


def _seed() -> int:
    return int.from_bytes(os.urandom(4), "big")


def _tree(folder: Path) -> dict[str, str]:
    """Every file under `folder` (following the `offline` link) by relative path, with its hash."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_prepare_killed_anywhere_then_rerun_writes_the_same_dataset_and_leaves_nothing_behind(
    feast_env: FeastEnv, tmp_path: Path
) -> None:
    raw = feast_env.settings.raw_dir
    assert raw is not None
    reference_env = {
        **os.environ,
        "FEATURELOOP_DATA_DIR": str(tmp_path / "reference"),
        "FEATURELOOP_RAW_DIR": str(raw),
    }
    code, span, output = _run([CLI, "prepare"], reference_env)
    assert code == 0, output
    reference = tmp_path / "reference"
    expected = _tree(reference / "offline")
    seed = _seed()
    killed = 0
    for i, at in enumerate(_crash_points(span.end - span.first_output, seed)):
        data = tmp_path / f"crashed-{i}"
        env = {**reference_env, "FEATURELOOP_DATA_DIR": str(data)}
        code, _, output = _run([CLI, "prepare"], env, kill_after_output=at)
        killed += code == -signal.SIGKILL
        context = f"seed {seed}, kill {i} at {at:.2f} s (exit {code})"
        # After the crash: no dataset, or a whole one; never a partial one behind the link.
        if (data / "offline").exists():
            assert _tree(data / "offline") == expected, context
        code, _, output = _run([CLI, "prepare"], env)
        assert code == 0, f"{context}: rerun failed\n{output}"
        assert _tree(data / "offline") == expected, context
        # Nothing a killed run wrote is left: one version folder, no staging folder, no temporary link.
        assert sorted(p.name for p in (data / "versions").iterdir()) == sorted(
            p.name for p in (reference / "versions").iterdir()
        ), context
        assert not [p.name for p in data.iterdir() if p.name.startswith(".")], context
    assert killed >= 1, f"seed {seed}: every run ended before its kill; nothing was tested"


def test_train_killed_anywhere_then_rerun_never_aliases_a_half_registered_model(
    feast_env: FeastEnv, tmp_path: Path
) -> None:
    """The uninterrupted run and the reruns are in this process (`run_training`, what the CLI calls);
    the crashed run is the CLI, killed during its work."""
    from featureloop.model_registry import CHAMPION, connect, get_alias, load_model
    from featureloop.params import TrainParams
    from featureloop.settings import Settings
    from featureloop.trainer import run_training

    start, end = "2013-01-01T00:00:00+00:00", "2013-01-30T00:00:00+00:00"
    data = tmp_path / "data"
    data.mkdir()
    for name in ("offline", "versions", "feast"):
        (data / name).symlink_to((feast_env.settings.data_dir / name).resolve(), target_is_directory=True)
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings = Settings(data_dir=data, raw_dir=feast_env.settings.raw_dir, mlflow_tracking_uri=tracking)
    params = TrainParams.model_validate({"train_start": start, "train_end": end})
    # The span to crash in: from the line the CLI prints first ("training set: ...", once the
    # tracking store exists) to the end: the training set, the fit, the registration, the gate.
    marks: list[float] = []
    run_training(settings, params, report=lambda _m: marks.append(time.monotonic()))
    work = time.monotonic() - marks[0]
    client, _ = connect(tracking, settings.artifact_location, settings.experiment)
    reference = get_alias(client, settings.model_name, CHAMPION)
    assert reference is not None
    env = {**os.environ, "FEATURELOOP_DATA_DIR": str(data), "FEATURELOOP_MLFLOW_TRACKING_URI": tracking}
    seed = _seed()
    killed = 0
    for i, at in enumerate(_crash_points(work, seed, kills=1)):
        code, _, output = _run([CLI, "train", "--start", start, "--end", end], env, kill_after_output=at)
        killed += code == -signal.SIGKILL
        context = f"seed {seed}, kill {i} at {at:.2f} s of {work:.1f} s (exit {code})\n{output[-1500:]}"
        champion = get_alias(client, settings.model_name, CHAMPION)
        assert champion is not None, context
        _assert_complete(champion.tags, context)  # the crash moved no alias onto a partial version
        run_training(settings, params, report=lambda _m: None)  # the rerun
        for version in client.search_model_versions(f"name = '{settings.model_name}'"):
            if version.aliases:  # every aliased version is whole
                _assert_complete(version.tags, context)
    # The same window and the same deterministic fit: the champion at the end has the training set
    # and the holdout scores of the uninterrupted run's, and its model loads.
    champion = get_alias(client, settings.model_name, CHAMPION)
    assert champion is not None
    same = ("training_set_digest", "holdout.roc_auc", "holdout.log_loss", "model_inputs")
    assert {k: champion.tags[k] for k in same} == {k: reference.tags[k] for k in same}
    assert load_model(champion.uri) is not None
    assert killed >= 1, f"seed {seed}: the run ended before its kill; nothing was tested"


REQUIRED_TAGS = ("model_inputs", "reference_profile", "run_id", "holdout.roc_auc", "training_set_digest")


def _assert_complete(tags: dict[str, str], context: str) -> None:
    missing = [t for t in REQUIRED_TAGS if t not in tags]
    assert not missing, f"{context}: an aliased version lacks {missing}"
