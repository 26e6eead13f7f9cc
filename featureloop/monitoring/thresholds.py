"""The thresholds of the drift and decay verdicts (pydantic models: the drift flow's form shows them)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from featureloop.durations import Duration


class FeatureOverride(BaseModel):
    """Thresholds for one feature, where the defaults do not fit it."""

    model_config = ConfigDict(extra="forbid")  # a misspelt threshold is an error, not a default

    alpha: float | None = Field(None, gt=0, lt=1)
    min_psi: float | None = Field(None, ge=0)
    ignore: bool = Field(False, description="Report the feature, never count it as drift.")


class DriftConfig(BaseModel):
    """Thresholds of the drift decision. The defaults are calibrated (bench/drift_calibration.py,
    docs/monitoring.md): no false alarm on i.i.d. windows of any size; a shift of three quarters of
    a standard deviation found in every window from `min_rows` (100) on, half of one on large
    windows; PSI's conventional "significant shift" (0.2) as the effect floor, which keeps the time
    structure of real windows (a week against a season) from alarming every week."""

    model_config = ConfigDict(extra="forbid")  # a misspelt threshold is an error, not a default

    alpha: float = Field(0.01, gt=0, lt=1, description="Significance level of the per-feature test.")
    min_psi: float = Field(0.2, ge=0, description="Smallest PSI that counts as drift.")
    min_rows: int = Field(100, ge=1, description="Smaller current windows get no verdict.")
    share_threshold: float = Field(0.5, gt=0, le=1, description="Weighted share of drifted features.")
    unseen_threshold: float = Field(0.01, ge=0, le=1, description="Share of unseen categories reported.")
    max_missing_change: float = Field(
        0.1, ge=0, le=1, description="A larger change in missing share is drift."
    )
    min_bin_rows: int = Field(
        50,
        ge=1,
        description="Numeric features are tested on the reference bins (chi-square) when both windows "
        "have this many values; smaller ones by the exact two-sample KS test on the raw values.",
    )
    min_wasserstein: float = Field(
        0.1, ge=0, description="Effect floor of the KS path: Wasserstein distance / reference std."
    )
    features: dict[str, FeatureOverride] = Field(default_factory=dict, description="Per-feature thresholds.")


class DecayConfig(BaseModel):
    """When the serving model's measured quality counts as decayed."""

    model_config = ConfigDict(extra="forbid")  # a misspelt threshold is an error, not a default

    min_labels: int = Field(500, ge=10, description="Fewer labelled predictions give no decay verdict.")
    max_auc_drop: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Holdout ROC AUC minus window AUC beyond this (and beyond sampling noise).",
    )
    max_ece_rise: float = Field(0.05, ge=0, le=1, description="Window ECE minus holdout ECE beyond this.")
    max_mae_rise: float = Field(
        0.1,
        ge=0,
        description="Regression: window MAE above the holdout's by this share of it (and beyond sampling noise).",
    )
    max_rmse_rise: float = Field(
        0.2, ge=0, description="Regression: window RMSE above the holdout's by this share of it."
    )


class StageWindow(BaseModel):
    """How long a release stage watches live traffic: until `min_rows` rows were served in it or
    `max_time` has passed, whichever comes first."""

    model_config = ConfigDict(extra="forbid")

    min_rows: int = Field(1000, ge=1, description="The stage's window closes after this many served rows...")
    max_time: Duration = Field("7d", description="...or after this long, whichever comes first.")


class CanaryWindow(StageWindow):
    share: float = Field(
        0.1,
        gt=0,
        lt=1,
        description="Share of routing keys (the spec's serving.canary_key) the challenger answers.",
    )


class ReleaseConfig(BaseModel):
    """A version that passed the offline gate, released on live traffic: it scores every request in
    the shadow of the champion, then answers a canary share of them, and each stage's live
    comparison decides whether it goes on or is rolled back (docs/releases.md)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt threshold is an error, not a default

    enabled: bool = Field(
        True,
        description="Drift-triggered retrains release through shadow and canary; false: the gate promotes.",
    )
    shadow: StageWindow = Field(default_factory=StageWindow)
    canary: CanaryWindow = Field(default_factory=CanaryWindow)
    min_labels: int = Field(
        200, ge=10, description="Labelled rows each side needs before a stage's metrics decide."
    )
    label_wait: Duration = Field(
        "2d", description="After a stage's window, how long to wait for delayed labels before deciding."
    )
    max_auc_drop: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Challenger's ROC AUC below the champion's by more (and beyond noise): rolled back.",
    )
    max_mae_rise: float = Field(
        0.02,
        ge=0,
        description="Regression: challenger's MAE above the champion's by this share (and beyond noise).",
    )
    max_prediction_psi: float = Field(
        0.25, ge=0, description="PSI between the two versions' predictions above this: rolled back."
    )
    max_error_rate: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Share of the challenger's scorings that failed above this: rolled back.",
    )
    max_p99_ratio: float = Field(
        1.5, ge=1, description="Challenger's p99 scoring latency above the champion's times this..."
    )
    p99_slack_ms: float = Field(5.0, ge=0, description="...plus this many milliseconds: rolled back.")
