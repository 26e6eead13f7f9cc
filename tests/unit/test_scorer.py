"""The compiled scorer gives scikit-learn's probabilities, and refuses itself when it would not."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from featureloop.training.model import build_pipeline, model_input
from serving.scorer import agrees, compile_pipeline


def _fitted() -> tuple[object, list[str], list[str]]:
    rng = np.random.default_rng(0)
    n = 3000
    frame = pd.DataFrame(
        {
            "x": rng.normal(0, 1, n),
            "y": np.where(rng.random(n) < 0.1, np.nan, rng.normal(5, 2, n)),
            "c": rng.choice(["red", "green", "blue", None], n).astype(object),
        }
    )
    label = ((frame["x"] + (frame["c"] == "red") + rng.normal(0, 1, n)) > 0.5).astype(int)
    pipeline = build_pipeline("hist_gradient_boosting", ["x", "y"], ["c"], {"max_iter": 40})
    pipeline.fit(model_input(frame, ["x", "y"], ["c"]), label)
    return pipeline, ["x", "y"], ["c"]


def test_compiled_scorer_matches_the_pipeline_with_missing_and_unseen_values() -> None:
    pipeline, numeric, categorical = _fitted()
    scorer = compile_pipeline(pipeline, numeric, categorical)
    assert scorer is not None
    assert agrees(scorer, pipeline, rows=2000)
    columns = {"x": [0.1, None, 2.0], "y": [None, 4.0, 9.0], "c": ["red", "purple", None]}
    expected = pipeline.predict_proba(pd.DataFrame({"x": [0.1, np.nan, 2.0], "y": [np.nan, 4.0, 9.0],
                                                    "c": ["red", np.nan, np.nan]}))[:, 1]  # fmt: skip
    np.testing.assert_allclose(scorer.predict(columns), expected, atol=1e-12)


def test_a_scorer_that_disagrees_is_refused() -> None:
    pipeline, numeric, categorical = _fitted()
    scorer = compile_pipeline(pipeline, numeric, categorical)
    assert scorer is not None
    swapped = {name: (code + 1) % 3 for name, code in scorer.codes[0].items()}  # wrong category codes
    assert not agrees(dataclasses.replace(scorer, codes=[swapped]), pipeline)


def test_logistic_regression_pipelines_are_not_compiled() -> None:
    pipeline = build_pipeline("logistic_regression", ["x"], [], {})
    pipeline.fit(pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]}), [0, 0, 1, 1])
    assert compile_pipeline(pipeline, ["x"], []) is None
