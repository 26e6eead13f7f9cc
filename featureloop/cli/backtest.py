"""`backtest` (and `demo`, the worked example's): the loop end to end on a project's history,
through the same helpers as `prepare`, `apply`, `materialize` and `train`, then the replay
(flows.backtest)."""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer

from featureloop.cli.common import Clock, fail, load_settings
from featureloop.cli.feature_store import (
    print_materialize,
    print_prepare,
    run_apply,
    run_materialize,
    run_prepare,
)
from featureloop.cli.training import print_train, run_train


def run_backtest(replay: bool, share: float, releases: bool | None = None) -> None:
    """Prepare, apply, load, train the first champion, then replay the project's history through the
    loop (the spec's `backtest` section) beside two reference policies, and print the scorecard."""
    from featureloop.operations.prefect_server import prefect_server

    clock = Clock()
    settings = load_settings()
    if replay and settings.profile != "embedded":
        raise fail(
            "the replay writes the embedded profile's SQLite online store hour by hour: run it with "
            "FEATURELOOP_PROFILE=embedded, or with --no-replay on this profile"
        )
    steps = 5 if replay else 4
    try:
        # The Prefect server starts first: it boots while the data is prepared.
        with prefect_server(report=clock) if replay else contextlib.nullcontext() as server:
            typer.echo(f"== 1/{steps} prepare: the project's prepare step writes the offline store", err=True)
            prepared = run_prepare(settings, clock)
            from featureloop.project.spec import load_spec
            from flows.backtest import plan, reset_replay_state

            the = plan(load_spec(settings.feature_repo), settings.offline_dir)
            if replay:
                reset_replay_state(settings)
            typer.echo(f"== 2/{steps} apply: register the feature repository", err=True)
            objects = run_apply(settings, clock)
            typer.echo(f"== 3/{steps} materialize: load the online store", err=True)
            loaded = run_materialize(settings, clock, the.start if replay else None, None, None)
            first_start, first_end = the.first_model
            typer.echo(
                f"== 4/{steps} train: the first champion on {first_start:%Y-%m-%d %H:%M} .. {first_end:%Y-%m-%d %H:%M} UTC",
                err=True,
            )
            trained = run_train(settings, clock, train_start=first_start, train_end=first_end)
            if replay:
                from flows.backtest import force_champion, run_replay_phase

                force_champion(settings, trained["version"])
                typer.echo(
                    f"== 5/{steps} replay: {the.start:%Y-%m-%d} .. {the.end:%Y-%m-%d}, a drift run every "
                    f"{the.step.days or the.step}, through the loop",
                    err=True,
                )
                weeks, card = run_replay_phase(
                    settings, trained["version"], clock, server, share=share, releases=releases
                )
    except (RuntimeError, ValueError) as exc:
        raise fail(str(exc)) from exc
    print_prepare(prepared)
    print_materialize(loaded)
    print_train(trained)
    if replay:
        from flows.backtest import print_scorecard, write_report

        print_scorecard(card, typer.echo)
        path = write_report(settings.drift_dir / "replay.html", card, weeks)
        typer.echo(f"replay report: {path} (drift reports of each window: {settings.drift_dir / 'reports'})")
    typer.echo(
        f"\nbacktest done in {clock.elapsed:.1f} s: {len(objects['feature_views'])} feature views, "
        f"services {', '.join(objects['feature_services'])}"
    )


REPLAY = typer.Option(help="Replay the history through the loop (--no-replay: set-up and first model only).")
SHARE = typer.Option(help="Share of the prediction events the replay sends (a fixed sample by their id).")
RELEASES = typer.Option(
    help="Release each retrain the gate passes on live traffic (shadow, canary) or promote it at once; "
    "default: the spec's monitoring.release.enabled."
)


def backtest(
    replay: Annotated[bool, REPLAY] = True,
    share: Annotated[float, SHARE] = 1.0,
    releases: Annotated[bool | None, RELEASES] = None,
) -> None:
    """Replay the project's history through the loop (prepare, apply, load, first champion, then
    serving, drift and drift-triggered retraining step by step) beside two reference policies (never
    retrain, retrain on schedule), as the spec's `backtest` section says; prints the scorecard."""
    run_backtest(replay, share, releases)


def demo(
    replay: Annotated[bool, REPLAY] = True,
    share: Annotated[float, SHARE] = 1.0,
    releases: Annotated[bool | None, RELEASES] = None,
) -> None:
    """The worked example's backtest (the default project, the 2013 New York flights: January-February
    train the first champion, March-December are replayed): `backtest` by its `make demo` name."""
    run_backtest(replay, share, releases)
