"""`validate`: the project's spec (feature_repo/project.yaml) against the registry and its offline
tables, every problem named with the field and what to write instead."""

from __future__ import annotations

import typer

from featureloop.cli.common import Clock, fail, load_settings


def validate() -> None:
    """Check the project spec beside feature_store.yaml against the registry and the offline tables."""
    from featureloop.project.spec import SpecError, load_spec, spec_path

    clock = Clock()
    settings = load_settings()
    try:
        spec = load_spec(settings.feature_repo)
    except SpecError as exc:
        raise fail(str(exc)) from exc
    clock(
        f"spec {spec_path(settings.feature_repo)}: {spec.name} ({spec.task.type}), service {spec.feature_service}"
    )
    from featureloop.featurestore.store import open_store
    from featureloop.project.checks import check_project

    clock("reading the registry and the spine's table")
    problems = check_project(spec, open_store(settings), settings.offline_dir)
    if problems:
        raise fail(
            f"{len(problems)} problem(s) in {spec_path(settings.feature_repo)}:\n"
            + "\n".join(f"  {p}" for p in problems)
        )
    keys = ", ".join(spec.spine.entity_keys) or "none (system-wide views)"
    typer.echo(
        f"project {spec.name}: {spec.task.type} on {spec.spine.table}.{spec.spine.id} at {spec.spine.time}; "
        f"keys {keys}; label {spec.task.label}"
    )
    typer.echo(f"validate done in {clock.elapsed:.1f} s: no problems")
