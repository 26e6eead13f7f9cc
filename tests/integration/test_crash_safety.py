"""Crash safety: `featureloop prepare` and `train` killed with SIGKILL at a random point of their
work, then run again, end exactly where an uninterrupted run ends; no alias ever points at a
half-registered model. (`materialize` killed midway: tests/integration/test_feast_engine.py.)

Each test first runs the command uninterrupted and notes when each progress line appeared. A crashed
run is killed at a point drawn uniformly over that run's work (seeded; the seed is in every failure
message), expressed as "this many seconds after progress line i": the kill waits for line i to
appear, so it falls inside the work however fast this run is (a point timed from the start could
come after a faster rerun had ended). A run that still ends before its kill is drawn again. Each
crashed run is followed by a normal rerun and a comparison with the uninterrupted result."""

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


@dataclass(frozen=True)
class KillPoint:
    """SIGKILL `delay` seconds after the run printed its progress line number `line` (from 0)."""

    line: int
    delay: float

    def __str__(self) -> str:
        return f"{self.delay:.2f} s after progress line {self.line}"


def _run(
    command: list[str], env: dict[str, str], kill: KillPoint | None = None
) -> tuple[int, list[float], str]:
    """Run the CLI; with `kill`, SIGKILL it at that point if it is still running. Returns the exit
    code, when each output line appeared (seconds from the start) and the output."""
    started = time.monotonic()
    proc = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env={**env, "PYTHONUNBUFFERED": "1"},  # each progress line as it is printed
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    reached = threading.Event()
    line_at: list[float] = []
    output: list[bytes] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line_at.append(time.monotonic() - started)
            output.append(line)
            if kill is not None and len(line_at) > kill.line:
                reached.set()
        reached.set()  # ended before that line

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if kill is not None:
        reached.wait(timeout=600)
        try:
            proc.wait(timeout=kill.delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    code = proc.wait(timeout=600)
    reader.join(timeout=30)
    assert proc.stdout is not None
    proc.stdout.close()
    return code, line_at, b"".join(output).decode(errors="replace")


def _kill_point(marks: list[float], rng: random.Random) -> KillPoint:
    """A point uniform over the work between the first and the last progress mark of an
    uninterrupted run, as a delay after the mark before it."""
    at = rng.uniform(marks[0], marks[-1])
    line = max(i for i, mark in enumerate(marks[:-1]) if mark <= at)
    return KillPoint(line, at - marks[line])


def _killed_runs(
    command: list[str], env: dict[str, str], marks: list[float], seed: int, attempts: int = 5
) -> tuple[int, KillPoint, str]:
    """Run `command` killed at a drawn point; a run that ended before it is drawn again (its rerun
    still proves nothing was lost). Returns the last run's exit code, kill point and output."""
    rng = random.Random(seed)
    for _ in range(attempts):
        point = _kill_point(marks, rng)
        code, _, output = _run(command, env, point)
        if code == -signal.SIGKILL:
            break
    return code, point, output


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
    code, line_at, output = _run([CLI, "prepare"], reference_env)
    assert code == 0, output
    # Its work: from the first progress line to the one naming the dataset version (then the summary).
    lines = output.splitlines()
    done = next(i for i, line in enumerate(lines) if "s] dataset version" in line)
    marks = line_at[: done + 1]
    reference = tmp_path / "reference"
    expected = _tree(reference / "offline")
    seed = _seed()
    data = tmp_path / "crashed"
    env = {**reference_env, "FEATURELOOP_DATA_DIR": str(data)}
    code, point, output = _killed_runs([CLI, "prepare"], env, marks, seed)
    context = f"seed {seed}, killed {point} (exit {code})"
    assert code == -signal.SIGKILL, f"{context}: every drawn point came after the run ended\n{output}"
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


def test_train_killed_anywhere_then_rerun_never_aliases_a_half_registered_model(
    feast_env: FeastEnv, tmp_path: Path
) -> None:
    """The uninterrupted run and the reruns are in this process (`run_training`, what the CLI calls);
    the crashed run is the CLI, killed during its work."""
    from featureloop.params import TrainParams
    from featureloop.settings import Settings
    from featureloop.training.pipeline import run_training
    from featureloop.training.registry import CHAMPION, connect, get_alias, load_model

    start, end = "2013-01-01T00:00:00+00:00", "2013-01-30T00:00:00+00:00"
    data = tmp_path / "data"
    data.mkdir()
    for name in ("offline", "versions", "feast"):
        (data / name).symlink_to((feast_env.settings.data_dir / name).resolve(), target_is_directory=True)
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings = Settings(data_dir=data, raw_dir=feast_env.settings.raw_dir, mlflow_tracking_uri=tracking)
    params = TrainParams.model_validate({"train_start": start, "train_end": end})
    # The work to crash in: from the line the CLI prints first ("training set: ...", once the
    # tracking store exists) to the gate's decision: the training set, the fit, the registration, the
    # gate. The CLI prints the same progress lines, one per mark, before its summary.
    marks: list[float] = []
    began = time.monotonic()
    run_training(settings, params, report=lambda _m: marks.append(time.monotonic() - began))
    client, _ = connect(tracking, settings.artifact_location, settings.experiment)
    reference = get_alias(client, settings.model_name, CHAMPION)
    assert reference is not None
    env = {**os.environ, "FEATURELOOP_DATA_DIR": str(data), "FEATURELOOP_MLFLOW_TRACKING_URI": tracking}
    seed = _seed()
    command = [CLI, "train", "--start", start, "--end", end]
    code, point, output = _killed_runs(command, env, marks, seed)
    context = f"seed {seed}, killed {point} (exit {code})\n{output[-1500:]}"
    assert code == -signal.SIGKILL, f"{context}: every drawn point came after the run ended"
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


REQUIRED_TAGS = ("model_inputs", "reference_profile", "run_id", "holdout.roc_auc", "training_set_digest")


def _assert_complete(tags: dict[str, str], context: str) -> None:
    missing = [t for t in REQUIRED_TAGS if t not in tags]
    assert not missing, f"{context}: an aliased version lacks {missing}"
