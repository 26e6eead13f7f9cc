"""`init`: a new project that works as it is (`featureloop/project/template/`), to start from and edit."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Annotated, Literal

import typer

from featureloop.cli.common import fail

TEMPLATE = Path(__file__).resolve().parent.parent / "project" / "template"
LABELS = {"regression": "wear_next_6h", "binary": "wear_next_6h > 1.5"}
DECISION = {
    "regression": "",
    "binary": "  decision_field: worn         # /predict answers probability and worn",
}


def scaffold(path: Path, name: str, task: Literal["regression", "binary"]) -> list[Path]:
    """Copy the template to `path` with the project's name and task; returns the files written."""
    written = []
    for source in sorted(TEMPLATE.rglob("*")):
        if source.is_dir() or "__pycache__" in source.parts:
            continue
        relative = source.relative_to(TEMPLATE)
        target = path / (".env" if relative.name == "env" else relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = source.read_text()
        for marker, value in {
            "__NAME__": name,
            "__TASK__": task,
            "__LABEL__": LABELS[task],
            "__DECISION__": DECISION[task],
        }.items():
            text = text.replace(marker, value)
        target.write_text(text)
        written.append(target)
    return written


def init(
    path: Annotated[Path, typer.Argument(help="Folder of the new project (must not exist, or be empty).")],
    task: Annotated[
        str, typer.Option(help="regression (wear over the next 6 h) or binary (wear above 1.5)")
    ] = "regression",
    name: Annotated[str | None, typer.Option(help="Project name; default: the folder's.")] = None,
) -> None:
    """Scaffold a project (feature repo, spec, prepare step, example data) that trains, serves and
    checks drift as it is."""
    if task not in LABELS:
        raise fail(f"--task {task!r} is not a task: use regression or binary")
    project = name or re.sub(r"\W", "_", path.resolve().name).strip("_") or "project"
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", project):
        raise fail(f"project name {project!r}: use letters, digits and _ (and not a digit first): --name")
    if path.exists() and any(path.iterdir()):
        raise fail(f"{path} exists and is not empty: nothing was written; choose a new folder")
    path.mkdir(parents=True, exist_ok=True)
    try:
        written = scaffold(path, project, task)  # type: ignore[arg-type]
    except OSError as exc:
        shutil.rmtree(path, ignore_errors=True)
        raise fail(f"could not write the project: {exc}; nothing was kept") from exc
    for file in written:
        typer.echo(f"wrote {file.relative_to(path)}")
    typer.echo(f"\nproject {project} ({task}) in {path}: next, as its README.md says,")
    typer.echo(
        f"  cd {path} && featureloop prepare && featureloop apply && featureloop train --end 2024-02-15"
    )
