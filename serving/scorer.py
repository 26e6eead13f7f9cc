"""A compiled scoring path for the gradient-boosting pipeline, checked against scikit-learn at load.

scikit-learn walks its 100-300 trees one Python call at a time and builds a column transformer's
frames per request: ~3 ms for one row (the worked example). Here the ordinal encoding is a dictionary lookup per
categorical column and the trees are evaluated by Treelite's GTIL (the fitted model imported, not
re-trained): ~0.1 ms. When the model is loaded, both paths score a sample built from the model's own
categories with missing and unseen values; if they differ anywhere by more than 1e-9 the fast path
is not used and scikit-learn scores every request.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from featureloop.training.model import model_input_from_columns

logger = logging.getLogger(__name__)
TOLERANCE = 1e-9


@dataclass(frozen=True)
class CompiledScorer:
    """Ordinal codes by lookup, trees by Treelite: the same probabilities as the pipeline."""

    numeric: list[str]
    categorical: list[str]
    codes: list[dict[str, float]]
    forest: Any
    # `treelite.gtil.predict`'s configuration, parsed once for its own implementation (the public
    # call parses it from JSON on every call); None: the public call (another Treelite version).
    config: Any = None

    def predict(self, columns: dict[str, list[Any]]) -> np.ndarray:
        n = len(next(iter(columns.values()))) if columns else 0
        x = np.empty((n, len(self.numeric) + len(self.categorical)), dtype=np.float64)
        for j, name in enumerate(self.numeric):
            x[:, j] = np.array(columns[name], dtype=np.float64)
        offset = len(self.numeric)
        for j, (name, codes) in enumerate(zip(self.categorical, self.codes, strict=True)):
            x[:, offset + j] = [codes.get(v, np.nan) if isinstance(v, str) else np.nan for v in columns[name]]
        return np.asarray(self._run(x)).reshape(-1)

    def _run(self, x: np.ndarray) -> Any:
        from treelite.gtil import gtil

        if self.config is None:
            return gtil.predict(self.forest, x, nthread=1)
        return gtil._predict_impl(self.forest, x, config=self.config)


def compile_pipeline(pipeline: Any, numeric: list[str], categorical: list[str]) -> CompiledScorer | None:
    """A compiled scorer for our gradient-boosting pipeline (classifier or regressor), or None when the
    pipeline is another kind."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.preprocessing import OrdinalEncoder

    model, encode = pipeline.named_steps.get("model"), pipeline.named_steps.get("encode")
    if (
        not isinstance(model, HistGradientBoostingClassifier | HistGradientBoostingRegressor)
        or encode is None
    ):
        return None
    encoder = encode.named_transformers_.get("cat")
    if categorical and not isinstance(encoder, OrdinalEncoder):
        return None
    import treelite.sklearn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # Treelite casts NaN category lists
        forest = treelite.sklearn.import_model(model)
    codes = [
        {str(value): float(i) for i, value in enumerate(values) if isinstance(value, str)}
        for values in (encoder.categories_ if categorical else [])
    ]
    from treelite.gtil import gtil

    config = None
    if hasattr(gtil, "_predict_impl") and hasattr(gtil, "GTILConfig"):
        config = gtil.GTILConfig(nthread=1, predict_type="default")
    return CompiledScorer(numeric, categorical, codes, forest, config)


def agrees(
    scorer: CompiledScorer, pipeline: Any, task: str = "binary", rows: int = 512, seed: int = 0
) -> bool:
    """Both paths on a sample with the model's categories, unseen ones and missing values."""
    rng = np.random.default_rng(seed)
    columns: dict[str, list[Any]] = {}
    for name in scorer.numeric:
        values = rng.normal(0, 50, rows)
        values[rng.random(rows) < 0.2] = np.nan
        columns[name] = [None if np.isnan(v) else float(v) for v in values]
    for name, codes in zip(scorer.categorical, scorer.codes, strict=True):
        choices = [*codes, "__unseen__", None]
        columns[name] = [choices[i] for i in rng.integers(0, len(choices), rows)]
    x = model_input_from_columns(columns, scorer.numeric, scorer.categorical)
    expected = pipeline.predict(x) if task == "regression" else pipeline.predict_proba(x)[:, 1]
    got = scorer.predict(columns)
    # Relative to the values' size: a regression's estimates are in the label's units.
    worst = float(np.max(np.abs(expected - got) / np.maximum(1.0, np.abs(expected))))
    if worst > TOLERANCE:
        logger.warning("compiled scorer differs from scikit-learn by %.3g: using scikit-learn", worst)
        return False
    return True
