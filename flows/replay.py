"""`make demo`'s replay: 2013 week by week through the running loop, as production would live it.

Hour by hour the online store is brought up to the hour (`featureloop.backtest.replay.OnlineFeed`) and that
hour's prediction events (the project's spine) are sent to the serving app over HTTP as a product service would; serving answers
from the champion and logs what it served. At the end of each week the `drift` flow (a Prefect flow
run) checks the week's served predictions against the champion's reference, and its decay check
uses the outcomes known by then (delayed labels). When it sends `featureloop.drift.detected`, the
automation of the `retrain` deployment creates a flow run from the event's payload; the replay
executes that run here, in a warm process, as a worker would (`prefect.flow_engine.run_flow`: the
run, its states, logs and subflow live in Prefect like any other); the gate decides, and serving
switches models by itself when the champion alias moves. The replay waits for the switch before
the next hour, so every figure is reproducible.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pandas as pd

from featureloop.backtest.replay import OnlineFeed, Requests, steps
from featureloop.params import DriftParams
from featureloop.project.spec import load_spec, parse_duration
from featureloop.settings import Settings
from flows.serving_process import serving_process, wait_logged, wait_plan

WEEK = timedelta(days=7)


@dataclass
class Week:
    """What happened in one replayed week."""

    start: datetime
    end: datetime
    served: int
    serving_version: str
    drift: dict[str, Any]
    retrain: dict[str, Any] | None = None
    retrain_run: str | None = None
    release: dict[str, Any] | None = None  # the release flow's decision at the step's end
    promoted: str | None = None  # the version that became champion at the step's end, if any
    seconds: dict[str, float] = field(default_factory=dict)


def register_retrain(train_days: int | None, releases: bool | None = None) -> UUID:
    """The `retrain` deployment and its automation on `featureloop.drift.detected` (no runner polls it:
    the replay executes the runs the automation creates); `releases`: whether its versions are
    released on live traffic (None: the spec's monitoring.release.enabled)."""
    from flows.deploy import retrain_trigger
    from flows.retrain import retrain

    deployment: Any = retrain.to_deployment(
        name="retrain",
        triggers=[retrain_trigger(train_days, releases)],
        description="Retrain on the recent window when featureloop.drift.detected arrives.",
    )
    return UUID(str(deployment.apply()))


def deployment_runs(deployment_id: UUID) -> set[UUID]:
    """Every run the deployment has (earlier demos' runs live in the same Prefect database)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )
    return {r.id for r in runs}


def _triggered_run(deployment_id: UUID, seen: set[UUID], timeout: float) -> Any:
    """The first run of the deployment that is not in `seen` and has not started, once the
    automation has created it (never an earlier run: Prefect would let it run again)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
            )
            fresh = [r for r in runs if r.id not in seen and r.state is not None and r.state.is_scheduled()]
            if fresh:
                return fresh[0]
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the drift event was sent but the automation created no `retrain` run in {timeout:.0f} s: "
                    "is the Prefect server's triggers service running?"
                )
            time.sleep(0.25)


def run_triggered_retrain(
    deployment_id: UUID, seen: set[UUID], timeout: float = 60
) -> tuple[str, dict[str, Any], float]:
    """Execute the run the automation created for the event, in this process; its id, its result
    and how long the automation took to create it."""
    from prefect.flow_engine import run_flow

    from flows.retrain import retrain

    asked = time.perf_counter()
    run = _triggered_run(deployment_id, seen, timeout)
    created = time.perf_counter() - asked
    seen.add(run.id)
    state: Any = run_flow(retrain, flow_run=run, return_type="state")
    if not state.is_completed():
        raise RuntimeError(f"the retrain run {run.name} ended {state.type.value}: {state.message}")
    return str(run.id), state.result(), created


def replay(
    settings: Settings,
    store: Any,
    start: datetime,
    end: datetime,
    drift_params: Callable[[datetime, datetime], DriftParams],
    *,
    step: timedelta = WEEK,
    train_days: int | None = None,
    share: float = 1.0,
    releases: bool | None = None,
    report: Callable[[str], None] = print,
    on_week: Callable[[Week], None] = lambda _w: None,
) -> list[Week]:
    """Replay [start, end), a drift run every `step` (retrains on `train_days`; default: the spec's
    training.window); with `releases` (default: the spec's monitoring.release.enabled) a retrain the
    gate passes is released, and the `release` flow decides its stage at the end of each step on that
    step's rows. PREFECT_API_URL must point at a Prefect server."""
    from featureloop.params import ReleaseParams
    from flows.drift import drift
    from flows.release import release

    weeks: list[Week] = []
    sent = 0
    # Serving boots (imports, model load) while the requests and the feed are prepared.
    with serving_process(settings, settings.data_dir / "replay" / "serving.log") as ready:
        spec = load_spec(settings.feature_repo)
        spine = pd.read_parquet(settings.offline_dir / f"{spec.spine.table}.parquet")
        feed_every = parse_duration(spec.backtest.feed_every)
        requests = Requests(spine, spec, start, end, feed_every, share)
        feed = OnlineFeed(store, requests)
        report(
            f"replay: {len(requests):,} predictions from {start.date()} to {end.date()}, "
            f"{feed.rows():,} online rows to load"
        )
        if releases is None:
            releases = spec.monitoring.release.enabled
        deployment_id = register_retrain(train_days, releases)
        seen = deployment_runs(deployment_id)
        last = -(-(end - start) // feed_every) - 1
        with httpx.Client(base_url=ready(), timeout=60) as client, ThreadPoolExecutor(1) as writer:
            version = client.get("/ready").json()["model_version"]
            feed.before(0)
            for week_start in steps(start, end, step):
                week_end = min(week_start + step, end)
                t0 = time.perf_counter()
                served = 0
                first = (week_start - start) // feed_every
                for i in range(first, first + -(-(week_end - week_start) // feed_every)):
                    if i > 0:
                        feed.before(i, "late")  # its early rows went in while step i - 1 was answered
                    # The next step's rows for entities this step does not read, written meanwhile.
                    early = writer.submit(feed.before, i + 1, "early") if i < last else None
                    rows = requests.at(i)
                    try:
                        for chunk in range(0, len(rows), settings.predict_max_batch):
                            body = {
                                spec.serving.batch_field: rows[chunk : chunk + settings.predict_max_batch]
                            }
                            response = client.post("/predict", json=body)
                            if response.status_code != 200:
                                raise RuntimeError(
                                    f"/predict answered {response.status_code}: {response.text[:300]}"
                                )
                    finally:
                        if early is not None:
                            early.result()
                    served += len(rows)
                sent += served
                wait_logged(client, sent)
                feed.materialize(week_end)  # the online store as of the window's end, recorded
                t1 = time.perf_counter()
                result = drift(drift_params(week_start, week_end))
                t2 = time.perf_counter()
                # Then the release in progress is decided on the step's rows (they were served under its
                # stage; the drift run held its event meanwhile); then the event's retrain, if any.
                decided = release(ReleaseParams(as_of=week_end)) if releases else None
                if decided is not None and decided["verdict"] not in (None, "wait"):
                    wait_plan(client, settings)
                week = Week(week_start, week_end, served, version, result, release=decided)
                week.seconds = {"serve": t1 - t0, "drift": t2 - t1, "release": time.perf_counter() - t2}
                if decided is not None and (
                    decided["verdict"] == "promoted"
                    or (decided["verdict"] == "pass" and decided["stage"] == "canary")
                ):
                    version = week.promoted = decided["version"]
                t2 = time.perf_counter()
                if result["event"]:
                    week.retrain_run, week.retrain, created = run_triggered_retrain(deployment_id, seen)
                    t3 = time.perf_counter()
                    if week.retrain["promoted"]:
                        version = week.promoted = week.retrain["version"]
                    if week.retrain["promoted"] or week.retrain.get("released"):
                        wait_plan(client, settings)
                    week.seconds |= {
                        "trigger": created,
                        "retrain": t3 - t2 - created,
                        "swap": time.perf_counter() - t3,
                    }
                week.seconds["week"] = time.perf_counter() - t0
                weeks.append(week)
                on_week(week)
        feed.close()
    return weeks
