"""`compare`: two registered versions side by side on one holdout (metrics, the paired difference,
lineage differences, the gate's and releases' decisions), for terminals and CI."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from featureloop.cli.common import Clock, fail, load_settings


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
