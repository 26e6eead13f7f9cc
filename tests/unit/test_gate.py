"""The validation gate: never promotes a worse or less calibrated challenger."""

from __future__ import annotations

from featureloop.training.gate import GateConfig, decide

BASELINE = {"roc_auc": 0.5, "log_loss": 0.57, "ece": 0.02}
CHAMPION = {"roc_auc": 0.70, "log_loss": 0.52, "ece": 0.02}
CONFIG = GateConfig()


def test_first_model_is_promoted_when_it_beats_the_prior_rate_baseline() -> None:
    decision = decide({"roc_auc": 0.6, "log_loss": 0.55, "ece": 0.03}, None, BASELINE, CONFIG)
    assert decision.promote
    assert "prior-rate baseline" in decision.reason


def test_first_model_no_better_than_the_baseline_is_not_promoted() -> None:
    decision = decide({"roc_auc": 0.51, "log_loss": 0.58, "ece": 0.03}, None, BASELINE, CONFIG)
    assert not decision.promote
    assert "auc_over_baseline" in decision.reason and "log_loss_not_worse_than_baseline" in decision.reason


def test_better_challenger_is_promoted() -> None:
    decision = decide({"roc_auc": 0.71, "log_loss": 0.515, "ece": 0.021}, CHAMPION, BASELINE, CONFIG)
    assert decision.promote
    assert [c["passed"] for c in decision.checks] == [True, True, True]


def test_equal_or_worse_auc_is_not_promoted() -> None:
    for auc in (0.70, 0.7015, 0.65):
        decision = decide({"roc_auc": auc, "log_loss": 0.50, "ece": 0.01}, CHAMPION, BASELINE, CONFIG)
        assert not decision.promote, auc
        assert decision.reason == "not promoted: failed auc_gain against the champion"


def test_auc_gain_with_a_log_loss_regression_is_not_promoted() -> None:
    decision = decide({"roc_auc": 0.75, "log_loss": 0.54, "ece": 0.02}, CHAMPION, BASELINE, CONFIG)
    assert not decision.promote
    assert "log_loss_guardrail" in decision.reason


def test_auc_gain_with_a_calibration_regression_is_not_promoted() -> None:
    decision = decide({"roc_auc": 0.75, "log_loss": 0.52, "ece": 0.05}, CHAMPION, BASELINE, CONFIG)
    assert not decision.promote
    assert "calibration_guardrail" in decision.reason


def test_every_check_records_both_sides() -> None:
    decision = decide({"roc_auc": 0.75, "log_loss": 0.52, "ece": 0.02}, CHAMPION, BASELINE, CONFIG)
    auc = next(c for c in decision.checks if c["check"] == "auc_gain")
    assert (auc["challenger"], auc["reference"]) == (0.75, 0.70)
