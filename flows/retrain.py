"""Prefect flow `retrain`: train on the most recent window, then the gate; what drift triggers.

The `retrain` deployment runs it when `featureloop.drift.detected` arrives, with the event's window
end and reasons as parameters. It trains through the `train` flow (a subflow: the same steps, the
same gate, the same lineage), on the `train_days` before the window's end. A version the gate passes
is released on live traffic (the challenger: shadow, then canary; the `release` flow decides each
stage) when the spec's `monitoring.release.enabled` (the default) or `release` says so, else
promoted at once; serving picks either up by watching the aliases.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Self

from prefect import flow, get_run_logger
from pydantic import BaseModel, Field, model_validator

from featureloop.params import TrainParams, as_utc
from featureloop.project.spec import load_spec, parse_duration
from featureloop.settings import Settings
from flows.train import train


class RetrainParams(BaseModel):
    """Which recent window to train on, and why (the event's figures, for the record)."""

    window_end: datetime | None = Field(None, description="Train up to here (UTC); default: now.")
    train_days: int | None = Field(
        None, ge=1, description="Days before window_end to train on; default: the spec's training.window."
    )
    reason: str = Field("manual", description="Why: the drift event's reasons, or a person's note.")
    release: bool | None = Field(
        None,
        description="Release a version that passes the gate on live traffic (shadow, canary) rather than "
        "promote it at once; default: the spec's monitoring.release.enabled.",
    )
    train: TrainParams = Field(
        default_factory=lambda: TrainParams(), description="Everything else about training."
    )

    @model_validator(mode="after")
    def _utc(self) -> Self:
        if self.window_end is not None:
            self.window_end = as_utc(self.window_end)
        return self


@flow(name="retrain")
def retrain(params: RetrainParams | None = None) -> dict[str, Any]:
    """Train on the recent window, register, gate and promote when the challenger is better."""
    params = params or RetrainParams()
    end = params.window_end or datetime.now(UTC)
    spec = load_spec(Settings().feature_repo)
    span = (
        timedelta(days=params.train_days)
        if params.train_days is not None
        else parse_duration(spec.training.window)
    )
    released = spec.monitoring.release.enabled if params.release is None else params.release
    # Only outcomes known by the window's end: an outcome known after it is not a label yet.
    window = params.train.model_copy(
        update={"train_start": end - span, "train_end": end, "labels_as_of": end, "release": released}
    )
    get_run_logger().info(
        "retraining on %s .. %s because: %s", window.start.isoformat(), end.isoformat(), params.reason
    )
    summary = train(TrainParams.model_validate(window.model_dump()))
    return {**summary, "reason_for_retraining": params.reason}


if __name__ == "__main__":
    print(retrain())
