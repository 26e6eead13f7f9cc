"""A backtest's scorecard: per month (in the spine's time zone) the drift verdicts, the top drifted
features, the task's metric of the loop and of both reference policies on the same served rows,
retrains and promotions; the totals; the printed table and the HTML report."""

from __future__ import annotations

import json
import pickle
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from featureloop.settings import Settings
from flows.replay import Week


def scorecard(
    settings: Settings, weeks: list[Week], first_version: str, weekly: list[bytes], fit_starts: list[datetime]
) -> dict[str, Any]:
    """Per month and in total: verdicts, top drifted features, the task's metric of each policy,
    retrains."""
    from featureloop.backtest.policies import label_outcomes, metric_by, read_served, score_policies
    from featureloop.project.spec import load_spec
    from featureloop.training.registry import get_version, load_model, open_tracking

    client, _ = open_tracking(settings)
    first = get_version(client, settings.model_name, first_version)
    inputs = json.loads(first.tags["model_inputs"])
    never = (load_model(first.uri), inputs["numeric"], inputs["categorical"])
    spec = load_spec(settings.feature_repo)
    spine = pd.read_parquet(settings.offline_dir / f"{spec.spine.table}.parquet")
    served = read_served(settings.prediction_log_dir, weeks[0].start, weeks[-1].end, spec.spine.id)
    frame = label_outcomes(served, spine, spec)
    starts = pd.DatetimeIndex([pd.Timestamp(t) for t in fit_starts])

    def week_of(times: pd.Series) -> pd.Series:
        position = starts.searchsorted(pd.to_datetime(times, utc=True), side="right") - 1
        return pd.Series(starts[position], index=times.index)

    scored = score_policies(frame, never, [pickle.loads(b) for b in weekly], week_of, spec.task.type)
    months = metric_by(scored, "month", spec.task.type)
    per_week = metric_by(scored, "week", spec.task.type)
    # Windows count in the month (the spine's time zone) they start in.
    by_month: defaultdict[str, dict[str, Any]] = defaultdict(
        lambda: {"weeks": 0, "drifted": 0, "features": Counter(), "retrains": 0, "promotions": 0}
    )
    for w in weeks:
        entry = by_month[pd.Timestamp(w.start).tz_convert(spec.spine.time_zone).strftime("%Y-%m")]
        entry["weeks"] += 1
        entry["drifted"] += bool(w.drift.get("drifted"))
        entry["features"].update(w.drift.get("drifted_features") or [])
        entry["retrains"] += w.retrain is not None
        entry["promotions"] += w.promoted is not None
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
        policy: {"mean": float(months[policy].mean()), "retrains": n}
        for policy, n in (("drift-triggered", retrains), ("never", 0), ("weekly", len(weekly)))
    }
    promotions = sum(w.promoted is not None for w in weeks)
    weeks_auc = [{**r, "week": pd.Timestamp(r["week"]).isoformat()} for r in per_week.to_dict("records")]
    return {
        "months": rows,
        "weeks": weeks_auc,
        "totals": totals,
        "promotions": promotions,
        "retrain_outcomes": retrain_outcomes(client, weeks),
        "labelled": len(frame),
        "metric": "AUC" if spec.task.type == "binary" else "MAE",
        "rows_are": spec.spine.table,
        "windows_are": "weeks" if spec.backtest.step == "7d" else "windows",
        # The scheduled policy's name: `weekly` (the worked example's), else its period.
        "scheduled_as": "weekly"
        if spec.backtest.schedule_every == "7d"
        else f"every {spec.backtest.schedule_every}",
    }


def retrain_outcomes(client: Any, weeks: list[Week]) -> list[dict[str, Any]]:
    """Each retrain: its week, version, the gate's answer and where its release ended (the stage at
    which it was promoted or rolled back, with the reason, from the version's tags in MLflow)."""
    from featureloop.release import tags

    decided: defaultdict[str, list[str]] = defaultdict(list)
    for w in weeks:
        if w.release and w.release.get("verdict") not in (None, "wait"):
            decided[str(w.release["version"])].append(
                f"{w.release['stage']} {w.release['verdict']} {w.end.date()}"
            )
    found = []
    for w in weeks:
        if not w.retrain:
            continue
        version = str(w.retrain["version"])
        mine = {k: v for k, v in client.get_model_version(w.retrain["model"], version).tags.items()}
        stage = mine.get(tags.STAGE)
        if w.retrain.get("promoted"):
            outcome = "promoted at once (releases off)"
        elif not w.retrain.get("released"):
            outcome = "refused by the gate"
        elif stage == tags.PROMOTED:
            outcome = "promoted after shadow and canary"
        elif stage == tags.ROLLED_BACK:
            at = tags.CANARY if tags.started(tags.CANARY) in mine else tags.SHADOW
            outcome = f"rolled back at {at}: {mine.get(tags.REASON, '')}"
        else:
            outcome = f"in {stage} when the replay ended"
        found.append({"week": w.end.date().isoformat(), "version": version, "outcome": outcome,
                      "decisions": decided.get(version, [])})  # fmt: skip
    return found


def print_scorecard(card: dict[str, Any], echo: Callable[[str], None]) -> None:
    metric, rows_are, windows = card["metric"], card["rows_are"], card.get("windows_are", "windows")
    scheduled = card.get("scheduled_as", "weekly")
    echo(
        f"\nmonth    {rows_are:>7}  drift ({windows})  top drifted features                       {metric} loop  never  {scheduled}  retrains (promoted)"
    )
    for row in card["months"]:
        features = ", ".join(row["top_features"]) or "-"
        echo(
            f"{row['month']}  {row['rows']:>7,}  {row['drifted_weeks']} of {row['weeks']:<9} {features[:42]:<42} "
            f"{row['drift-triggered']:8.4f} {row['never']:6.4f} {row['weekly']:7.4f}  {row['retrains']} ({row['promotions']})"
        )
    t = card["totals"]
    echo(
        f"totals: mean monthly {metric}  drift-triggered {t['drift-triggered']['mean']:.4f} with "
        f"{t['drift-triggered']['retrains']} retrains ({card['promotions']} promoted), "
        f"never {t['never']['mean']:.4f} with 0, {scheduled} {t['weekly']['mean']:.4f} with {t['weekly']['retrains']}"
    )
    outcomes = card.get("retrain_outcomes") or []
    if outcomes:
        echo("")
        echo("retrain  window end  version  where it ended")
        for i, r in enumerate(outcomes, 1):
            echo(f"{i:>7}  {r['week']}  v{r['version']:<6}  {r['outcome'][:150]}")


def write_report(path: Path, card: dict[str, Any], weeks: list[Week]) -> Path:
    """The replay's report: the table, weekly AUC lines, the retrain events (inline SVG, no JavaScript)."""
    from featureloop.monitoring.report import line_svg

    chart = line_svg(
        {p: [r[p] for r in card["weeks"]] for p in ("drift-triggered", "never", "weekly")},
        [r["week"][5:10] for r in card["weeks"]], f"{card['metric']} per replayed window, same served rows",
    )  # fmt: skip
    head = (
        f"<tr><th>month</th><th>{escape(card['rows_are'])}</th><th>drifted windows</th><th>top drifted features</th>"
        f"<th>{card['metric']} loop</th><th>never</th><th>{escape(card.get('scheduled_as', 'weekly'))}</th><th>retrains (promoted)</th></tr>"
    )
    body = "".join(
        f"<tr><td>{r['month']}</td><td>{r['rows']:,}</td><td>{r['drifted_weeks']} of {r['weeks']}</td>"
        f"<td>{escape(', '.join(r['top_features']) or '-')}</td><td>{r['drift-triggered']:.4f}</td>"
        f"<td>{r['never']:.4f}</td><td>{r['weekly']:.4f}</td><td>{r['retrains']} ({r['promotions']})</td></tr>"
        for r in card["months"]
    )
    outcomes = {r["version"]: r["outcome"] for r in card.get("retrain_outcomes") or []}
    events = "".join(
        f"<li>{w.end.date()}: {escape('; '.join(w.drift.get('reasons') or []))} &rarr; version {escape(str(w.retrain['version']))}: "
        f"{escape(outcomes.get(str(w.retrain['version']), 'promoted' if w.retrain['promoted'] else 'kept out'))}</li>"
        for w in weeks
        if w.retrain
    )
    t = card["totals"]
    totals = ", ".join(
        f"{escape(p)}: mean {card['metric']} {v['mean']:.4f}, {v['retrains']} retrains" for p, v in t.items()
    )
    html = (
        "<!doctype html><html><head><meta charset='utf-8'><title>featureloop backtest</title>"
        "<style>body{font:14px sans-serif;margin:24px}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:3px 8px;text-align:right}td:nth-child(4){text-align:left}.t{font-weight:bold}.a{font-size:11px}</style>"
        f"</head><body><h1>Backtest: drift-triggered retraining against two reference policies</h1>"
        f"<p>{totals}</p>{chart}<table>{head}{body}</table><h2>Retrain events</h2><ul>{events or '<li>none</li>'}</ul>"
        "</body></html>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html)
    return path
