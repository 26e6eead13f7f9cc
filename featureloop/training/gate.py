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


@dataclass(frozen=True)
class Decision:
    """Whether to promote, why, and every check with both sides' figures."""

    promote: bool
    reason: str
    checks: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(name: str, passed: bool, challenger: float, reference: float, limit: str) -> dict[str, Any]:
    return {"check": name, "passed": passed, "challenger": challenger, "reference": reference, "limit": limit}


def decide(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    baseline: dict[str, float],
    config: GateConfig,
) -> Decision:
    """Compare metrics measured on the same window that neither model was trained on."""
    if champion is None:
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
