"""`demo`: the loop end to end on the real 2013 flights, through the same helpers as `prepare`,
`apply`, `materialize` and `train`, then the replay (flows.demo)."""

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


def demo(
    replay: Annotated[
        bool,
        typer.Option(
            help="Replay March-December through the loop (--no-replay: set-up and first model only)."
        ),
    ] = True,
    share: Annotated[
        float, typer.Option(help="Share of the flights the replay sends (a fixed sample by flight id).")
    ] = 1.0,
) -> None:
    """The loop end to end on the real 2013 flights: prepare, apply, load, train on January-February,
    then replay March-December week by week through serving, drift and drift-triggered retraining,
    beside two reference policies (never retrain, retrain weekly)."""
    from featureloop.operations.prefect_server import prefect_server

    clock = Clock()
    settings = load_settings()
    if replay and settings.profile != "embedded":
        raise fail(
            "the replay writes the embedded profile's SQLite online store hour by hour: run it with "
            "FEATURELOOP_PROFILE=embedded, or `featureloop demo --no-replay` on this profile"
        )
    steps = 5 if replay else 4
    try:
        # The Prefect server starts first: it boots while the data is prepared.
        with prefect_server(report=clock) if replay else contextlib.nullcontext() as server:
            typer.echo(f"== 1/{steps} prepare: validate nycflights13 and write the offline store", err=True)
            prepared = run_prepare(settings, clock)
            if replay:
                from flows.demo import REPLAY_START, reset_replay_state

                reset_replay_state(settings)
            typer.echo(f"== 2/{steps} apply: register the feature repository", err=True)
            objects = run_apply(settings, clock)
            typer.echo(f"== 3/{steps} materialize: load the online store", err=True)
            loaded = run_materialize(settings, clock, REPLAY_START if replay else None, None, None)
            typer.echo(f"== 4/{steps} train: January-February 2013, register, gate, promote", err=True)
            from flows.demo import FIRST_TRAIN

            trained = run_train(
                settings, clock, train_start=FIRST_TRAIN["train_start"], train_end=FIRST_TRAIN["train_end"]
            )
            if replay:
                from flows.demo import force_champion, run_replay_phase

                force_champion(settings, trained["version"])
                typer.echo(
                    f"== 5/{steps} replay: March-December 2013, week by week, through the loop", err=True
                )
                weeks, card = run_replay_phase(settings, trained["version"], clock, server, share=share)
    except RuntimeError as exc:
        raise fail(str(exc)) from exc
    print_prepare(prepared)
    print_materialize(loaded)
    print_train(trained)
    if replay:
        from flows.demo import print_scorecard, write_report

        print_scorecard(card, typer.echo)
        path = write_report(settings.drift_dir / "replay.html", card, weeks)
        typer.echo(f"replay report: {path} (weekly drift reports: {settings.drift_dir / 'reports'})")
    typer.echo(
        f"\ndemo done in {clock.elapsed:.1f} s: {len(objects['feature_views'])} feature views, "
        f"services {', '.join(objects['feature_services'])}"
    )
