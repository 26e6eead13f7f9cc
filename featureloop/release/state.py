"""A release in MLflow: the `challenger` alias names the version, tags on it say its stage, when each
stage began, each stage's decision and the final reason (featureloop.release.tags). Writes are
ordered so that a crash between two of them never lets serving use a version outside the plan: a
stage's tags are written before the alias points at it; a rollback removes the alias first; a
promotion moves `champion` first (the next `advance` finishes a promotion a crash interrupted)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from featureloop.release import tags

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from featureloop.training.registry import VersionInfo


class ReleaseRefused(ValueError):
    """A release that cannot start or act as asked; the message says why and what to do."""


def _tag(client: MlflowClient, version: VersionInfo, key: str, value: str) -> None:
    client.set_model_version_tag(version.name, version.version, key, value)


def start(client: MlflowClient, version: VersionInfo, share: float, as_of: datetime) -> VersionInfo | None:
    """Release `version` (it passed the gate): shadow stage from `as_of`, the challenger alias on it.
    A release still in progress is superseded (rolled back, saying by which version); it is returned."""
    from featureloop.training.registry import CHALLENGER, get_alias

    old = get_alias(client, version.name, CHALLENGER)
    superseded = None
    if old is not None and old.version != version.version and old.tags.get(tags.STAGE) in tags.LIVE:
        finish(client, old, tags.ROLLED_BACK, f"superseded by version {version.version}, a newer release")
        superseded = old
    for key in [k for k in version.tags if k.startswith("release.")]:  # an earlier release of it
        client.delete_model_version_tag(version.name, version.version, key)
    _tag(client, version, tags.SHARE, repr(share))
    _tag(client, version, tags.started(tags.SHADOW), as_of.isoformat())
    _tag(client, version, tags.STAGE, tags.SHADOW)
    client.set_registered_model_alias(version.name, CHALLENGER, version.version)
    return superseded


def to_canary(client: MlflowClient, version: VersionInfo, as_of: datetime) -> None:
    """The shadow stage passed: the challenger answers its canary share from `as_of`."""
    _tag(client, version, tags.started(tags.CANARY), as_of.isoformat())
    _tag(client, version, tags.STAGE, tags.CANARY)


def record(client: MlflowClient, version: VersionInfo, stage: str, decision: dict[str, Any]) -> None:
    """A stage's decision (or its progress while it waits) on the version."""
    text = json.dumps(decision, default=float)
    if len(text) > 5000:  # MLflow's longest tag: the checks' sentences go, their figures stay
        checks = [{k: v for k, v in c.items() if k != "why"} for c in decision.get("checks", [])]
        text = json.dumps({**decision, "checks": checks}, default=float)[:5000]
    _tag(client, version, tags.decision(stage), text)


def finish(client: MlflowClient, version: VersionInfo, outcome: str, reason: str) -> VersionInfo | None:
    """End the release: `promoted` (champion, the old one `previous`; returned) or `rolled_back`."""
    from featureloop.training.registry import CHALLENGER, get_alias, promote

    replaced = None
    if outcome == tags.PROMOTED:
        replaced = promote(client, version)
    held = get_alias(client, version.name, CHALLENGER)
    if held is not None and held.version == version.version:
        client.delete_registered_model_alias(version.name, CHALLENGER)
    _tag(client, version, tags.REASON, reason[:5000])
    _tag(client, version, tags.STAGE, outcome)
    return replaced


def in_progress(client: MlflowClient, name: str) -> VersionInfo | None:
    """The version whose release is live (shadow or canary), if any."""
    from featureloop.training.registry import CHALLENGER, get_alias

    held = get_alias(client, name, CHALLENGER)
    return held if held is not None and held.tags.get(tags.STAGE) in tags.LIVE else None
