"""Flow parameters: one pydantic model per flow (each becomes a form in the Prefect UI)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Self

from pydantic import BaseModel, Field, model_validator

from featureloop.gate import GateConfig
from featureloop.training import ModelFamily


class TrainParams(BaseModel):
    """What to train on, how to label it, which model, and how strict the promotion gate is."""

    feature_service: str = Field(
        "flight_delay_v1", description="Feast feature service: the serving contract."
    )
    train_start: datetime = Field(
        datetime(2013, 1, 1, tzinfo=UTC), description="First scheduled departure (UTC)."
    )
    train_end: datetime = Field(
        datetime(2013, 3, 1, tzinfo=UTC), description="End of the window (exclusive, UTC)."
    )
    label_threshold_minutes: int = Field(15, ge=0, description="Label: arrival delay over this many minutes.")
    model_family: ModelFamily = "hist_gradient_boosting"
    hyperparameters: dict[str, float | int | str] = Field(default_factory=dict)
    validation_fraction: float = Field(0.15, gt=0, lt=0.5)
    holdout_fraction: float = Field(0.15, gt=0, lt=0.5, description="Most recent slice: the gate's window.")
    gate: GateConfig = Field(default_factory=lambda: GateConfig())
    promote: bool = Field(True, description="Run the gate and move the champion alias when it passes.")
    shuffle_labels: bool = Field(False, description="Testing aid: train on shuffled labels (a worse model).")

    @model_validator(mode="after")
    def _window(self) -> Self:
        for name in ("train_start", "train_end"):
            value = getattr(self, name)
            if value.tzinfo is None:
                setattr(self, name, value.replace(tzinfo=UTC))
        if self.train_end <= self.train_start:
            raise ValueError(
                f"train_end ({self.train_end.isoformat()}) must be after train_start ({self.train_start.isoformat()})"
            )
        return self


class RollbackParams(BaseModel):
    """Which registered model to roll back to its `previous` version."""

    model_name: str | None = Field(None, description="Registered model; default: the configured one.")
