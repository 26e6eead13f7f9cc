"""Where a release lives: tags on the challenger's model version in MLflow (serving reads them with
the `challenger` alias; every replica sees the same stage, none restarts)."""

from __future__ import annotations

STAGE = "release.stage"  # shadow, canary while it runs; promoted or rolled_back once decided
SHARE = "release.canary_share"
REASON = "release.reason"  # the final decision's reason
SHADOW, CANARY, PROMOTED, ROLLED_BACK = "shadow", "canary", "promoted", "rolled_back"
LIVE = (SHADOW, CANARY)


def started(stage: str) -> str:
    """When (the release clock: now, or the backtest's time) a stage began, ISO 8601."""
    return f"release.{stage}.started"


def decision(stage: str) -> str:
    """A stage's decision: its verdict, reason, checks and evidence, as JSON."""
    return f"release.{stage}.decision"
