"""The release pipeline, written once: the CLI's `featureloop release` and the `release` flow run
the same steps (a `Steps` runner, as training does). `advance` gathers the current stage's
evidence and decides it (featureloop.release.judge): wait, go on (shadow -> canary -> champion) or
roll back; `start` releases a version that passed the gate; `promote` and `rollback` end a release
by hand. Every decision is recorded on the version in MLflow."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from featureloop.params import ReleaseParams
from featureloop.release import tags
from featureloop.release.state import ReleaseRefused, finish, record, start, to_canary
from featureloop.settings import Settings
from featureloop.steps import PlainSteps, Steps

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from featureloop.project.spec import ProjectSpec
    from featureloop.release.judge import StageDecision
    from featureloop.training.registry import VersionInfo


def run_release_steps(steps: Steps, settings: Settings, params: ReleaseParams) -> dict[str, Any]:
    """One release action; returns what happened, for people (`summary`) and for code."""
    from featureloop.project.spec import load_spec
    from featureloop.training.registry import CHALLENGER, CHAMPION, get_alias, get_version, open_tracking

    spec = steps("load_project_spec", load_spec, settings.feature_repo)
    client, _ = steps("connect_tracking", open_tracking, settings)
    as_of = params.as_of or datetime.now(UTC)
    name = settings.model_name
    if params.action == "start":
        if params.version is None:
            raise ReleaseRefused("start needs the version to release (--version N)")
        from mlflow.exceptions import MlflowException

        try:
            version = get_version(client, name, params.version)
        except MlflowException as exc:
            raise ReleaseRefused(f"model {name!r} has no version {params.version!r} ({exc.message})") from exc
        return steps("start_release", start_release, client, version, spec, as_of)
    challenger = get_alias(client, name, CHALLENGER)
    if challenger is None or challenger.tags.get(tags.STAGE) not in tags.LIVE:
        summary = (
            "no release in progress"
            if challenger is None
            else f"version {challenger.version} is the challenger by hand (no release stage): nothing to decide"
        )
        return {"version": challenger.version if challenger else None, "stage": None, "verdict": None,
                "summary": summary}  # fmt: skip
    if params.version is not None and params.version != challenger.version:
        raise ReleaseRefused(
            f"version {params.version} is not the release in progress (version {challenger.version} is)"
        )
    stage = challenger.tags[tags.STAGE]
    champion = get_alias(client, name, CHAMPION)
    if champion is not None and champion.version == challenger.version:  # a promotion a crash interrupted
        steps("finish_release", finish, client, challenger, tags.PROMOTED, f"{stage}: promoted (finished)")
        return {"version": challenger.version, "stage": stage, "verdict": tags.PROMOTED,
                "summary": f"version {challenger.version} is the champion: its release is finished"}  # fmt: skip
    if params.action in ("promote", "rollback"):
        outcome = tags.PROMOTED if params.action == "promote" else tags.ROLLED_BACK
        reason = f"{stage}: {outcome.replace('_', ' ')} by hand" + (
            f": {params.reason}" if params.reason else ""
        )
        steps("finish_release", finish, client, challenger, outcome, reason)
        return {"version": challenger.version, "stage": stage, "verdict": outcome, "summary": reason}
    decision = steps("decide_stage", decide_stage, settings, spec, challenger, as_of)
    return steps("act_on_decision", act, client, challenger, decision, as_of)


def start_release(
    client: MlflowClient, version: VersionInfo, spec: ProjectSpec, as_of: datetime
) -> dict[str, Any]:
    """Release a version whose gate passed, in the shadow stage."""
    from featureloop.training.registry import CHAMPION, get_alias

    if version.tags.get("gate.promoted") != "true":
        raise ReleaseRefused(
            f"version {version.version} did not pass the gate ({version.tags.get('gate.reason', 'gate not run')}): "
            "only a version the gate passed is released; train a better one"
        )
    champion = get_alias(client, version.name, CHAMPION)
    if champion is None or champion.version == version.version:
        raise ReleaseRefused(
            f"version {version.version} has no other champion to be compared with on live traffic: a "
            "first version is promoted by the gate at once (featureloop train)"
        )
    share = spec.monitoring.release.canary.share
    superseded = start(client, version, share, as_of)
    summary = f"version {version.version} released: shadow stage from {as_of:%Y-%m-%d %H:%M} UTC"
    if superseded is not None:
        summary += f" (version {superseded.version}'s release rolled back: superseded)"
    return {"version": version.version, "stage": tags.SHADOW, "verdict": "started", "summary": summary}


def decide_stage(
    settings: Settings, spec: ProjectSpec, challenger: VersionInfo, as_of: datetime
) -> StageDecision:
    """The current stage's evidence, judged."""
    import duckdb

    from featureloop.monitoring.decay import outcomes_sql
    from featureloop.release.evidence import gather
    from featureloop.release.judge import judge

    stage = challenger.tags[tags.STAGE]
    started = challenger.tags.get(tags.started(stage))
    if started is None:
        raise ReleaseRefused(
            f"version {challenger.version} is in the {stage} stage but has no {tags.started(stage)} tag (set by "
            "hand?): start its release with `featureloop release start --version "
            f"{challenger.version}`, or end it with `featureloop release rollback`"
        )
    began = datetime.fromisoformat(started)
    config = spec.monitoring.release
    spine_path = settings.offline_dir / f"{spec.spine.table}.parquet"
    outcomes = outcomes_sql(spine_path, spec.spine, spec.task.outcome_known, spec.task.label)
    try:
        evidence = gather(
            settings.prediction_log_dir, outcomes, spec.spine.id, challenger.version, stage, as_of, began
        )
    except duckdb.Error as exc:
        raise ReleaseRefused(
            f"the {stage} stage's evidence cannot be read ({type(exc).__name__}: {exc}); check the prediction "
            f"log under {settings.prediction_log_dir} and {spine_path} (`featureloop prepare`)"
        ) from exc
    window = config.shadow if stage == tags.SHADOW else config.canary
    return judge(evidence, config, window, spec.task.type, shown_better=_shadow_showed_better(challenger))


def _shadow_showed_better(challenger: VersionInfo) -> bool:
    """Whether the shadow stage's decision found the challenger better on labels beyond noise."""
    import json

    recorded = challenger.tags.get(tags.decision(tags.SHADOW))
    if not recorded or challenger.tags.get(tags.STAGE) == tags.SHADOW:
        return False
    try:
        checks = json.loads(recorded).get("checks", [])
    except json.JSONDecodeError:  # a record cut at MLflow's tag length: no finding to lean on
        return False
    return any(check.get("better") for check in checks)


def act(
    client: MlflowClient, challenger: VersionInfo, decision: StageDecision, as_of: datetime
) -> dict[str, Any]:
    """Record the decision; go on to the canary, promote, or roll back; nothing when the release
    changed while its evidence was read (rolled back or replaced by hand): that decision is stale."""
    from featureloop.training.registry import CHALLENGER, get_alias

    stage = challenger.tags[tags.STAGE]
    now = get_alias(client, challenger.name, CHALLENGER)
    if now is None or now.version != challenger.version or now.tags.get(tags.STAGE) != stage:
        return {"version": challenger.version, "stage": stage, "verdict": None, "checks": decision.checks,
                "summary": f"version {challenger.version}'s release changed while its {stage} stage was "
                "judged (rolled back, replaced or moved on by hand): this decision was not applied"}  # fmt: skip
    record(client, challenger, stage, {**decision.as_dict(), "as_of": as_of.isoformat()})
    summary = decision.reason
    if decision.verdict == "pass" and stage == tags.SHADOW:
        to_canary(client, challenger, as_of)
        summary += " -> canary"
    elif decision.verdict == "pass":
        finish(client, challenger, tags.PROMOTED, decision.reason)
        summary += " -> champion"
    elif decision.verdict == "fail":
        finish(client, challenger, tags.ROLLED_BACK, decision.reason)
    return {"version": challenger.version, "stage": stage, "verdict": decision.verdict,
            "summary": summary, "checks": decision.checks}  # fmt: skip


def run_release(settings: Settings, params: ReleaseParams, report: Any = print) -> dict[str, Any]:
    """One release action as plain calls (the CLI's path), progress lines to `report`."""
    return run_release_steps(PlainSteps(report), settings, params)
