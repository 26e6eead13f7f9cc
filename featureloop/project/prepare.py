"""A project's prepare step: the function its spec names (`prepare: module:function`) that reads the
project's raw data and writes the offline store's tables as one dataset version
(`featureloop.dataset_versions.write_version`: atomic, so a failed step leaves the previous version).

The module is looked up beside the feature repository first (a file of the project, e.g. prepare.py),
then on the import path (a package, e.g. the worked example's `data.prepare`).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featureloop.project.spec import ProjectSpec

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class PrepareContext:
    """What a prepare step gets: where raw files are (None: the step's own default), where dataset
    versions go, the offline store's link to the current one, and a progress line printer."""

    raw_dir: Path | None
    versions_dir: Path
    offline_dir: Path
    report: Callable[[str], None]

    def write(self, tables: dict[str, pd.DataFrame], times: pd.Series, source: str) -> dict[str, Any]:
        """Write `tables` (name -> frame) as one dataset version, the offline store pointing at it;
        the summary a prepare step returns: the version, its files, and the range of `times` (the
        spine's prediction times)."""
        from featureloop.dataset_versions import write_version

        time_range = {"start": times.min().isoformat(), "end": times.max().isoformat()}
        manifest = write_version(
            tables, self.versions_dir, self.offline_dir, {"time_range": time_range, "source": source}
        )
        return {"version": manifest["dataset_version"], "files": manifest["files"], "time_range": time_range}


class PrepareStepError(RuntimeError):
    """The spec names no prepare step, or one that cannot be imported."""


def load_step(spec: ProjectSpec, feature_repo: Path) -> Callable[[PrepareContext], dict[str, Any]]:
    """The function `spec.prepare` names, from the project's folder (the feature repo's parent) or
    the import path."""
    if spec.prepare is None:
        raise PrepareStepError(
            f"project {spec.name!r} names no prepare step: add `prepare: module:function` to its spec "
            "(a function that writes the offline tables), or write them into the offline store yourself"
        )
    module_name, _, function = spec.prepare.partition(":")
    path = feature_repo.resolve().parent.joinpath(*module_name.split(".")).with_suffix(".py")
    try:
        if path.is_file():
            loader = importlib.util.spec_from_file_location(
                f"featureloop_project_{spec.name}_{path.stem}", path
            )
            assert loader is not None and loader.loader is not None
            module = importlib.util.module_from_spec(loader)
            sys.modules[loader.name] = module  # dataclasses and pickling look a module up by name
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PrepareStepError(
            f"prepare: {spec.prepare!r}: cannot import {module_name!r} ({exc}); put {path.name} beside "
            f"{feature_repo.name}/, or name an installed module"
        ) from exc
    step = getattr(module, function, None)
    if not callable(step):
        raise PrepareStepError(f"prepare: {spec.prepare!r}: {module_name} has no function {function!r}")
    return step
