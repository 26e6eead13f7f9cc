"""The validation gate: promote a challenger only when it is better where it counts (pure)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel, Field


class GateConfig(BaseModel):
    """Margins of the promotion decision; defaults are deliberately strict on regressions."""

    min_auc_gain: float = Field(0.002, description="ROC AUC the challenger must add over the champion.")
    max_log_loss_increase: float = Field(0.01, ge=0, description="Tolerated log-loss regression.")
    max_ece_increase: float = Field(0.02, ge=0, description="Tolerated calibration-error regression.")
    min_auc_over_baseline: float = Field(
        0.02, description="ROC AUC a first model must add over the prior-rate baseline (AUC 0.5)."
    )
    # Regression tasks: MAE and RMSE relative to the other side's (0.01 is 1%).
    min_mae_gain: float = Field(
        0.005, ge=0, description="Regression: share of the champion's MAE the challenger must cut."
    )
    max_rmse_increase: float = Field(
        0.02, ge=0, description="Regression: tolerated RMSE rise, as a share of the champion's."
    )
    min_mae_gain_over_baseline: float = Field(
        0.02, description="Regression: share of the training-mean baseline's MAE a first model must cut."
    )


@dataclass(frozen=True)
class Decision:
    """Whether to promote, why, and every check with both sides' figures."""

    promote: bool  # the gate passed
    reason: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    released: bool = False  # passed, and released on live traffic rather than promoted at once

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(name: str, passed: bool, challenger: float, reference: float, limit: str) -> dict[str, Any]:
    return {"check": name, "passed": passed, "challenger": challenger, "reference": reference, "limit": limit}


def _relative(challenger: float, reference: float) -> float:
    """The challenger's change as a share of the reference (0 when the reference is 0)."""
    return (challenger - reference) / reference if reference else 0.0


def _regression_checks(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    baseline: dict[str, float],
    config: GateConfig,
) -> list[dict[str, Any]]:
    if champion is None:
        return [
            _check(
                "mae_below_baseline",
                _relative(challenger["mae"], baseline["mae"]) <= -config.min_mae_gain_over_baseline,
                challenger["mae"],
                baseline["mae"],
                f"<= -{config.min_mae_gain_over_baseline:.1%}",
            ),
            _check(
                "rmse_not_worse_than_baseline",
                challenger["rmse"] <= baseline["rmse"],
                challenger["rmse"],
                baseline["rmse"],
                "<= baseline",
            ),
        ]
    return [
        _check(
            "mae_gain",
            _relative(challenger["mae"], champion["mae"]) <= -config.min_mae_gain,
            challenger["mae"],
            champion["mae"],
            f"<= -{config.min_mae_gain:.1%}",
        ),
        _check(
            "rmse_guardrail",
            _relative(challenger["rmse"], champion["rmse"]) <= config.max_rmse_increase,
            challenger["rmse"],
            champion["rmse"],
            f"<= +{config.max_rmse_increase:.1%}",
        ),
    ]


def decide(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    baseline: dict[str, float],
    config: GateConfig,
    task: str = "binary",
) -> Decision:
    """Compare metrics measured on the same window that neither model was trained on (the task's:
    ROC AUC, log loss and calibration for binary; MAE and RMSE for regression)."""
    if task == "regression":
        checks = _regression_checks(challenger, champion, baseline, config)
        reference = "the champion" if champion is not None else "the training-mean baseline"
    elif champion is None:
        gain = challenger["roc_auc"] - baseline["roc_auc"]
        checks = [
            _check(
                "auc_over_baseline",
                gain >= config.min_auc_over_baseline,
                challenger["roc_auc"],
                baseline["roc_auc"],
                f">= +{config.min_auc_over_baseline}",
            ),
            _check(
                "log_loss_not_worse_than_baseline",
                challenger["log_loss"] <= baseline["log_loss"],
                challenger["log_loss"],
                baseline["log_loss"],
                "<= baseline",
            ),
        ]
        reference = "the prior-rate baseline"
    else:
        checks = [
            _check(
                "auc_gain",
                challenger["roc_auc"] - champion["roc_auc"] >= config.min_auc_gain,
                challenger["roc_auc"],
                champion["roc_auc"],
                f">= +{config.min_auc_gain}",
            ),
            _check(
                "log_loss_guardrail",
                challenger["log_loss"] - champion["log_loss"] <= config.max_log_loss_increase,
                challenger["log_loss"],
                champion["log_loss"],
                f"<= +{config.max_log_loss_increase}",
            ),
            _check(
                "calibration_guardrail",
                challenger["ece"] - champion["ece"] <= config.max_ece_increase,
                challenger["ece"],
                champion["ece"],
                f"<= +{config.max_ece_increase}",
            ),
        ]
        reference = "the champion"
    failed = [c["check"] for c in checks if not c["passed"]]
    if failed:
        return Decision(False, f"not promoted: failed {', '.join(failed)} against {reference}", checks)
    return Decision(True, f"promoted: passed every check against {reference}", checks)
