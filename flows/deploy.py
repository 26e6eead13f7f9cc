"""The deployment server: one long-running process that serves every featureloop flow.

    python -m flows.deploy [--materialize-every 15] [--drift-every 1440] [--release-every 15]
                           [--retrain-days 56] [--no-schedules]

Deployments (each a form in the Prefect UI, from the flows' pydantic parameters):
- `materialize/materialize`: scheduled every `--materialize-every` minutes (incremental, idempotent);
- `drift/drift`: scheduled every `--drift-every` minutes (the last `monitoring.window` of served
  predictions, with the thresholds of the project's spec, feature_repo/project.yaml, as its form's values);
- `train/train`, `tune/tune`, `rollback/rollback`: on demand;
- `release/release`: scheduled every `--release-every` minutes: decides the release in progress when
  its stage's evidence is in (docs/releases.md); a person starts, promotes or rolls one back from its form;
- `retrain/retrain`: triggered by the event `featureloop.drift.detected` (the automation is created
  when this process registers the deployment; no hand steps), with the event's window end and
  reasons as parameters; one run at a time.
Start it with `make up` (which also starts the Prefect server it talks to) or on its own with
PREFECT_API_URL pointing at a server.
"""

from __future__ import annotations

import argparse
import contextlib
from datetime import timedelta
from typing import Any

from prefect import serve
from prefect.events import DeploymentEventTrigger
from prefect.types.entrypoint import EntrypointType

from featureloop.monitoring.checks import EVENT
from featureloop.params import drift_params_for
from featureloop.project.spec import load_spec
from featureloop.settings import PROJECT_ROOT, Settings
from flows.drift import drift
from flows.materialize import materialize
from flows.release import release
from flows.retrain import retrain
from flows.train import rollback, train
from flows.tune import tune


def retrain_trigger(train_days: int | None, release: bool | None = None) -> DeploymentEventTrigger:
    """`retrain` on each `featureloop.drift.detected`, up to the event's window end; `release`: the
    retrain's (None: the spec's monitoring.release.enabled)."""
    return DeploymentEventTrigger(
        name="retrain when drift or decay is detected",
        expect={EVENT},
        match={"prefect.resource.id": "featureloop.model.*"},
        parameters={
            "params": {
                "window_end": "{{ event.payload.window_end }}",
                "reason": "{{ event.payload.reasons | join('; ') }}",
                "train_days": train_days,
                "release": release,
            }
        },
    )


def deployments(
    materialize_every: float | None,
    drift_every: float | None,
    retrain_days: int | None = None,
    *,
    pooled: bool = False,
    release_every: float | None = 15.0,
) -> list[Any]:
    """The deployments; schedules in minutes (None: on demand only). `pooled`: for a process work
    pool's workers, which import each flow by its module path from the project's folder."""

    def every(minutes: float | None) -> timedelta | None:
        return timedelta(minutes=minutes) if minutes else None

    where: dict[str, Any] = (
        {"entrypoint_type": EntrypointType.MODULE_PATH, "job_variables": {"working_dir": str(PROJECT_ROOT)}}
        if pooled
        else {}
    )
    return [
        materialize.to_deployment(
            name="materialize", interval=every(materialize_every), concurrency_limit=1,
            description="Incremental load of the online store (scheduled).", **where,
        ),
        drift.to_deployment(
            name="drift", interval=every(drift_every), concurrency_limit=1,
            # The form starts from the project's thresholds (monitoring in feature_repo/project.yaml).
            parameters={"params": drift_params_for(load_spec(Settings().feature_repo).monitoring).model_dump(mode="json")},
            description="Drift, decay and skew of the last window of served predictions (scheduled).", **where,
        ),
        train.to_deployment(name="train", description="Train, register, gate and promote (on demand).", **where),
        tune.to_deployment(name="tune", description="Search hyperparameters (a child run per trial), register the best, gate it (on demand).", **where),
        retrain.to_deployment(
            name="retrain", triggers=[retrain_trigger(retrain_days)], concurrency_limit=1,
            description="Retrain on the recent window when featureloop.drift.detected arrives.", **where,
        ),
        rollback.to_deployment(name="rollback", description="Point the champion back at the previous version.", **where),
        release.to_deployment(
            name="release", interval=every(release_every), concurrency_limit=1,
            description="Decide the release in progress when its stage's evidence is in (scheduled); "
            "start, promote or roll back one by hand.", **where,
        ),
    ]  # fmt: skip


def deploy_to_pool(
    pool: str,
    materialize_every: float | None,
    drift_every: float | None,
    retrain_days: int | None = None,
    unresponsive_after: timedelta | None = None,
    release_every: float | None = 15.0,
) -> list[Any]:
    """The deployments in a process work pool (created when missing) instead of this process: `prefect
    worker start --pool <pool>` processes run their flow runs, whichever is free (`make up` starts
    FEATURELOOP_PREFECT_WORKERS of them). The retrain automation is the same; with them, the recovery
    automations (`flows.recovery`: a run whose worker died is marked crashed after
    `unresponsive_after` without heartbeats, default 3 heartbeat intervals, and run once more by a
    free worker). Returns the deployments' ids."""
    from prefect import deploy
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.workers.process import ProcessWorker

    from flows.recovery import install_recovery

    with get_client(sync_client=True) as client:
        template = ProcessWorker.get_default_base_job_template()
        with contextlib.suppress(ObjectAlreadyExists):
            client.create_work_pool(WorkPoolCreate(name=pool, type="process", base_job_template=template))
    found = deployments(
        materialize_every, drift_every, retrain_days, pooled=True, release_every=release_every
    )
    ids = deploy(
        *found,
        work_pool_name=pool,
        build=False,
        push=False,
        print_next_steps_message=False,
        ignore_warnings=True,
    )
    install_recovery(list(ids), unresponsive_after)  # type: ignore[arg-type]
    return list(ids)  # type: ignore[arg-type]  # (sync when called outside a loop)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--materialize-every", type=float, default=15.0, help="minutes")
    parser.add_argument("--drift-every", type=float, default=24 * 60.0, help="minutes")
    parser.add_argument("--release-every", type=float, default=15.0, help="minutes")
    parser.add_argument(
        "--retrain-days", type=int, default=None,
        help="days before the drifted window's end (default: the spec's training.window)",
    )  # fmt: skip
    parser.add_argument("--no-schedules", action="store_true", help="deploy everything on demand only")
    parser.add_argument(
        "--work-pool", metavar="POOL",
        help="deploy to this process work pool and exit (its workers run the flows) instead of serving them here",
    )  # fmt: skip
    args = parser.parse_args()
    if args.no_schedules:
        args.materialize_every = args.drift_every = args.release_every = None
    if args.work_pool:
        ids = deploy_to_pool(
            args.work_pool, args.materialize_every, args.drift_every, args.retrain_days,
            release_every=args.release_every,
        )  # fmt: skip
        print(f"{len(ids)} deployments in work pool {args.work_pool!r}: start workers with "
              f"`prefect worker start --pool {args.work_pool}`")  # fmt: skip
        return
    serve(
        *deployments(
            args.materialize_every, args.drift_every, args.retrain_days, release_every=args.release_every
        )
    )


if __name__ == "__main__":
    main()
