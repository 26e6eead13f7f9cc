"""The `featureloop` command: the loop's steps by name, one module per group of commands.

- `feature_store`: prepare, apply, materialize (the data into Feast's offline and online stores);
- `init`: a new project that works as it is (to start from and edit);
- `project`: validate (the project's spec against the registry and its tables);
- `training`: train, rollback (MLflow's registry and the champion alias);
- `release`: a version the gate passed, released on live traffic (shadow, canary, decided live);
- `experiments`: tune (a hyperparameter search, a child run per trial), compare (two versions on one holdout);
- `monitoring`: drift (drift, decay and skew of served predictions);
- `backtest`: a project's history replayed through the loop beside reference policies; `demo`, the
  worked example's (the 2013 New York flights);
- `serving`: serve (the serving app of the project's champion);
- `stack`: up, down, status (the local stack of processes).
Nothing heavy (Feast, Prefect, MLflow) is imported at start-up: each command imports what it needs.
"""

from __future__ import annotations

import typer

from featureloop.cli import (
    backtest,
    experiments,
    feature_store,
    init,
    monitoring,
    project,
    release,
    serving,
    stack,
    training,
)

app = typer.Typer(
    help="featureloop: a Feast feature store loop (prepare, apply, materialize, ...).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for command in (
    init.init,
    feature_store.prepare,
    feature_store.apply,
    feature_store.materialize,
    project.validate,
    training.train,
    training.rollback,
    release.release,
    experiments.tune,
    experiments.compare,
    monitoring.drift,
    serving.serve,
    backtest.backtest,
    backtest.demo,
    stack.up,
    stack.down,
    stack.status,
):
    app.command()(command)


def main() -> None:
    app()
