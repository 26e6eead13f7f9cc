"""A project's spec: what is specific to one model, declared once in `project.yaml` beside the feature
repository's `feature_store.yaml`, validated by these pydantic models (`docs/project.schema.json` is
their JSON schema, for editors).

The feature repository says which features exist; the spec says how a model uses them: the feature
service, where prediction events come from (the spine), the request a caller sends, the task and its
label, when an outcome becomes known, and the thresholds of training, monitoring, serving and the
backtest. Nothing here imports Feast: `featureloop.project.checks` compares a spec with the registry.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from featureloop.durations import Duration, parse_duration
from featureloop.monitoring.thresholds import DecayConfig, DriftConfig, ReleaseConfig
from featureloop.project.spine import NAME, RequestField, SpecModel, Spine, template_fields

__all__ = ["Duration", "RequestField", "SpecModel", "Spine", "parse_duration", "template_fields"]

SPEC_FILE = "project.yaml"


class OutcomeKnown(SpecModel):
    """When a prediction's outcome becomes known: exactly one of a column of the spine (a timestamp),
    a fixed delay after the prediction time, or the end of a future window (a label over the next N
    days is known N days later)."""

    column: str | None = None
    delay: Duration | None = None
    window: Duration | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> OutcomeKnown:
        given = [k for k in ("column", "delay", "window") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"outcome_known takes exactly one of column, delay, window; got {given or 'none'} "
                "(e.g. column: outcome_known_ts, or delay: 3h, or window: 90d)"
            )
        return self

    @property
    def after(self) -> timedelta | None:
        """The fixed time after the prediction at which the outcome is known (None: a column says)."""
        text = self.delay or self.window
        return parse_duration(text) if text else None


class Task(SpecModel):
    """What the model predicts. The label is a SQL expression (DuckDB) over the spine's columns; a row
    whose label is NULL has no outcome yet and is not trained on."""

    type: Literal["binary", "regression"]
    label: str = Field(..., min_length=1, examples=["days_to_pay > 30", "next_month_price"])
    outcome_known: OutcomeKnown


class Monitoring(SpecModel):
    """The drift run's thresholds, as operators edit them: the drift and decay configurations, how
    many of the last windows must drift before the event fires, and the skew check's sample."""

    window: Duration = "7d"
    seasonal_reference: Duration | None = Field(
        None, description="Compare each window with the rows served one season earlier (24h, 7d, 365d)."
    )
    drift: DriftConfig = Field(default_factory=DriftConfig)
    decay: DecayConfig = Field(default_factory=DecayConfig)
    release: ReleaseConfig = Field(
        default_factory=ReleaseConfig,
        description="How a retrained version that passed the gate is released: shadow, canary, the decisions.",
    )
    persistence_k: int = Field(2, ge=1)
    persistence_n: int = Field(3, ge=1)
    skew_sample: int = Field(200, ge=0)

    @model_validator(mode="after")
    def _k_of_n(self) -> Monitoring:
        if self.persistence_k > self.persistence_n:
            raise ValueError(
                f"persistence_k {self.persistence_k} is above persistence_n {self.persistence_n}: "
                "the event needs k drifted windows out of the last n"
            )
        return self


class Training(SpecModel):
    window: Duration = "60d"
    model_family: Literal["hist_gradient_boosting", "logistic_regression"] = "hist_gradient_boosting"
    hyperparameters: dict[str, float | int | str] = Field(default_factory=dict)
    validation_fraction: float = Field(0.15, gt=0, lt=0.5)
    holdout_fraction: float = Field(0.15, gt=0, lt=0.5)


class Serving(SpecModel):
    batch_field: str = Field("rows", pattern=NAME.pattern, description="The request body's list of rows.")
    canary_key: str | None = Field(None, description="Request field whose hash routes a row to the canary.")
    decision_field: str = Field(
        "positive",
        pattern=NAME.pattern,
        description="Binary tasks: the name of the yes/no answer beside the probability (e.g. late).",
    )


def _utc(value: datetime | None) -> datetime | None:
    """A time without an offset is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Window(SpecModel):
    start: datetime
    end: datetime

    _times = field_validator("start", "end")(_utc)


class Backtest(SpecModel):
    """`featureloop backtest`: the history replayed through the loop, and the reference policies."""

    start: datetime | None = Field(None, description="First prediction replayed; default: first_train in.")
    end: datetime | None = Field(None, description="End of the replay (exclusive); default: the data's end.")
    step: Duration = Field("7d", description="Each drift run's window: the replay checks drift every step.")
    first_train: Duration = Field("60d", description="The first champion learns from this span before start.")
    first_model: Window | None = Field(None, description="The first champion's window, when not first_train.")
    schedule_every: Duration = Field("7d", description="The scheduled policy retrains this often.")
    feed_every: Duration = Field(
        "1h",
        description="How often the replay brings the online store up to date (a scheduled materialisation).",
    )

    _times = field_validator("start", "end")(_utc)


class ProjectSpec(SpecModel):
    """One project: a feature service and what a model of it needs beyond the features."""

    name: str = Field(..., pattern=NAME.pattern)
    description: str = ""
    feature_service: str
    prepare: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="The prepare step, module:function: writes the offline tables "
        "(`featureloop prepare`); the module is a file beside the feature repo or an installed one.",
    )
    spine: Spine
    task: Task
    training: Training = Field(default_factory=Training)
    monitoring: Monitoring = Field(default_factory=Monitoring)
    serving: Serving = Field(default_factory=Serving)
    backtest: Backtest = Field(default_factory=Backtest)

    @model_validator(mode="after")
    def _references_resolve(self) -> ProjectSpec:
        key = self.serving.canary_key
        if key is not None and self.spine.request_field(key) is None:
            known = [f.name for f in self.spine.request_fields]
            raise ValueError(f"serving.canary_key {key!r} is not a request field (known: {known})")
        if self.task.type == "regression" and self.training.model_family == "logistic_regression":
            raise ValueError(
                "training.model_family logistic_regression cannot fit a regression task: "
                "use hist_gradient_boosting"
            )
        return self


class SpecError(ValueError):
    """A spec that cannot be used: the message names the file, the field and the way out."""


def spec_path(feature_repo: Path) -> Path:
    return feature_repo / SPEC_FILE


def load_spec(feature_repo: Path) -> ProjectSpec:
    """The spec beside the repository's feature_store.yaml, validated; a SpecError naming each
    problem's field otherwise."""
    import yaml
    from pydantic import ValidationError

    path = spec_path(feature_repo)
    if not path.exists():
        raise SpecError(
            f"no project spec at {path}: write one beside feature_store.yaml "
            "(`featureloop init PATH` scaffolds a project; docs/projects.md lists the fields)"
        )
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{path} is not YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"{path} holds no mapping of fields: start with `name:` and `feature_service:`")
    try:
        return ProjectSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(f"{path}:\n{describe_errors(exc)}") from exc


def describe_errors(exc: Any) -> str:
    """One line per problem: the field's dotted path, then what is wrong."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "not a field of the spec (misspelt?); docs/project.schema.json lists the fields"
        elif error["type"] == "missing":
            message = "is required"
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def spec_hash(spec: ProjectSpec) -> str:
    """A content hash of the spec as validated (defaults filled in): a model's lineage records it."""
    import hashlib

    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:16]
