"""`featureloop backtest` (and `make demo`, the worked example's): a project's history replayed
through the real loop, and the proof that it pays, as the project's spec (`backtest`) says.

1. prepare the data, apply the Feast repository, load the online store as of the replay's start;
2. train the first champion (`backtest.first_model`, or `first_train` before the start);
3. replay [start, end) step by step through the running loop (`flows.replay`): the serving app
   answers every prediction event over HTTP, `drift` runs on each step's window, its event starts
   `retrain` through Prefect's automation, the gate decides, and (releases on, the spec's default)
   the version it passes is released: the `release` flow decides its shadow and canary stages on
   the following steps' rows; serving switches;
4. meanwhile a worker process fits the scheduled reference policy (every `schedule_every`);
5. the scorecard: per month (in the spine's time zone) the drift verdicts, the top drifted
   features, the task's metric (ROC AUC, or MAE) of the loop and of both reference policies on the
   same served rows, retrains and promotions; the totals; an HTML report.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pandas as pd

from featureloop.backtest.replay import steps
from featureloop.operations.prefect_server import LocalServer
from featureloop.params import DriftParams, TrainParams, drift_params_for
from featureloop.project.spec import ProjectSpec, load_spec, parse_duration
from featureloop.settings import Settings
from flows.replay import Week
from flows.scorecard import print_scorecard, scorecard, write_report

__all__ = ["print_scorecard", "write_report"]  # the CLI and the tests print and write through here


@dataclass(frozen=True)
class Plan:
    """A backtest's times: the replay's [start, end), its step, the first champion's window, and
    the span every retrain (scheduled or triggered) learns from."""

    start: datetime
    end: datetime
    step: timedelta
    first_model: tuple[datetime, datetime]
    schedule_every: timedelta
    train_days: int


def plan(spec: ProjectSpec, offline_dir: Path) -> Plan:
    """The backtest of `spec` (its `backtest` section), with the data's range where it says nothing."""
    from featureloop.sql import quote_identifier, quote_literal, session

    b = spec.backtest
    first_train = parse_duration(b.first_train)
    if b.start is None or b.end is None:
        path = offline_dir / f"{spec.spine.table}.parquet"
        with session() as con:
            lo, hi = con.execute(
                f"SELECT min({quote_identifier(spec.spine.time)}), max({quote_identifier(spec.spine.time)}) "
                f"FROM read_parquet({quote_literal(str(path))})"
            ).fetchone() or (None, None)
        if lo is None:
            raise ValueError(f"{path.name} holds no prediction events: nothing to replay")
        first, last = (pd.Timestamp(t).tz_convert("UTC").to_pydatetime() for t in (lo, hi))
    start = b.start or first + first_train
    end = b.end or last + timedelta(seconds=1)
    if start >= end:
        raise ValueError(
            f"backtest: the replay's start {start.isoformat()} is not before its end {end.isoformat()}: "
            "set backtest.start and backtest.end in the spec, or a shorter first_train"
        )
    window = (b.first_model.start, b.first_model.end) if b.first_model else (start - first_train, start)
    return Plan(
        start=start,
        end=end,
        step=parse_duration(b.step),
        first_model=window,
        schedule_every=parse_duration(b.schedule_every),
        train_days=parse_duration(spec.training.window).days,
    )


def reset_replay_state(settings: Settings) -> None:
    """A replay starts from nothing served: no online store, prediction log, drift history."""
    for folder in (
        settings.feast_dir,
        settings.prediction_log_dir,
        settings.drift_dir,
        settings.data_dir / "replay",
    ):
        shutil.rmtree(folder, ignore_errors=True)


def window_drift_params(spec: ProjectSpec) -> Callable[[datetime, datetime], DriftParams]:
    """The `drift` flow's form for one replayed window: the project's thresholds (`monitoring`, its
    skew sample too: the replay materialises every view up to the window's end before the run);
    outcomes known by the window's end count as labels."""

    def form(start: datetime, end: datetime) -> DriftParams:
        return drift_params_for(spec.monitoring, window_start=start, window_end=end, labels_as_of=end)

    return form


def force_champion(settings: Settings, version: str) -> None:
    """The replay starts from the first model, whatever an earlier backtest left as champion, and with
    no release in progress: one an earlier backtest left live would go on in this one (its version
    trained on data this replay has not reached yet)."""
    from featureloop.release.state import finish, in_progress
    from featureloop.release.tags import ROLLED_BACK
    from featureloop.training.registry import get_version, open_tracking, promote

    client, _ = open_tracking(settings)
    live = in_progress(client, settings.model_name)
    if live is not None:
        finish(
            client, live, ROLLED_BACK, f"{live.tags.get('release.stage')}: ended when a new backtest started"
        )
    promote(client, get_version(client, settings.model_name, version))


@contextlib.contextmanager
def weekly_policy(
    settings: Settings, week_starts: list[datetime], params: TrainParams, train_days: int
) -> Iterator[Any]:
    """The scheduled reference policy's fits (one per start), in a worker process (one core) beside
    the replay; the worker is stopped when the block ends, also when the replay fails."""
    from featureloop.backtest.policies import fit_weekly

    # At the lowest priority: the replay is the critical path, the fits are needed only at its end
    # and fill the cores' idle moments (serving and the replay mostly take turns).
    pool = get_context("spawn").Pool(1, initializer=os.nice, initargs=(19,))
    try:
        yield pool.apply_async(
            fit_weekly, (settings.model_dump_json(), week_starts, train_days, params.model_dump_json())
        )
    finally:
        pool.terminate()
        pool.join()


def quiet_prefect_console() -> None:
    """Flow and task run logs still go to the Prefect API (the UI shows them), not to this console:
    the demo prints its own progress."""
    import logging

    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger(), *(logging.getLogger(n) for n in list(logging.Logger.manager.loggerDict))]
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, PrefectConsoleHandler):
                handler.setLevel(logging.WARNING)


def run_replay_phase(
    settings: Settings,
    first_version: str,
    report: Callable[[str], None],
    server: LocalServer | None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    share: float = 1.0,
    releases: bool | None = None,
) -> tuple[list[Week], dict[str, Any]]:
    """Replay [start, end) (default: the spec's backtest plan), then score the policies (the
    scheduled policy's fits run in a worker meanwhile)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from featureloop.featurestore.store import open_store
    from flows.replay import replay

    quiet_prefect_console()
    spec = load_spec(settings.feature_repo)
    the = plan(spec, settings.offline_dir)
    start, end = start or the.start, end or the.end
    fit_starts = list(steps(start, end, the.schedule_every))

    api = None
    if server is not None:  # else: the Prefect server the settings already name
        server.wait_healthy()
        report(f"prefect server: up at {server.url}")
        api = server.api

    def progress(w: Week) -> None:
        d = w.drift
        verdict = {True: "DRIFT", False: "no drift", None: "no verdict"}[d.get("drifted")]
        name, value = ("MAE", d.get("mae")) if spec.task.type == "regression" else ("AUC", d.get("auc"))
        figure = f"{value:.4g}" if value is not None else "-"
        line = (
            f"window {w.start.date()}: {w.served:,} {spec.spine.table} served by v{w.serving_version}, {verdict} "
            f"({100 * (d.get('share') or 0):.0f}% of features), {name} {figure}"
        )
        if d.get("skew_checked"):
            line += f", skew {d['skew_mismatches']} mismatched values in {d['skew_checked']} entities"
        if w.release and w.release.get("verdict") not in (None, "wait"):
            ended = {
                "pass": "-> canary" if w.release["stage"] == "shadow" else "PROMOTED",
                "fail": "ROLLED BACK",
            }
            line += f"; release v{w.release['version']} {w.release['stage']} {ended.get(w.release['verdict'], w.release['verdict'])}"
        if d.get("held"):
            line += "; event held (a release is live)"
        if w.retrain:
            outcome = (
                "PROMOTED"
                if w.retrain["promoted"]
                else "released: shadow"
                if w.retrain.get("released")
                else "kept out"
            )
            line += f"; event -> retrain v{w.retrain['version']} {outcome}"
        parts = "+".join(
            f"{w.seconds[k]:.1f}"
            for k in ("serve", "drift", "release", "trigger", "retrain", "swap")
            if k in w.seconds
        )
        report(f"{line} [{parts} s]")

    with (
        weekly_policy(settings, fit_starts, TrainParams(), the.train_days) as weekly,
        # No flow-run heartbeats: this process runs its flows itself and a crash ends the replay
        # (heartbeats find crashed runs of a worker); ending each run would wait for the heartbeat
        # thread's 1 s sleep, 0.5-1 s per run here.
        temporary_settings(
            updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None, **({PREFECT_API_URL: api} if api else {})}
        ),
    ):
        weeks = replay(
            settings,
            open_store(settings),
            start,
            end,
            window_drift_params(spec),
            step=the.step,
            train_days=the.train_days,
            share=share,
            releases=releases,
            report=report,
            on_week=progress,
        )
        report("waiting for the weekly policy's fits")
        fitted = weekly.get()
    return weeks, scorecard(settings, weeks, first_version, fitted, fit_starts)
