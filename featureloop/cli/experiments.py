"""`tune`: a hyperparameter search as an MLflow experiment (a child run per trial, the best through
the gate); `compare`: two registered versions side by side on one holdout (metrics, the paired
difference, lineage differences, the gate's and releases' decisions), for terminals and CI."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from featureloop.cli.common import Clock, fail, labeller, load_settings, parse_time
from featureloop.cli.training import NOTHING_REGISTERED, TRAIN_OPTIONS, print_train


def compare(
    a: Annotated[str, typer.Argument(help="A registered version (number).")],
    b: Annotated[str, typer.Argument(help="Another registered version.")],
    holdout_of: Annotated[
        str | None,
        typer.Option("--holdout-of", help="Whose holdout both are scored on (a or b; default: the newer)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON (for CI).")] = False,
) -> None:
    """Compare two model versions on the same holdout: metrics, lineage, gate and release decisions."""
    from featureloop.project.spec import SpecError
    from featureloop.training.compare import CannotCompare, compare_versions
    from featureloop.training.dataset import TrainingDataError
    from featureloop.training.registry import TrackingUnavailable

    settings, clock = load_settings(), Clock()
    clock(f"{settings.model_name}: rebuilding the holdout and scoring versions {a} and {b}")
    try:
        found = compare_versions(settings, a, b, holdout_of)
    except (CannotCompare, TrackingUnavailable, SpecError) as exc:
        raise fail(str(exc)) from exc
    except TrainingDataError as exc:
        raise fail(f"the holdout cannot be rebuilt: {exc.describe()}") from exc
    if as_json:
        typer.echo(json.dumps(found, indent=2, default=str))
        return
    print_comparison(found)
    typer.echo(f"compare done in {clock.elapsed:.1f} s")


def print_comparison(found: dict[str, Any]) -> None:
    a, b, h = found["a"], found["b"], found["holdout"]
    typer.echo(
        f"{found['model']}: version {a} vs version {b} on version {h['of']}'s holdout "
        f"({h['rows']:,} rows, {h['window']}, {h['feature_service']})\n"
    )
    typer.echo(f"{'metric':<12} {'v' + a:>10} {'v' + b:>10} {'b - a':>10}")
    for name in found["metric_names"]:
        va, vb = found["metrics"][a][name], found["metrics"][b][name]
        typer.echo(f"{name:<12} {va:>10.4f} {vb:>10.4f} {vb - va:>+10.4f}")
    d = found["difference"]
    verdict = "beyond noise" if abs(d["b_minus_a"]) > 1.96 * d["standard_error"] else "within noise"
    typer.echo(
        f"{d['metric']}: b - a = {d['b_minus_a']:+.4f} +/- {1.96 * d['standard_error']:.4f} ({d['test']}; {verdict})\n"
    )
    if found["lineage_differs"]:
        typer.echo("lineage that differs:")
        for row in found["lineage_differs"]:
            typer.echo(f"  {row['key']:<24} v{a}: {row['a']}\n  {'':<24} v{b}: {row['b']}")
    typer.echo(f"lineage the same: {', '.join(found['lineage_same']) or '-'}\n")
    for version in (a, b):
        dec = found["decisions"][version]
        aliases = ", ".join(dec["aliases"]) or "no alias"
        gate = dec["gate"]
        typer.echo(f"v{version} ({aliases}): gate {'passed' if gate['promoted'] == 'true' else 'did not pass' if gate['promoted'] else 'not run'}"
                   + (f": {gate['reason']}" if gate["reason"] else ""))  # fmt: skip
        if dec["release"]["stage"]:
            typer.echo(
                f"  release: {dec['release']['stage']}"
                + (f": {dec['release']['reason']}" if dec["release"]["reason"] else "")
            )


def _value(text: str) -> float | int | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def parse_grid(items: list[str]) -> dict[str, list[float | int | str]]:
    """`name=v1,v2` options as a grid; a malformed one is a named error."""
    grid: dict[str, list[float | int | str]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or not name.strip() or not values.strip():
            raise fail(f"--grid {item!r} is not NAME=V1,V2: e.g. --grid learning_rate=0.05,0.1")
        grid[name.strip()] = [_value(v.strip()) for v in values.split(",") if v.strip()]
    return grid


def tune(
    start: Annotated[str | None, typer.Option(help="First prediction time (ISO, UTC).")] = None,
    end: Annotated[str | None, typer.Option(help="End of the window (ISO, UTC, exclusive).")] = None,
    family: Annotated[str | None, typer.Option(help="hist_gradient_boosting | logistic_regression")] = None,
    grid: Annotated[
        list[str] | None, typer.Option("--grid", help="NAME=V1,V2 (repeat); default: the family's search.")
    ] = None,
    max_trials: Annotated[int, typer.Option(help="At most this many trials.")] = 8,
    promote: Annotated[bool, typer.Option(help="Gate the best trial and promote it when it passes.")] = True,
    release: Annotated[
        bool, typer.Option(help="Release the best on live traffic (shadow, canary) instead of promoting it.")
    ] = False,
) -> None:
    """Search a model family's hyperparameters (a child MLflow run per trial), register the best, gate it."""
    from pydantic import ValidationError

    from featureloop.params import TrainParams, explain
    from featureloop.project.spec import SpecError
    from featureloop.training.dataset import TrainingDataError
    from featureloop.training.registry import TrackingUnavailable
    from featureloop.training.tuning import TuneParams, fit_one_by_one, run_tuning_steps

    settings, clock = load_settings(), Clock()
    label = labeller(TRAIN_OPTIONS, {"train_start": start, "train_end": end, "model_family": family})
    given = {"train_start": parse_time(start, "--start"), "train_end": parse_time(end, "--end"),
             "model_family": family, "promote": promote, "release": release}  # fmt: skip
    try:
        params = TuneParams(
            train=TrainParams(**{k: v for k, v in given.items() if v is not None}),
            grid=parse_grid(grid or []),
            max_trials=max_trials,
        )
    except ValidationError as exc:
        raise fail(f"{explain(exc, label)}\n{NOTHING_REGISTERED}") from exc
    from featureloop.steps import PlainSteps

    try:
        summary = run_tuning_steps(PlainSteps(clock), settings, params, fit_one_by_one(clock))
    except TrainingDataError as exc:
        raise fail(f"{exc.describe(label)}\n{NOTHING_REGISTERED}") from exc
    except (TrackingUnavailable, SpecError, RuntimeError) as exc:
        raise fail(f"{exc}\n{NOTHING_REGISTERED}") from exc
    print_train(summary)
    typer.echo(f"trials: {len(summary['trials'])}, best trial {summary['best_trial']} "
               f"{summary['trials'][summary['best_trial']]['hyperparameters']}; parent run {summary['parent_run_id']}")  # fmt: skip
    typer.echo(f"tune done in {clock.elapsed:.1f} s")
