"""Per-feature drift from profiles, the dataset verdict, and persistence over windows (pure).

A feature drifts when its change is both significant and relevant: the two-sample chi-square test
on the reference bins (or categories) rejects at `alpha`, and the effect (PSI) is at least `min_psi`;
or when its share of missing values moves by more than `max_missing_change`.
The p-value keeps small windows from crying wolf; the effect floor keeps large windows from flagging
shifts too small to matter. A window smaller than `min_rows` gets no verdict at all.
The statistics are looked up by name (`featureloop.monitoring.statistics`), each with its threshold
from the `DriftConfig` (and the feature's overrides).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from featureloop.monitoring.profiles import OTHER
from featureloop.monitoring.statistics import BIN_STATISTICS, ks_wasserstein_sorted
from featureloop.monitoring.thresholds import DriftConfig, FeatureOverride


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's comparison: the test's p-value, the effect sizes, and notes a person should read."""

    name: str
    drifted: bool
    p_value: float
    psi: float
    jensenshannon: float
    missing_share_change: float
    unseen_share: float = 0.0
    notes: list[str] = field(default_factory=list)
    test: str = "chi_square"
    ks_p_value: float | None = None
    wasserstein: float | None = None


def _aligned_categories(ref: dict[str, int], cur: dict[str, int]) -> tuple[np.ndarray, np.ndarray, float]:
    """Counts over the reference's categories (+ unseen ones, folded into OTHER when the reference
    folded its rare values) and the share of current values the reference never saw."""
    seen = set(ref) - {OTHER}
    total = sum(cur.values())
    unseen = sum(n for k, n in cur.items() if k not in seen) / total if total else 0.0
    if OTHER in ref:
        cur = {k: n for k, n in cur.items() if k in seen} | {
            OTHER: sum(n for k, n in cur.items() if k not in seen)
        }
    keys = sorted(set(ref) | set(cur))
    return (
        np.array([ref.get(k, 0) for k in keys], dtype=float),
        np.array([cur.get(k, 0) for k in keys], dtype=float),
        unseen,
    )


def feature_drift(
    name: str, reference: dict[str, Any], current: dict[str, Any], config: DriftConfig
) -> FeatureDrift:
    """Compare a feature's current profile with its reference profile.

    The test depends on the feature's type and the sizes of both windows: categorical features and
    numeric ones with at least `min_bin_rows` values on each side use the two-sample chi-square test
    on the reference's bins (effect: PSI); smaller numeric windows use the exact two-sample KS test on
    the raw values (effect: Wasserstein distance over the reference std). KS and Wasserstein are
    reported for every numeric feature whose profiles carry samples."""
    override = config.features.get(name, FeatureOverride())
    alpha = override.alpha if override.alpha is not None else config.alpha
    min_psi = override.min_psi if override.min_psi is not None else config.min_psi
    notes = []
    ks_p = wasserstein = None
    ks_drifted = wasserstein_drifted = False
    if reference["kind"] == "numeric":
        ref_counts = np.asarray(reference["counts"], dtype=float)
        cur_counts = np.asarray(current["counts"], dtype=float)
        unseen = 0.0
        if reference.get("min") is not None and reference.get("min") == reference.get("max"):
            notes.append(f"constant in the reference ({reference['min']}): any other value is a change")
        ref_sample = np.asarray(reference.get("sample", []), dtype=float)
        cur_sample = np.asarray(current.get("sample", []), dtype=float)
        if len(ref_sample) and len(cur_sample):
            sorted_ = ks_wasserstein_sorted(
                ref_sample,
                cur_sample,
                ref_std=float(reference.get("std") or 0.0),
                ks_threshold=alpha,
                wasserstein_threshold=config.min_wasserstein,
            )
            ks_p, wasserstein = sorted_.ks.score, sorted_.wasserstein.score
            ks_drifted, wasserstein_drifted = sorted_.ks.drifted, sorted_.wasserstein.drifted
    else:
        ref_counts, cur_counts, unseen = _aligned_categories(reference["counts"], current["counts"])
        if unseen >= config.unseen_threshold:
            notes.append(f"{unseen:.1%} of current values are categories the reference never saw")
    cur_missing = current["missing"] / current["n"] if current["n"] else 0.0
    missing_change = abs(cur_missing - reference["missing_share"])
    missing_drift = missing_change > config.max_missing_change
    if missing_drift:
        notes.append(f"missing share changed by {missing_change:.0%}")
    if cur_counts.sum() == 0:
        notes.append("all values missing in the current window")
        drifted = missing_drift and not override.ignore
        return FeatureDrift(
            name, drifted, 1.0, 0.0, 0.0, missing_change, unseen, notes, "none", ks_p, wasserstein
        )
    if ref_counts.sum() == 0:
        notes.append("all values missing in the reference")
    psi = BIN_STATISTICS["psi"](ref_counts, cur_counts, min_psi)
    small = min(ref_counts.sum(), cur_counts.sum()) < config.min_bin_rows
    if reference["kind"] == "numeric" and small and ks_p is not None and wasserstein is not None:
        test, p = "ks", ks_p
        changed = ks_drifted and wasserstein_drifted
    else:
        test = "chi_square"
        chi_square = BIN_STATISTICS[test](ref_counts, cur_counts, alpha)
        p, changed = chi_square.score, chi_square.drifted and psi.drifted
    drifted = (changed or missing_drift) and not override.ignore
    if override.ignore and (changed or missing_drift):
        notes.append("changed, but ignored by configuration")
    jensenshannon = BIN_STATISTICS["jensenshannon"](ref_counts, cur_counts).score  # reported only
    return FeatureDrift(
        name, drifted, p, psi.score, jensenshannon, missing_change, unseen, notes, test, ks_p, wasserstein,
    )  # fmt: skip


@dataclass(frozen=True)
class DatasetVerdict:
    """The window's verdict: None when the window is too small to say anything."""

    drifted: bool | None
    share: float
    drifted_features: list[str]
    reason: str


def dataset_verdict(
    features: Sequence[FeatureDrift], rows: int, config: DriftConfig, weights: dict[str, float] | None = None
) -> DatasetVerdict:
    """Drift when the (importance-)weighted share of drifted features reaches the threshold."""
    if rows < config.min_rows:
        return DatasetVerdict(None, 0.0, [], f"window too small: {rows} rows < {config.min_rows}; no verdict")
    if not features:
        return DatasetVerdict(None, 0.0, [], "no feature to compare; no verdict")
    w = {f.name: (weights or {}).get(f.name, 0.0 if weights else 1.0) for f in features}
    total = sum(w.values()) or 1.0
    share = sum(w[f.name] for f in features if f.drifted) / total
    drifted = [f.name for f in sorted(features, key=lambda f: -f.psi) if f.drifted]
    verdict = share >= config.share_threshold
    return DatasetVerdict(verdict, share, drifted, f"{share:.0%} of the (weighted) features drifted")


def persistent(history: Sequence[bool | None], k: int, n: int) -> bool:
    """True when at least k of the last n windows with a verdict drifted (windows without one skipped)."""
    verdicts = [v for v in history if v is not None][-n:]
    return sum(bool(v) for v in verdicts) >= k
