"""`make demo`: the loop end to end on the real 2013 flights, and the proof that it pays.

1. prepare the data, apply the Feast repository, load the online store as of 1 March 2013;
2. train the first champion on January-February;
3. replay March-December week by week through the running loop (`flows.replay`): the serving app
   answers every flight over HTTP, `drift` runs on each week, its event starts `retrain` through
   Prefect's automation, the gate decides, serving switches;
4. meanwhile a worker process fits the "retrain every week" reference policy;
5. the scorecard: per month the drift verdicts, the top drifted features, the ROC AUC of the loop
   and of both reference policies on the same served rows, retrains and promotions; the totals;
   an HTML report.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from html import escape
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pandas as pd

from featureloop.backtest.replay import steps
from featureloop.monitoring.thresholds import DriftConfig
from featureloop.operations.prefect_server import LocalServer
from featureloop.params import DriftParams, TrainParams
from featureloop.settings import Settings
from flows.replay import WEEK, Week

REPLAY_START = datetime(2013, 3, 1, 5, tzinfo=UTC)  # midnight, 1 March 2013, in New York
REPLAY_END = datetime(2014, 1, 1, 5, tzinfo=UTC)
TRAIN_DAYS = 56
# The first model: January and February 2013 (UTC), the champion the replay starts from.
FIRST_TRAIN = {"train_start": datetime(2013, 1, 1, tzinfo=UTC), "train_end": datetime(2013, 3, 1, tzinfo=UTC)}


def reset_replay_state(settings: Settings) -> None:
    """A replay starts from nothing served: no online store, prediction log, drift history."""
    for folder in (
        settings.feast_dir,
        settings.prediction_log_dir,
        settings.drift_dir,
        settings.data_dir / "replay",
    ):
        shutil.rmtree(folder, ignore_errors=True)


# The demo's drift form: on weekly windows of 2013, the seasons move weather and the 7-day
# statistics a little every week (at the default PSI floor of 0.02 over half the features drift in
# every window, and the loop would retrain as often as a weekly schedule). A floor of 0.2 (PSI's
# conventional "significant shift") keeps the large shifts; decay on delayed labels catches the rest.
# Dataset drift at 40% of the features (not half): chosen by `bench/policy_whatif.py`, which replays
# trigger rules over the weekly policy's own fits (the figures and the caveat are in bench/README.md).
DEMO_MIN_PSI = 0.2
DEMO_DRIFT_SHARE = 0.4


def weekly_drift_params(start: datetime, end: datetime) -> DriftParams:
    """The `drift` flow's form for one replayed week: outcomes known by the week's end count as
    labels; no skew check (the replay's store holds what was asked for, not every entity)."""
    return DriftParams(
        window_start=start,
        window_end=end,
        labels_as_of=end,
        skew_sample=0,
        drift=DriftConfig(min_psi=DEMO_MIN_PSI, share_threshold=DEMO_DRIFT_SHARE),
    )


def force_champion(settings: Settings, version: str) -> None:
    """The replay starts from the January-February model, whatever an earlier demo left as champion."""
    from featureloop.training.registry import connect, get_version, promote

    client, _ = connect(settings.tracking_uri, settings.artifact_location, settings.experiment)
    promote(client, get_version(client, settings.model_name, version))


@contextlib.contextmanager
def weekly_policy(settings: Settings, week_starts: list[datetime], params: TrainParams) -> Iterator[Any]:
    """The weekly reference policy's fits, in a worker process (one core) beside the replay; the
    worker is stopped when the block ends, also when the replay fails."""
    from featureloop.backtest.policies import fit_weekly

    # At the lowest priority: the replay is the critical path, the fits are needed only at its end
    # and fill the cores' idle moments (serving and the replay mostly take turns).
    pool = get_context("spawn").Pool(1, initializer=os.nice, initargs=(19,))
    try:
        yield pool.apply_async(
            fit_weekly, (settings.model_dump_json(), week_starts, TRAIN_DAYS, params.model_dump_json())
        )
    finally:
        pool.terminate()
        pool.join()


def scorecard(
    settings: Settings, weeks: list[Week], first_version: str, weekly: list[bytes]
) -> dict[str, Any]:
    """Per month and in total: verdicts, top drifted features, AUC of each policy, retrains."""
    from featureloop.backtest.policies import label_outcomes, metric_by, read_served, score_policies
    from featureloop.project.spec import load_spec
    from featureloop.training.registry import connect, get_version, load_model

    client, _ = connect(settings.tracking_uri, settings.artifact_location, settings.experiment)
    first = get_version(client, settings.model_name, first_version)
    inputs = json.loads(first.tags["model_inputs"])
    never = (load_model(first.uri), inputs["numeric"], inputs["categorical"])
    spec = load_spec(settings.feature_repo)
    spine = pd.read_parquet(settings.offline_dir / f"{spec.spine.table}.parquet")
    served = read_served(settings.prediction_log_dir, weeks[0].start, weeks[-1].end, spec.spine.id)
    frame = label_outcomes(served, spine, spec)
    starts = pd.DatetimeIndex([pd.Timestamp(w.start) for w in weeks])

    def week_of(times: pd.Series) -> pd.Series:
        position = starts.searchsorted(pd.to_datetime(times, utc=True), side="right") - 1
        return pd.Series(starts[position], index=times.index)

    scored = score_policies(frame, never, [pickle.loads(b) for b in weekly], week_of, spec.task.type)
    months = metric_by(scored, "month", spec.task.type)
    per_week = metric_by(scored, "week", spec.task.type)
    # Weeks count in the month (New York time) they start in.
    by_month: defaultdict[str, dict[str, Any]] = defaultdict(
        lambda: {"weeks": 0, "drifted": 0, "features": Counter(), "retrains": 0, "promotions": 0}
    )
    for w in weeks:
        entry = by_month[pd.Timestamp(w.start).tz_convert(spec.spine.time_zone).strftime("%Y-%m")]
        entry["weeks"] += 1
        entry["drifted"] += bool(w.drift.get("drifted"))
        entry["features"].update(w.drift.get("drifted_features") or [])
        entry["retrains"] += w.retrain is not None
        entry["promotions"] += bool(w.retrain and w.retrain.get("promoted"))
    rows = []
    for record in months.to_dict("records"):
        extra = by_month[record["month"]]
        rows.append(
            {
                **record,
                "weeks": extra["weeks"],
                "drifted_weeks": extra["drifted"],
                "top_features": [name for name, _ in extra["features"].most_common(3)],
                "retrains": extra["retrains"],
                "promotions": extra["promotions"],
            }
        )
    retrains = sum(w.retrain is not None for w in weeks)
    totals = {
        policy: {"mean_auc": float(months[policy].mean()), "retrains": n}
        for policy, n in (("drift-triggered", retrains), ("never", 0), ("weekly", len(weekly)))
    }
    promotions = sum(bool(w.retrain and w.retrain.get("promoted")) for w in weeks)
    weeks_auc = [{**r, "week": pd.Timestamp(r["week"]).isoformat()} for r in per_week.to_dict("records")]
    return {
        "months": rows,
        "weeks": weeks_auc,
        "totals": totals,
        "promotions": promotions,
        "labelled": len(frame),
    }


def print_scorecard(card: dict[str, Any], echo: Callable[[str], None]) -> None:
    echo(
        "\nmonth    flights  drift (weeks)  top drifted features                       AUC loop  never  weekly  retrains (promoted)"
    )
    for row in card["months"]:
        features = ", ".join(row["top_features"]) or "-"
        echo(
            f"{row['month']}  {row['rows']:>7,}  {row['drifted_weeks']} of {row['weeks']:<9} {features[:42]:<42} "
            f"{row['drift-triggered']:8.4f} {row['never']:6.4f} {row['weekly']:7.4f}  {row['retrains']} ({row['promotions']})"
        )
    t = card["totals"]
    echo(
        f"totals: mean monthly AUC  drift-triggered {t['drift-triggered']['mean_auc']:.4f} with "
        f"{t['drift-triggered']['retrains']} retrains ({card['promotions']} promoted), "
        f"never {t['never']['mean_auc']:.4f} with 0, weekly {t['weekly']['mean_auc']:.4f} with {t['weekly']['retrains']}"
    )


def write_report(path: Path, card: dict[str, Any], weeks: list[Week]) -> Path:
    """The replay's report: the table, weekly AUC lines, the retrain events (inline SVG, no JavaScript)."""
    from featureloop.monitoring.report import line_svg

    chart = line_svg(
        {p: [r[p] for r in card["weeks"]] for p in ("drift-triggered", "never", "weekly")},
        [r["week"][5:10] for r in card["weeks"]], "ROC AUC per replayed week, same served rows",
    )  # fmt: skip
    head = "<tr><th>month</th><th>flights</th><th>drifted weeks</th><th>top drifted features</th><th>AUC loop</th><th>never</th><th>weekly</th><th>retrains (promoted)</th></tr>"
    body = "".join(
        f"<tr><td>{r['month']}</td><td>{r['rows']:,}</td><td>{r['drifted_weeks']} of {r['weeks']}</td>"
        f"<td>{escape(', '.join(r['top_features']) or '-')}</td><td>{r['drift-triggered']:.4f}</td>"
        f"<td>{r['never']:.4f}</td><td>{r['weekly']:.4f}</td><td>{r['retrains']} ({r['promotions']})</td></tr>"
        for r in card["months"]
    )
    events = "".join(
        f"<li>{w.end.date()}: {escape('; '.join(w.drift.get('reasons') or []))} &rarr; version {escape(str(w.retrain['version']))} "
        f"{'promoted' if w.retrain['promoted'] else 'kept out'} ({escape(w.retrain['reason'])})</li>"
        for w in weeks
        if w.retrain
    )
    t = card["totals"]
    totals = ", ".join(
        f"{escape(p)}: mean AUC {v['mean_auc']:.4f}, {v['retrains']} retrains" for p, v in t.items()
    )
    html = (
        "<!doctype html><html><head><meta charset='utf-8'><title>featureloop replay of 2013</title>"
        "<style>body{font:14px sans-serif;margin:24px}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:3px 8px;text-align:right}td:nth-child(4){text-align:left}.t{font-weight:bold}.a{font-size:11px}</style>"
        f"</head><body><h1>Replay of 2013: drift-triggered retraining against two reference policies</h1>"
        f"<p>{totals}</p>{chart}<table>{head}{body}</table><h2>Retrain events</h2><ul>{events or '<li>none</li>'}</ul>"
        "</body></html>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html)
    return path


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
    start: datetime = REPLAY_START,
    end: datetime = REPLAY_END,
    share: float = 1.0,
) -> tuple[list[Week], dict[str, Any]]:
    """Replay, then score the policies (the weekly fits run in a worker meanwhile)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from featureloop.featurestore.store import open_store
    from flows.replay import replay

    quiet_prefect_console()

    api = None
    if server is not None:  # else: the Prefect server the settings already name
        server.wait_healthy()
        report(f"prefect server: up at {server.url}")
        api = server.api

    def progress(w: Week) -> None:
        d = w.drift
        verdict = {True: "DRIFT", False: "no drift", None: "no verdict"}[d.get("drifted")]
        auc = f"{d['auc']:.3f}" if d.get("auc") is not None else "-"
        line = (
            f"week {w.start.date()}: {w.served:,} flights served by v{w.serving_version}, {verdict} "
            f"({100 * (d.get('share') or 0):.0f}% of features), AUC {auc}"
        )
        if w.retrain:
            line += f"; event -> retrain v{w.retrain['version']} {'PROMOTED' if w.retrain['promoted'] else 'kept out'}"
        parts = "+".join(
            f"{w.seconds[k]:.1f}" for k in ("serve", "drift", "trigger", "retrain", "swap") if k in w.seconds
        )
        report(f"{line} [{parts} s]")

    with (
        weekly_policy(settings, list(steps(start, end, WEEK)), TrainParams()) as weekly,
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
            weekly_drift_params,
            train_days=TRAIN_DAYS,
            share=share,
            report=report,
            on_week=progress,
        )
        report("waiting for the weekly policy's fits")
        fitted = weekly.get()
    return weeks, scorecard(settings, weeks, first_version, fitted)
