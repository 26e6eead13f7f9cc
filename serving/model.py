"""The model that answers: the MLflow champion, loaded once and hot-swapped when the alias moves."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from featureloop.settings import Settings, redacted
from featureloop.training.model import model_input_from_columns
from serving.scorer import CompiledScorer, agrees, compile_pipeline

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingModel:
    """One registered version, ready to score; a request uses exactly one of these."""

    name: str
    version: str
    pipeline: Any
    numeric: list[str]
    categorical: list[str]
    feature_service: str
    load_seconds: float
    compiled: CompiledScorer | None = None
    task: str = "binary"  # its lineage's: the probability of the positive label, or an estimate

    def predict_columns(self, columns: dict[str, list[Any]]) -> np.ndarray:
        """Predictions from column lists (request fields and served features)."""
        if self.compiled is not None:
            return self.compiled.predict(columns)
        x = model_input_from_columns(columns, self.numeric, self.categorical)
        if self.task == "regression":
            return np.asarray(self.pipeline.predict(x), dtype=float)
        return np.asarray(self.pipeline.predict_proba(x)[:, 1])


def load_version(name: str, version: str, tags: dict[str, str]) -> ServingModel:
    """Load a version of our registry with the inputs and feature service its lineage records."""
    from featureloop.training.registry import load_model

    start = time.perf_counter()
    pipeline = load_model(f"models:/{name}/{version}")
    inputs = json.loads(tags["model_inputs"])
    numeric, categorical = list(inputs["numeric"]), list(inputs["categorical"])
    task = tags.get("task", "binary")
    compiled = compile_pipeline(pipeline, numeric, categorical)
    if compiled is not None and not agrees(compiled, pipeline, task):
        compiled = None
    return ServingModel(
        name=name,
        version=version,
        pipeline=pipeline,
        numeric=numeric,
        categorical=categorical,
        feature_service=tags["feature_service"],
        load_seconds=time.perf_counter() - start,
        compiled=compiled,
        task=task,
    )


Resolve = Callable[[], "tuple[str, dict[str, str]] | None"]


class ModelSource(Protocol):
    """Where serving finds its models: who holds an alias now, and the model of a version."""

    def resolver(self, alias: str) -> Resolve:
        """A function giving (version, tags) of the version under `alias` now, or None; it raises
        when the source cannot be reached. Called once at start-up to check the source (it raises
        `TrackingUnavailable` there, naming it: serving refuses to start)."""
        ...

    def load(self, version: str, tags: dict[str, str]) -> ServingModel: ...


class RegistryModels:
    """The models of our MLflow registry (the default source)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def resolver(self, alias: str) -> Resolve:
        from featureloop.training.registry import TrackingUnavailable, get_alias, open_tracking

        settings = self._settings
        client, _ = open_tracking(settings)

        def resolve() -> tuple[str, dict[str, str]] | None:
            try:
                found = get_alias(client, settings.model_name, alias)
            except Exception as exc:  # what /ready and the log say: which store, and that serving goes on
                raise TrackingUnavailable(
                    f"MLflow tracking store {redacted(settings.tracking_uri)} is unreachable "
                    f"({type(exc).__name__}: {exc}); serving the loaded model until it is back"
                ) from exc
            return (found.version, found.tags) if found else None

        return resolve

    def load(self, version: str, tags: dict[str, str]) -> ServingModel:
        return load_version(self._settings.model_name, version, tags)


class ChampionWatcher:
    """Polls the champion alias and swaps the serving model atomically when it moves.

    `current` is replaced by one reference assignment: a request that read it keeps its model to the
    end. When the tracking store is unreachable the loaded model keeps serving and `healthy` says so.
    """

    def __init__(
        self,
        resolve: Resolve,
        load: Callable[[str, dict[str, str]], ServingModel],
        interval: float,
        on_swap: Callable[[ServingModel], None] = lambda _m: None,
        on_error: Callable[[Exception], None] = lambda _e: None,
        *,
        keep_when_gone: bool = True,
        name: str = "champion",
    ) -> None:
        self._resolve, self._load, self._interval = resolve, load, interval
        self._on_swap, self._on_error = on_swap, on_error
        self._keep_when_gone, self._name = keep_when_gone, name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{name}-watcher", daemon=True)
        # The model and its version's tags as last read (a release's stage lives there), replaced in
        # one assignment: a reader sees a model and the tags of the same version.
        self.held: tuple[ServingModel, dict[str, str]] | None = None
        self.last_error: str | None = None

    @property
    def current(self) -> ServingModel | None:
        """The model serving uses now (None: not loaded, or a challenger whose alias is gone)."""
        held = self.held
        return held[0] if held else None

    def load_now(self) -> ServingModel:
        """Load the champion (at start-up); raises when there is none or it cannot be loaded."""
        found = self._resolve()
        if found is None:
            raise LookupError("no model version has the alias 'champion': train and promote one first")
        version, tags = found
        model = self._load(version, tags)
        self.held = (model, tags)
        self._on_swap(model)
        return model

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def healthy(self) -> bool:
        return self.last_error is None

    def check(self) -> None:
        """One poll: swap if the alias points elsewhere (or, when `keep_when_gone` is false, drop the
        model when the alias is gone); the version's tags are read each time."""
        try:
            found, held = self._resolve(), self.held
            if found is None and not self._keep_when_gone and held is not None:
                logger.info("%s alias removed: version %s no longer used", self._name, held[0].version)
                self.held = None
            elif found is not None and (held is None or found[0] != held[0].version):
                if not self._keep_when_gone:
                    # A challenger replaced: the old one stops now, not once the new one has loaded.
                    self.held = None
                started = time.perf_counter()
                model = self._load(*found)
                logger.info(
                    "%s moved: version %s -> %s (loaded in %.2f s)",
                    self._name,
                    held[0].version if held else None,
                    found[0],
                    time.perf_counter() - started,
                )
                self.held = (model, found[1])
                self._on_swap(model)
            elif found is not None and held is not None and found[1] != held[1]:
                self.held = (held[0], found[1])  # the same version, its tags changed (a release stage)
            self.last_error = None
        except Exception as exc:  # keep serving the loaded model whatever the tracking store does
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._on_error(exc)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.check()
