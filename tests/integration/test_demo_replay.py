"""The demo's replay, on synthetic flights with drift injected, against a real Prefect server, the
serving app as a process over HTTP, MLflow and Feast: the same code `make demo` runs on 2013.

Four replayed weeks after a champion trained on one: the first week is the no-drift control (no
event); from the second, wind speed sits 3 reference standard deviations above anything the
champion saw (strong wind delays flights). The drift flow's event makes the automation create a
`retrain` run, the replay executes it, the gate promotes, serving switches, and the loop's last
week beats the never-retrained model on the same served rows; the weekly policy fits one model a
week in its worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from data.prepare import prepare_dataset
from data.synthetic import Drift, SyntheticSpec, generate, write_raw
from featureloop.settings import Settings
from tests.integration.conftest import remove_retrain_deployment

pytestmark = pytest.mark.integration

START = pd.Timestamp("2013-01-01", tz="America/New_York")
SPEC = SyntheticSpec(
    days=42, flights_per_hour=10, n_aircraft=30, seed=5,
    drift=Drift(at=START + pd.Timedelta(days=21), features=("wind_speed",), shift=3.0),
)  # fmt: skip
TRAIN = (datetime(2013, 1, 8, 5, tzinfo=UTC), datetime(2013, 1, 15, 5, tzinfo=UTC))
REPLAY = (datetime(2013, 1, 15, 5, tzinfo=UTC), datetime(2013, 2, 12, 5, tzinfo=UTC))


@pytest.fixture(scope="module", params=[False, True], ids=["releases-off", "releases-on"])
def replayed(
    prefect_server: None, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[dict[str, Any]]:
    """The replay with each retrain the gate passes promoted at once, then released on live traffic."""
    from featureloop.featurestore.materialization import materialize_window
    from featureloop.featurestore.store import apply_repo, open_store
    from featureloop.params import TrainParams
    from featureloop.training.pipeline import run_training
    from flows.backtest import force_champion, reset_replay_state, run_replay_phase

    root = tmp_path_factory.mktemp("demo")
    raw = write_raw(generate(SPEC), root / "raw")
    env = {
        "FEATURELOOP_DATA_DIR": str(root / "data"),
        "FEATURELOOP_RAW_DIR": str(raw),
        "FEATURELOOP_MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        settings = Settings()
        prepare_dataset(raw, settings.versions_dir, settings.offline_dir)
        reset_replay_state(settings)
        apply_repo(settings)
        materialize_window(open_store(settings), REPLAY[0])
        first = run_training(
            settings, TrainParams(train_start=TRAIN[0], train_end=TRAIN[1]), report=lambda _m: None
        )
        force_champion(settings, first["version"])
        lines: list[str] = []
        weeks, card = run_replay_phase(
            settings,
            first["version"],
            lines.append,
            None,
            start=REPLAY[0],
            end=REPLAY[1],
            releases=request.param,
        )
        flights = pd.read_parquet(settings.offline_dir / "flights.parquet")
        try:
            yield {
                "settings": settings,
                "first": first,
                "weeks": weeks,
                "card": card,
                "lines": lines,
                "flights": flights,
                "releases": request.param,
            }
        finally:
            remove_retrain_deployment()


def test_every_flight_of_every_week_is_served_over_http_and_logged(replayed: dict[str, Any]) -> None:
    flights, weeks = replayed["flights"], replayed["weeks"]
    assert len(weeks) == 4
    for week in weeks:
        sched = flights["sched_dep_ts"]
        due = ((sched >= pd.Timestamp(week.start)) & (sched < pd.Timestamp(week.end))).sum()
        assert week.served == due > 1000
        assert week.drift["rows"] == week.served or week.serving_version != week.drift["model_version"]
    landed = flights[(flights["sched_dep_ts"] >= pd.Timestamp(REPLAY[0])) & flights["arr_delay"].notna()]
    assert replayed["card"]["labelled"] == len(landed)  # every landed flight scored, none twice


def test_the_control_week_triggers_nothing_and_the_drift_starts_retrain_through_prefect(
    replayed: dict[str, Any],
) -> None:
    from prefect.client.orchestration import get_client

    weeks = replayed["weeks"]
    assert weeks[0].drift["event"] is False and weeks[0].retrain is None
    triggered = [w for w in weeks if w.retrain is not None]
    assert triggered, [(w.drift["reasons"], w.drift["drifted_features"]) for w in weeks]
    assert all(w.drift["event"] for w in triggered) and all(w.start >= weeks[1].start for w in triggered)
    with get_client(sync_client=True) as client:
        for week in triggered:
            run = client.read_flow_run(week.retrain_run)
            assert run.state is not None and run.state.is_completed()
            assert run.deployment_id is not None  # created by the automation, for the deployment
            assert run.parameters["params"]["window_end"] == week.drift["window_end"]
    promoted = [w for w in weeks if w.promoted]
    assert promoted, "\n".join(replayed["lines"])  # the better model must be promoted
    after = [w for w in weeks if w.start > promoted[0].start]
    if replayed["releases"]:
        # Released: shadow on the next week's rows, canary on the one after, promoted at its end.
        (first, *_) = replayed["card"]["retrain_outcomes"]
        assert first["outcome"] == "promoted after shadow and canary", first
        assert [d.split()[:2] for d in first["decisions"]] == [["shadow", "pass"], ["canary", "pass"]]
        assert promoted[0] is weeks[-1] and promoted[0].promoted == first["version"]
        assert all(w.retrain is None or w.retrain["promoted"] is False for w in weeks)
    else:
        assert after and after[0].serving_version == promoted[0].promoted  # serving switched


def test_the_loop_beats_never_retraining_after_the_drift_and_the_weekly_policy_fits_each_week(
    replayed: dict[str, Any],
) -> None:
    card, weeks = replayed["card"], replayed["weeks"]
    seen = [
        (w["week"][:10], *(round(w[p], 3) for p in ("drift-triggered", "never", "weekly")))
        for w in card["weeks"]
    ]
    promoted = next(i for i, w in enumerate(weeks) if w.promoted)

    def mean(policy: str, rows: list[dict[str, Any]]) -> float:
        return sum(r[policy] for r in rows) / len(rows)

    drifted = card["weeks"][1:]
    if replayed["releases"]:
        # Promoted at the last week's end; its shadow week scored the same rows as the champion (never's
        # model): better on them, paired.
        shadow = next(w.release for w in weeks if w.release and w.release["stage"] == "shadow")
        (auc,) = [c for c in shadow["checks"] if c["check"] == "roc_auc"]
        assert auc["challenger"] > auc["champion"] + 0.01 and auc["better"], shadow["summary"]
    else:
        served_by_new = card["weeks"][promoted + 1 :]  # the weeks after the promotion
        assert mean("drift-triggered", served_by_new) > mean("never", served_by_new) + 0.01, seen
    assert mean("weekly", drifted) > mean("never", drifted) + 0.01, seen
    assert card["totals"]["weekly"]["retrains"] == 4
    assert card["totals"]["never"]["retrains"] == 0
    assert card["totals"]["drift-triggered"]["retrains"] == sum(
        w.retrain is not None for w in replayed["weeks"]
    )
    assert sum(m["rows"] for m in card["months"]) == card["labelled"]
    for row in card["months"]:
        assert 0.5 < row["never"] < 1 and 0.5 < row["weekly"] < 1 and 0.5 < row["drift-triggered"] < 1
    assert any(line.startswith("window 2013-01-15") for line in replayed["lines"])


def test_the_scorecard_prints_a_table_and_the_report_is_written(
    replayed: dict[str, Any], tmp_path: Any
) -> None:
    from flows.backtest import print_scorecard

    out: list[str] = []
    print_scorecard(replayed["card"], out.append)
    totals = next(i for i, line in enumerate(out) if line.startswith("totals: mean monthly AUC"))
    assert out[1].startswith("2013-01") and out[totals + 1] == ""
    assert out[totals + 2].startswith("retrain  window end  version  where it ended")
    outcomes = replayed["card"]["retrain_outcomes"]
    assert len(out) == totals + 3 + len(outcomes) and all(
        r["outcome"] in html_of(replayed, tmp_path) for r in outcomes
    )
    html = html_of(replayed, tmp_path)
    assert html.count("<polyline") == 3 and "Retrain events" in html


def html_of(replayed: dict[str, Any], tmp_path: Any) -> str:
    from flows.backtest import write_report

    return write_report(tmp_path / "replay.html", replayed["card"], replayed["weeks"]).read_text()
