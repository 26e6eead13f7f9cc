"""What happens to a run whose worker dies: Prefect marks it crashed, and it runs once more.

A process worker runs each flow run in a process of its own; when the machine, the worker or that
process dies, nothing reports the run's end and it would stay `Running` for ever. Flow runs send
heartbeat events (`PREFECT_FLOWS_HEARTBEAT_FREQUENCY`, seconds); two automations on the Prefect
server, created with the work-pool deployments (`flows.deploy.deploy_to_pool`), act on them:

1. **crash unresponsive runs** (Prefect's own recipe, "detect zombie flows"): a run of one of the
   pool's deployments that sent a heartbeat and then neither another one nor a final state within
   `unresponsive_after` is set `Crashed`, with the reason.
2. **rerun a crashed run once**: a run of those deployments that crashed on its first attempt is set
   `Scheduled` ("AwaitingRetry") again, with the same parameters, and whichever worker is free runs
   it (its attempt count goes to 2; a run that crashes again stays crashed, for a person to look at).

The flows are written to be run again: materialisation is idempotent, drift reads the same window,
and training registers a version only at its end (a version a killed train left half-made is named
by the next one, `featureloop.training.registry.find_half_made`).

Only the pool's deployments are matched: a run elsewhere on the same server may send heartbeats less
often than `unresponsive_after`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

CRASH = "featureloop: crash unresponsive runs"
RERUN = "featureloop: rerun a crashed run once"
# How many heartbeats a run may miss before it is declared crashed (Prefect's recipe: 3).
MISSED_HEARTBEATS = 3


def heartbeat_seconds() -> int:
    """The heartbeat interval of flow runs started with this process's Prefect settings."""
    from prefect.settings import get_current_settings

    return int(get_current_settings().flows.heartbeat_frequency or 0)


def recovery_automations(deployment_ids: list[UUID], unresponsive_after: timedelta) -> list[Any]:
    """The two automations for the runs of these deployments (not yet created)."""
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    ours = {
        "prefect.resource.role": "deployment",
        "prefect.resource.id": [f"prefect.deployment.{i}" for i in deployment_ids],
    }
    ended = {f"prefect.flow-run.{name}" for name in ("Completed", "Failed", "Cancelled", "Crashed")}
    crash = AutomationCore(
        name=CRASH,
        description="A run of a featureloop work-pool deployment that stopped sending heartbeats "
        "(its worker or machine died) is marked Crashed.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *ended},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related=ours,
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=unresponsive_after,
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"no heartbeat for {unresponsive_after.total_seconds():.0f} s: its worker or "
                "machine stopped (featureloop's recovery automation)",
            )
        ],
    )
    rerun = AutomationCore(
        name=RERUN,
        description="A run of a featureloop work-pool deployment that crashed on its first attempt "
        "is scheduled again, with the same parameters, for whichever worker is free.",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Crashed"},
            match={"prefect.resource.id": "prefect.flow-run.*", "prefect.run-count": "1"},
            match_related=ours,
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.SCHEDULED,
                name="AwaitingRetry",
                message="rerun after a crash (featureloop's recovery automation: once per run)",
            )
        ],
    )
    return [crash, rerun]


def install_recovery(deployment_ids: list[UUID], unresponsive_after: timedelta | None = None) -> list[UUID]:
    """Create (or replace) both automations on the current Prefect server; their ids.
    `unresponsive_after` defaults to MISSED_HEARTBEATS heartbeat intervals."""
    from prefect.client.orchestration import get_client

    if unresponsive_after is None:
        unresponsive_after = timedelta(seconds=MISSED_HEARTBEATS * heartbeat_seconds())
    if unresponsive_after.total_seconds() <= 0:
        raise ValueError(
            "flow-run heartbeats are off (PREFECT_FLOWS_HEARTBEAT_FREQUENCY unset): the runs of a dead "
            "worker could not be told from slow ones; set it (e.g. 30 seconds) for the workers and deploy again"
        )
    remove_recovery()
    with get_client(sync_client=True) as client:
        return [client.create_automation(a) for a in recovery_automations(deployment_ids, unresponsive_after)]


def remove_recovery() -> None:
    """Delete both automations (by name) from the current Prefect server."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        for automation in client.read_automations():
            if automation.name in (CRASH, RERUN):
                client.delete_automation(automation.id)
