"""The validation gate against the champion, and promotion: the champion scored on the
challenger's holdout (with the features of its own service), the decision recorded on the
challenger, the champion alias moved when it passes. The decision rules are `training.gate`'s."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from featureloop.params import TrainParams
from featureloop.training.dataset import LABEL_COLUMN
from featureloop.training.fit import Candidate
from featureloop.training.gate import Decision, decide
from featureloop.training.model import model_input
from featureloop.training.tasks import task_kind
from featureloop.training.training_set import fetch_features

if TYPE_CHECKING:
    from feast import FeatureStore
    from mlflow import MlflowClient

    from featureloop.training.registry import VersionInfo


def predict_version(
    store: FeatureStore, version: VersionInfo, holdout: pd.DataFrame, training_service: str, id_column: str
) -> np.ndarray:
    """A registered model's predictions for a window's rows (in their order), with the features of
    its own service (`holdout` carries `training_service`'s)."""
    from featureloop.training.registry import load_model

    inputs = json.loads(version.tags["model_inputs"])
    service = version.tags.get("feature_service", training_service)
    frame = holdout
    if service != training_service:  # fetch_features keeps the rows' order
        keep = [c for c in holdout.columns if c not in set(inputs["numeric"]) | set(inputs["categorical"])]
        frame = fetch_features(store, holdout[keep], service, id_column)
    model = load_model(version.uri)
    kind = task_kind(version.tags.get("task"))
    return kind.predict(model, model_input(frame, inputs["numeric"], inputs["categorical"]))


def score_version(
    store: FeatureStore, version: VersionInfo, holdout: pd.DataFrame, training_service: str, id_column: str
) -> dict[str, float]:
    """A registered model's metrics on a labelled window, with the features of its own service."""
    predicted = predict_version(store, version, holdout, training_service, id_column)
    return task_kind(version.tags.get("task")).evaluate(holdout[LABEL_COLUMN].to_numpy(), predicted)


def gate_and_promote(
    client: MlflowClient,
    store: FeatureStore,
    challenger: VersionInfo,
    candidate: Candidate,
    params: TrainParams,
    canary_share: float = 0.1,
) -> tuple[Decision, dict[str, float] | None]:
    """Compare with the champion on the challenger's holdout, record the decision, promote if it
    passes; with `params.release` and a champion to compare with live, release it instead (the
    challenger alias, shadow stage first: featureloop.release)."""
    from featureloop.training.registry import CHAMPION, get_alias, promote, record_decision

    champion = get_alias(client, challenger.name, CHAMPION)
    champion_task = champion.tags.get("task", "binary") if champion else candidate.task
    champion_metrics = (
        score_version(store, champion, candidate.split.holdout, params.feature_service, candidate.id_column)
        if champion and champion_task == candidate.task
        else None
    )
    if champion_task != candidate.task:
        decision = Decision(
            False,
            f"not promoted: the champion (version {champion.version if champion else '?'}) predicts a "
            f"{champion_task} task and this version a {candidate.task} one, which cannot be compared; "
            "register a project's models under a model name of their own (FEATURELOOP_MODEL_NAME)",
        )
    else:
        decision = decide(
            candidate.metrics["holdout"],
            champion_metrics,
            candidate.metrics["baseline_holdout"],
            params.gate,
            candidate.task,
        )
    if decision.promote and params.release and champion is not None:  # released, not promoted: say so
        passed = decision.reason.replace("promoted:", "passed the gate:", 1)
        decision = replace(
            decision, reason=f"{passed}; released on live traffic: shadow stage first", released=True
        )
    record = decision.as_dict()
    record["champion_version"] = champion.version if champion else None
    holdout_start, holdout_end = candidate.holdout_window
    record["window"] = f"{holdout_start}..{holdout_end}"
    # The champion may have trained on part of this window (a retrain on the same period): that
    # favours the champion, so the gate errs on the side of keeping it. Say so on the record.
    record["window_overlaps_champion_training"] = bool(
        champion and champion.tags.get("train_end", "") > holdout_start
    )
    record_decision(client, challenger, record)
    if champion_metrics is not None:
        client.set_model_version_tag(
            challenger.name, challenger.version, "gate.champion_metrics", json.dumps(champion_metrics)
        )
    if decision.released:
        from featureloop.release.state import start

        start(client, challenger, canary_share, params.labels_as_of or datetime.now(UTC))
    elif decision.promote:
        promote(client, challenger)
    return decision, champion_metrics
