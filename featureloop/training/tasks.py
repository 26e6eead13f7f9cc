"""What differs between the tasks a project declares (`task.type` in its spec): the model's output,
the metrics, the figure a person reads first, and the baseline a first model must beat. Pure.

- binary: the probability of the positive label; ROC AUC first; the baseline predicts the training
  slice's positive rate for every row.
- regression: an estimate of the label; MAE first; the baseline predicts the training slice's mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

TaskType = Literal["binary", "regression"]


@dataclass(frozen=True)
class TaskKind:
    name: TaskType
    headline: str  # the metric a summary leads with
    headline_label: str
    higher_is_better: bool  # of the headline
    metric_names: tuple[str, ...]  # the metrics a table shows, in order
    baseline: str  # what the baseline predicts, as a table's column names it

    def predict(self, model: Any, x: Any) -> np.ndarray:
        """The model's output per row: a probability (binary) or an estimate (regression)."""
        if self.name == "binary":
            return np.asarray(model.predict_proba(x)[:, 1], dtype=float)
        return np.asarray(model.predict(x), dtype=float)

    def evaluate(self, y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
        from featureloop.training.metrics import evaluate, evaluate_regression

        return evaluate(y, predicted) if self.name == "binary" else evaluate_regression(y, predicted)

    def describe(self, metrics: dict[str, float]) -> str:
        """`ROC AUC 0.7123` / `MAE 12.34`."""
        return f"{self.headline_label} {metrics[self.headline]:.4f}"


BINARY = TaskKind(
    "binary", "roc_auc", "ROC AUC", True, ("roc_auc", "pr_auc", "log_loss", "brier", "ece"), "positive rate"
)
REGRESSION = TaskKind("regression", "mae", "MAE", False, ("mae", "rmse", "r2"), "mean")
KINDS: dict[str, TaskKind] = {"binary": BINARY, "regression": REGRESSION}


def task_kind(task: str | None) -> TaskKind:
    """The kind of a task by name (a model from before tasks were declared is binary)."""
    return KINDS[task or "binary"]
