"""The replay's scorecard: the drift-triggered loop against two reference policies, on the very rows
serving answered.

- **drift-triggered** (the loop): what serving answered, from the prediction log;
- **never retrain**: the first champion (trained on January-February) scores every served row;
- **weekly**: a model retrained every week on schedule, on the `train_days` before the week's start
  with the outcomes known by then, by the same fit as the `train` flow, scores that week's rows.

All three see the same served feature values (the log's), so differences are the models', not the
features'. The task's headline metric (ROC AUC, or MAE for regression) is measured per month (in the
project's time zone) on the served rows whose outcome is known.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from featureloop.project.spec import ProjectSpec
from featureloop.training.dataset import LABEL_COLUMN, TIME_COLUMN
from featureloop.training.model import model_input
from featureloop.training.tasks import task_kind

POLICIES = ("drift-triggered", "never", "weekly")


@dataclass(frozen=True)
class Fitted:
    """One scheduled retrain of the weekly policy."""

    week_start: datetime
    pipeline: Any
    numeric: list[str]
    categorical: list[str]
    rows: int


def fit_weekly(
    settings_json: str, week_starts: list[datetime], train_days: int, params_json: str
) -> list[bytes]:
    """Fit the weekly policy's models (one per week start), each on the `train_days` before it with
    the outcomes known at that moment. Runs in a worker process beside the replay: it opens its own
    Feast store, and builds the point-in-time training set of the whole period once."""
    from threadpoolctl import threadpool_limits

    from featureloop.featurestore.store import import_feast_unchecked, open_store
    from featureloop.params import TrainParams
    from featureloop.settings import Settings
    from featureloop.training.dataset import known_times
    from featureloop.training.fit import fit_candidate
    from featureloop.training.training_set import load_training_set

    settings = Settings.model_validate_json(settings_json)
    params = TrainParams.model_validate_json(params_json)
    import_feast_unchecked()
    store = open_store(settings)
    first = min(week_starts) - timedelta(days=train_days)
    whole = load_training_set(
        store,
        settings.offline_dir,
        params.model_copy(update={"train_start": first, "train_end": max(week_starts)}),
    )
    spine = whole.spec.spine
    rows = pd.read_parquet(whole.source)
    known = pd.DataFrame({spine.id: rows[spine.id], "__known_at": known_times(rows, whole.spec)})
    frame = whole.frame.merge(known, on=spine.id, how="left")
    fitted = []
    with threadpool_limits(1):  # one core: the replay and serving use the other
        for start in week_starts:
            begin = pd.Timestamp(start - timedelta(days=train_days))
            part = frame[
                (frame[TIME_COLUMN] >= begin)
                & (frame[TIME_COLUMN] < pd.Timestamp(start))
                & (frame["__known_at"] <= pd.Timestamp(start))
            ].drop(columns=["__known_at"])
            candidate = fit_candidate(replace(whole, frame=part.reset_index(drop=True)), params)
            fitted.append(
                pickle.dumps(
                    Fitted(start, candidate.pipeline, candidate.numeric, candidate.categorical, len(part))
                )
            )
    return fitted


def local_month(times: pd.Series, zone: str) -> pd.Series:
    """ "YYYY-MM" of each time in `zone` (pandas' strftime formats each value in Python: 8 s for
    the replay's 285,000 rows; this formats each distinct month once)."""
    local = pd.to_datetime(times, utc=True).dt.tz_convert(zone)
    codes = local.dt.year * 100 + local.dt.month
    names = {code: f"{code // 100}-{code % 100:02d}" for code in codes.dropna().unique()}
    return codes.map(names)


def read_served(log_dir: Path, start: datetime, end: datetime, id_column: str) -> pd.DataFrame:
    """Every prediction served with a prediction time in [start, end) (the last answer per id), by
    the champion or a canary: what the loop answered (a shadow's scores answered nobody)."""

    from featureloop.sql import quote_identifier, quote_literal, session

    pattern = quote_literal(str(log_dir / "**" / "*.parquet"))
    query = (
        f"SELECT * FROM read_parquet({pattern}, union_by_name = true) "
        f"WHERE event_timestamp >= {quote_literal(start.isoformat())}::TIMESTAMPTZ "
        f"AND event_timestamp < {quote_literal(end.isoformat())}::TIMESTAMPTZ "
        "AND coalesce(role, 'champion') IN ('champion', 'canary') "
        f"QUALIFY row_number() OVER (PARTITION BY {quote_identifier(id_column)} ORDER BY served_at DESC) = 1"
    )
    with session() as con:
        return con.sql(query).df()


def label_outcomes(served: pd.DataFrame, spine: pd.DataFrame, spec: ProjectSpec) -> pd.DataFrame:
    """The served rows whose outcome is known, with the spec's label; the month in the spec's zone."""
    from featureloop.training.dataset import labels_of

    label = labels_of(spine, spec)
    outcomes = pd.DataFrame({spec.spine.id: spine[spec.spine.id], LABEL_COLUMN: label}).dropna()
    frame = served.merge(outcomes, on=spec.spine.id, how="inner")
    frame[LABEL_COLUMN] = frame[LABEL_COLUMN].astype(int if spec.task.type == "binary" else float)
    frame["month"] = local_month(frame[TIME_COLUMN], spec.spine.time_zone)
    return frame.reset_index(drop=True)


def score_policies(
    frame: pd.DataFrame,
    never: tuple[Any, list[str], list[str]],
    weekly: list[Fitted],
    week_of: Callable[[pd.Series], pd.Series],
    task: str = "binary",
) -> pd.DataFrame:
    """The frame with one prediction column per policy (`p_<policy>`) and its replay week."""
    kind = task_kind(task)
    out = frame.copy()
    out["p_drift-triggered"] = frame["prediction"].astype(float)
    pipeline, numeric, categorical = never
    out["p_never"] = kind.predict(pipeline, model_input(frame, numeric, categorical))
    out["p_weekly"] = np.nan
    out["week"] = weeks = week_of(frame[TIME_COLUMN])
    for fitted in weekly:
        mask = (weeks == pd.Timestamp(fitted.week_start)).to_numpy()
        if mask.any():
            part = frame[mask]
            out.loc[mask, "p_weekly"] = kind.predict(
                fitted.pipeline, model_input(part, fitted.numeric, fitted.categorical)
            )
    return out


def metric_by(scored: pd.DataFrame, period: str, task: str = "binary") -> pd.DataFrame:
    """The task's headline metric (ROC AUC; MAE for regression) per period (a column: `month`,
    `week`) and policy, and the labelled count (`rows`)."""
    from sklearn.metrics import mean_absolute_error, roc_auc_score

    rows = []
    for key, part in scored.groupby(period, sort=True):
        y = part[LABEL_COLUMN].to_numpy()
        row: dict[str, Any] = {period: key, "rows": len(part)}
        for policy in POLICIES:
            p = part[f"p_{policy}"].to_numpy(dtype=float)
            ok = ~np.isnan(p)
            if task == "regression":
                row[policy] = float(mean_absolute_error(y[ok], p[ok])) if ok.any() else float("nan")
            else:
                two = len(np.unique(y[ok])) == 2
                row[policy] = float(roc_auc_score(y[ok], p[ok])) if two else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)
