"""`up`, `down`, `status`: the local stack (featureloop.operations.stack) from the command line."""

from __future__ import annotations

import typer

from featureloop.cli.common import Clock, fail, load_settings


def up() -> None:
    """Start the local stack (Prefect server, deployments, MLflow UI, serving, Prometheus) and wait
    until each is healthy. Processes, pids and logs live under .run/; `featureloop down` stops them."""
    from featureloop.operations import stack

    clock = Clock()
    try:
        urls = stack.up(load_settings(), report=clock)
    except RuntimeError as exc:
        raise fail(f"{exc}\n`featureloop down` stops what did start.") from exc
    typer.echo("\nfeatureloop is up:")
    for name, url in urls.items():
        typer.echo(f"  {name:<12} {url}")
    typer.echo(f"stop it with `make down`; `make status` shows it ({clock.elapsed:.1f} s)")


def down() -> None:
    """Stop exactly the processes `featureloop up` started."""
    from featureloop.operations import stack

    stopped = stack.down(report=typer.echo)
    typer.echo(f"stopped {len(stopped)} process(es)" if stopped else "nothing was running")


def status() -> None:
    """What `featureloop up` started, whether it is healthy, and where."""
    from featureloop.operations import stack

    for name, state, url in stack.status(load_settings()):
        typer.echo(f"{name:<12} {state:<32} {url}")
