"""`train` and `rollback`: a model trained on a window, registered in MLflow and promoted through the
validation gate; the champion alias moved back to the previous version."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from featureloop.cli.common import Clock, fail, labeller, load_settings, parse_time

if TYPE_CHECKING:
    from featureloop.settings import Settings

# The options whose values the parameters model checks, by the model's field name: a wrong value is
# named as the user typed it (featureloop.params.explain, TrainingDataError).
TRAIN_OPTIONS = {
    "train_start": "--start",
    "train_end": "--end",
    "feature_service": "--feature-service",
    "model_family": "--family",
}
NOTHING_REGISTERED = "Nothing was registered and no alias moved."


def run_train(
    settings: Settings,
    clock: Clock,
    typed: dict[str, str | None] | None = None,
    check_only: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    from pydantic import ValidationError

    from featureloop.params import TrainParams, explain
    from featureloop.project.spec import SpecError
    from featureloop.training.dataset import TrainingDataError
    from featureloop.training.pipeline import run_training
    from featureloop.training.registry import TrackingUnavailable

    label = labeller(TRAIN_OPTIONS, typed or {})
    try:
        params = TrainParams(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise fail(f"{explain(exc, label)}\n{NOTHING_REGISTERED}") from exc
    try:
        return run_training(settings, params, report=clock, check_only=check_only)
    except TrainingDataError as exc:
        raise fail(f"{exc.describe(label)}\n{NOTHING_REGISTERED}") from exc
    except (TrackingUnavailable, SpecError) as exc:
        raise fail(f"{exc}\n{NOTHING_REGISTERED}") from exc


def print_train(summary: dict[str, Any]) -> None:
    rows = summary["rows"]
    typer.echo(
        f"\nmodel {summary['model']} version {summary['version']} "
        f"(train {rows['train']:,} / validation {rows['validation']:,} / holdout {rows['holdout']:,} rows)"
    )
    from featureloop.training.tasks import task_kind

    kind = task_kind(summary.get("task"))
    typer.echo(
        f"holdout      challenger   baseline   champion   (baseline: the training slice's {kind.baseline})"
    )
    for name in kind.metric_names:
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


def train(
    start: Annotated[str | None, typer.Option(help="First scheduled departure (ISO, UTC).")] = None,
    end: Annotated[str | None, typer.Option(help="End of the window (ISO, UTC, exclusive).")] = None,
    feature_service: Annotated[str | None, typer.Option(help="Feast feature service.")] = None,
    family: Annotated[str | None, typer.Option(help="hist_gradient_boosting | logistic_regression")] = None,
    promote: Annotated[bool, typer.Option(help="Run the gate and promote when it passes.")] = True,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Check the options and the window's rows, then stop: nothing is trained."
        ),
    ] = False,
) -> None:
    """Train on a window, register in MLflow, and promote through the validation gate."""
    clock = Clock()
    typed = {
        "train_start": start,
        "train_end": end,
        "feature_service": feature_service,
        "model_family": family,
    }
    summary = run_train(
        load_settings(),
        clock,
        typed=typed,
        check_only=check,
        train_start=parse_time(start, "--start"),
        train_end=parse_time(end, "--end"),
        feature_service=feature_service,
        model_family=family,
        promote=promote,
    )
    if summary.get("checked"):
        rows = summary["rows"]
        typer.echo(
            f"checked: train {rows['train']:,} / validation {rows['validation']:,} / holdout "
            f"{rows['holdout']:,} labelled rows, feature service {summary['feature_service']}; "
            "nothing was trained"
        )
        return
    print_train(summary)
    typer.echo(f"train done in {clock.elapsed:.1f} s")


def rollback() -> None:
    """Make the `previous` model version the champion again."""
    from featureloop.params import RollbackParams
    from featureloop.training.pipeline import run_rollback
    from featureloop.training.registry import NoPreviousModel, TrackingUnavailable

    settings = load_settings()
    try:
        result = run_rollback(settings, RollbackParams())
    except (NoPreviousModel, TrackingUnavailable) as exc:
        raise fail(str(exc)) from exc
    was = result["demoted"] or "none"
    typer.echo(f"{settings.model_name}: champion is version {result['champion']} again (was {was})")
