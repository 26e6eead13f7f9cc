"""What-if of retraining policies over March-December 2013, without serving anything.

The weekly policy's models (one per replay week, each fitted on the 56 days before it with the
outcomes known then: `featureloop.backtest.policies.fit_weekly`, the same fit the demo's retrains run) are the
only models any policy can switch to: a drift-triggered retrain at the end of week w trains exactly
the weekly model of week w + 1. So a policy is a schedule of which model serves each week, and its
mean monthly ROC AUC follows from one matrix of predictions (model m on week w, m <= w) on the
point-in-time rows of every flight (what serving answers, tested equal in test_replay_feed.py).

Policies: retrain every k weeks on schedule; and drift-triggered rules (the drift flow's statistics,
`featureloop.monitoring.comparison.compare_window`, of week w against the serving model's training rows,
dataset drift at a share threshold, persistent in k of the last n windows). Decay on delayed labels,
which the demo's drift flow also uses, is left out here: the demo's count of retrains can be higher.

    .venv/bin/python bench/policy_whatif.py            # needs `make demo`'s prepared data

Tuning thresholds on the year they are scored on flatters them: the figures say which rule the demo
uses and why, not what it would score on another year.
"""

from __future__ import annotations

import argparse
import functools
import pickle
import time
from datetime import timedelta

import duckdb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--psi", type=float, nargs="+", default=[0.2, 0.1])
    parser.add_argument("--share", type=float, nargs="+", default=[0.5, 0.4, 0.3])
    args = parser.parse_args()

    from featureloop.backtest.policies import fit_weekly, local_month
    from featureloop.backtest.replay import steps
    from featureloop.featurestore.store import import_feast_unchecked, open_store
    from featureloop.monitoring.comparison import compare_window
    from featureloop.monitoring.drift import persistent
    from featureloop.monitoring.profiles import build_profile
    from featureloop.monitoring.thresholds import DriftConfig
    from featureloop.params import TrainParams
    from featureloop.project.spec import load_spec
    from featureloop.settings import Settings
    from featureloop.training.dataset import LABEL_COLUMN, TIME_COLUMN
    from featureloop.training.model import model_input
    from featureloop.training.training_set import load_training_set
    from flows.backtest import plan

    clock = time.perf_counter()
    import_feast_unchecked()
    settings = Settings()
    the = plan(load_spec(settings.feature_repo), settings.offline_dir)  # make demo's replay
    REPLAY_START, REPLAY_END, TRAIN_DAYS = the.start, the.end, the.train_days
    weeks = list(steps(REPLAY_START, REPLAY_END, timedelta(days=7)))
    models = [
        pickle.loads(b)
        for b in fit_weekly(settings.model_dump_json(), weeks, TRAIN_DAYS, TrainParams().model_dump_json())
    ]
    print(f"{len(models)} weekly fits in {time.perf_counter() - clock:.0f} s", flush=True)
    whole = load_training_set(
        open_store(settings),
        settings.offline_dir,
        TrainParams(train_start=REPLAY_START - timedelta(days=TRAIN_DAYS), train_end=REPLAY_END),
    ).frame
    times = pd.to_datetime(whole[TIME_COLUMN], utc=True)
    starts = pd.DatetimeIndex([pd.Timestamp(w) for w in weeks])
    scored = whole[times >= starts[0]].copy()
    scored["week"] = starts.searchsorted(times[times >= starts[0]], side="right") - 1
    scored["month"] = local_month(times[times >= starts[0]], "America/New_York")
    scored = scored.reset_index(drop=True)
    in_week = [(scored["week"] == w).to_numpy() for w in range(len(weeks))]
    predictions = {
        (m, w): models[m].pipeline.predict_proba(
            model_input(scored[in_week[w]], models[m].numeric, models[m].categorical)
        )[:, 1]
        for w in range(len(weeks))
        for m in range(w + 1)
    }
    print(f"{len(predictions)} week x model predictions in {time.perf_counter() - clock:.0f} s", flush=True)
    numeric, categorical = models[0].numeric, models[0].categorical
    con = duckdb.connect()

    @functools.cache
    def reference(m: int) -> dict:
        start = pd.Timestamp(weeks[m])
        return build_profile(
            whole[(times >= start - pd.Timedelta(days=TRAIN_DAYS)) & (times < start)], numeric, categorical
        )

    @functools.cache
    def share(m: int, w: int, psi: float) -> float:
        con.register("week_rows", scored[in_week[w]])
        return float(
            compare_window(reference(m), "week_rows", DriftConfig(min_psi=psi), con=con)["verdict"]["share"]
        )

    def mean_auc(schedule: list[int]) -> float:
        p = np.empty(len(scored))
        for w, m in enumerate(schedule):
            p[in_week[w]] = predictions[m, w]
        return float(
            np.mean(
                [roc_auc_score(g[LABEL_COLUMN], p[g.index]) for _, g in scored.groupby("month", sort=True)]
            )
        )

    print("\npolicy                                   retrains  mean monthly AUC")
    for k in (1, 2, 4, 8, 100):
        schedule = [(w // k) * k for w in range(len(weeks))]
        label = "never" if k == 100 else f"every {k} weeks"
        print(f"{label:<40} {len(set(schedule)) - 1:>8}  {mean_auc(schedule):.4f}", flush=True)
    for psi in args.psi:
        for threshold in args.share:
            for k, n in ((2, 3), (1, 1)):
                m, history, schedule = 0, [], []
                for w in range(len(weeks)):
                    schedule.append(m)
                    history.append(share(m, w, psi) >= threshold)
                    if persistent(history, k, n) and w + 1 < len(weeks):
                        m, history = w + 1, []
                label = f"drift: PSI {psi}, share {threshold}, {k} of {n}"
                print(f"{label:<40} {len(set(schedule)) - 1:>8}  {mean_auc(schedule):.4f}", flush=True)
    print(f"\ndone in {time.perf_counter() - clock:.0f} s")


if __name__ == "__main__":
    main()
