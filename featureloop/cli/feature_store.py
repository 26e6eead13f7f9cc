"""`prepare`, `apply`, `materialize`: the project's data into the offline store, the repository into Feast's
registry, the latest values into the online store (the demo runs the same helpers)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from featureloop.cli.common import Clock, fail, load_settings, parse_time

if TYPE_CHECKING:
    from featureloop.settings import Settings


def run_prepare(settings: Settings, clock: Clock) -> dict[str, Any]:
    """The project's prepare step (its spec's `prepare`), which writes one dataset version."""
    from featureloop.project.prepare import PrepareContext, PrepareStepError, load_step
    from featureloop.project.spec import SpecError, load_spec

    unchanged = "Nothing was written; the previous dataset (if any) is unchanged."
    try:
        spec = load_spec(settings.feature_repo)
        step = load_step(spec, settings.feature_repo)
    except (SpecError, PrepareStepError) as exc:
        raise fail(f"{exc}\n{unchanged}") from exc
    clock(f"project {spec.name}: prepare step {spec.prepare}")
    context = PrepareContext(settings.raw_dir, settings.versions_dir, settings.offline_dir, clock)
    try:
        summary = step(context)
    except Exception as exc:  # the project's own code: its message, and what was not touched
        raise fail(f"{type(exc).__name__}: {exc}\n{unchanged}") from exc
    clock(f"dataset version {summary['version']} -> {settings.offline_dir}")
    return summary


def print_prepare(summary: dict[str, Any]) -> None:
    if summary.get("validation"):
        typer.echo("\ntable        read   accepted  quarantined  rules broken")
    for name, counts in summary.get("validation", {}).items():
        rules = ", ".join(f"{rule}={n}" for rule, n in counts["by_rule"].items()) or "-"
        typer.echo(
            f"{name:<10} {counts['read']:>7,} {counts['accepted']:>10,} {counts['quarantined']:>12,}  {rules}"
        )
    typer.echo("\noffline table            rows")
    for name, meta in summary["files"].items():
        if not name.startswith("quarantine/"):
            typer.echo(f"{name:<22} {meta['rows']:>9,}")
    typer.echo(
        f"\ndataset version {summary['version']}  ({summary['time_range']['start']} .. {summary['time_range']['end']})"
    )


def prepare() -> None:
    """Run the project's prepare step: its raw data into the offline store's tables (one dataset version)."""
    clock = Clock()
    summary = run_prepare(load_settings(), clock)
    print_prepare(summary)
    typer.echo(f"prepare done in {clock.elapsed:.1f} s")


def run_apply(settings: Settings, clock: Clock) -> dict[str, Any]:
    """`feast apply` of the repository, between two checks of its project spec: the file itself
    before (a spec that does not load stops everything: nothing is applied), the spec against the
    applied registry and the offline tables after (`featureloop validate`'s checks)."""
    from featureloop.featurestore.store import apply_repo, open_store
    from featureloop.project.checks import check_project
    from featureloop.project.spec import SpecError, load_spec, spec_path

    if not settings.offline_dir.exists():
        raise fail(f"no prepared data at {settings.offline_dir}: run `featureloop prepare` first")
    try:
        spec = load_spec(settings.feature_repo)
    except SpecError as exc:
        raise fail(f"{exc}\nNothing was applied.") from exc
    clock(f"feast apply {settings.feature_repo}")
    objects = apply_repo(settings)
    clock(
        f"registry: {len(objects['entities'])} entities, {len(objects['feature_views'])} feature views, "
        f"{len(objects['feature_services'])} feature services"
    )
    problems = check_project(spec, open_store(settings), settings.offline_dir)
    if problems:
        raise fail(
            f"the registry is applied, but {len(problems)} problem(s) in {spec_path(settings.feature_repo)} "
            "stop training and serving:\n"
            + "\n".join(f"  {p}" for p in problems)
            + "\nFix them and run `featureloop validate`."
        )
    clock(f"project {spec.name}: its spec agrees with the registry and the offline tables")
    return objects


def apply() -> None:
    """Register the feature repository's entities, views and services (`feast apply`)."""
    clock = Clock()
    objects = run_apply(load_settings(), clock)
    for kind, names in objects.items():
        typer.echo(f"{kind:<17} {', '.join(names)}")
    typer.echo(f"apply done in {clock.elapsed:.1f} s")


def _data_end(settings: Settings) -> datetime:
    from featureloop.dataset_versions import read_manifest

    try:
        manifest = read_manifest(settings.offline_dir)
    except FileNotFoundError as exc:
        raise fail(f"no prepared data at {settings.offline_dir}: run `featureloop prepare` first") from exc
    return datetime.fromisoformat(manifest["time_range"]["end"])


def run_materialize(
    settings: Settings, clock: Clock, end: datetime | None, start: datetime | None, views: list[str] | None
) -> dict[str, Any]:
    """The materialisation pipeline (featureloop.featurestore.materialization) as plain calls: each
    view's values as of `end` (default: the end of the data)."""
    from featureloop.featurestore.materialization import materialize_online
    from featureloop.featurestore.store import open_store
    from featureloop.steps import PlainSteps

    end = end or _data_end(settings)
    store = open_store(settings)
    if not store.list_feature_views():
        raise fail("the registry has no feature views: run `featureloop apply` first")
    try:
        return materialize_online(
            store, PlainSteps(report=clock), end, start=start, feature_views=views,
            latest=settings.event_time_bounds.latest(datetime.now(UTC)),
        )  # fmt: skip
    except ValueError as exc:
        raise fail(str(exc)) from exc


def print_materialize(summary: dict[str, Any]) -> None:
    typer.echo("\nfeature view      window start                 online entities")
    for window in summary["loaded"]:
        name = window["feature_view"]
        count = summary["online_entities"].get(name, 0)
        note = "  (no row within its TTL before the end)" if count == 0 else ""
        typer.echo(f"{name:<17} {window['start']:<28} {count:>10,}{note}")
    typer.echo(f"online store loaded as of {summary['end']}")


def materialize(
    end: Annotated[
        str | None, typer.Option(help="ISO time to load up to; default: the end of the data.")
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="ISO time to load from; default: each view's end - TTL.")
    ] = None,
    view: Annotated[list[str] | None, typer.Option(help="Only these feature views (repeatable).")] = None,
) -> None:
    """Load the latest feature values as of END from the offline store into the online store."""
    clock = Clock()
    summary = run_materialize(
        load_settings(), clock, parse_time(end, "--end"), parse_time(start, "--start"), view
    )
    print_materialize(summary)
    typer.echo(f"materialize done in {clock.elapsed:.1f} s")
