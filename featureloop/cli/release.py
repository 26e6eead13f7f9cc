"""`release`: the version the gate passed, released on live traffic (shadow, canary, decided by the
live comparison; docs/releases.md). The `release` flow runs the same steps from the Prefect UI."""

from __future__ import annotations

from typing import Annotated

import typer

from featureloop.cli.common import Clock, fail, load_settings, parse_time

ACTIONS = ("advance", "start", "promote", "rollback")


def release(
    action: Annotated[
        str,
        typer.Argument(
            help="advance: decide the current stage if its evidence is in; start: release --version; "
            "promote / rollback: end the release in progress now, by hand."
        ),
    ] = "advance",
    version: Annotated[str | None, typer.Option("--version", help="start: the version to release.")] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="The release clock (ISO 8601, UTC); default: now.")
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="promote / rollback: why, for the record.")] = "",
) -> None:
    """Release a version on live traffic, or decide the release in progress."""
    from featureloop.params import ReleaseParams
    from featureloop.project.spec import SpecError
    from featureloop.release.pipeline import run_release
    from featureloop.release.state import ReleaseRefused
    from featureloop.training.registry import TrackingUnavailable

    if action not in ACTIONS:
        raise fail(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
    from pydantic import ValidationError

    from featureloop.params import explain

    settings, clock = load_settings(), Clock()
    try:
        params = ReleaseParams(
            action=action, version=version, as_of=parse_time(as_of, "--as-of"), reason=reason
        )
    except ValidationError as exc:
        raise fail(f"{explain(exc)}\nNothing was done.") from exc
    try:
        result = run_release(settings, params, report=clock)
    except (ReleaseRefused, TrackingUnavailable, SpecError) as exc:
        raise fail(f"{exc}\nNo alias moved.") from exc
    for check in result.get("checks", []):
        mark = "ok  " if check["passed"] else "FAIL"
        typer.echo(f"  {mark} {check['check']}: {check.get('why', '')}")
    typer.echo(f"{settings.model_name}: {result['summary']}")
    typer.echo(f"release done in {clock.elapsed:.1f} s")
