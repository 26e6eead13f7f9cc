"""A project's spec: what is specific to one model, declared once in `project.yaml` beside the feature
repository's `feature_store.yaml`, validated by these pydantic models (`docs/project.schema.json` is
their JSON schema, for editors).

The feature repository says which features exist; the spec says how a model uses them: the feature
service, where prediction events come from (the spine), the request a caller sends, the task and its
label, when an outcome becomes known, and the thresholds of training, monitoring, serving and the
backtest. Nothing here imports Feast: `featureloop.project.checks` compares a spec with the registry.
"""

from __future__ import annotations

import re
import string
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from featureloop.monitoring.thresholds import DecayConfig, DriftConfig

SPEC_FILE = "project.yaml"
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class SpecModel(BaseModel):
    """Unknown keys are errors: a misspelt threshold must not be silently ignored."""

    model_config = ConfigDict(extra="forbid")


def parse_duration(text: str) -> timedelta:
    """`90d`, `3h`, `15m`, `2w`, `30s` as a timedelta."""
    found = DURATION.match(text.strip())
    if not found:
        raise ValueError(f"{text!r} is not a duration: write a number and a unit, e.g. 90d, 3h, 15m, 2w")
    return timedelta(**{UNITS[found.group(2)]: int(found.group(1))})


Duration = Annotated[str, Field(pattern=DURATION.pattern, examples=["90d", "3h", "15m"])]


class RequestField(SpecModel):
    """One field of a prediction request: its type and bounds (serving's request model is built from
    these), and whether the model takes it as an input as it is (`feature: true`)."""

    name: str = Field(..., pattern=NAME.pattern)
    type: Literal["string", "int", "float", "bool", "timestamp"]
    required: bool = True
    feature: bool = Field(False, description="A model input, sent with each request (not from Feast).")
    description: str = ""
    ge: float | None = Field(None, description="Smallest value accepted (numbers).")
    le: float | None = Field(None, description="Largest value accepted (numbers).")
    min_length: int | None = Field(None, ge=0, description="Shortest text accepted (strings).")
    max_length: int | None = Field(None, ge=1, description="Longest text accepted (strings).")

    @model_validator(mode="after")
    def _bounds_fit_the_type(self) -> RequestField:
        numeric = self.type in ("int", "float")
        if not numeric and (self.ge is not None or self.le is not None):
            raise ValueError(f"request field {self.name!r}: ge/le bound numbers; it is a {self.type}")
        if self.type != "string" and (self.min_length is not None or self.max_length is not None):
            raise ValueError(
                f"request field {self.name!r}: min_length/max_length bound strings; it is a {self.type}"
            )
        if self.ge is not None and self.le is not None and self.ge > self.le:
            raise ValueError(f"request field {self.name!r}: ge {self.ge} is above le {self.le}")
        return self


class Spine(SpecModel):
    """Where prediction events come from: one row per prediction the model makes (training's entity
    rows, the backtest's requests), in a table of the offline store."""

    table: str = Field(..., pattern=NAME.pattern, description="Offline table: <offline dir>/<table>.parquet.")
    id: str = Field(..., description="The column that names one prediction (echoed back; joins outcomes).")
    time: str = Field(..., description="Prediction time: features are read as of it (UTC timestamps).")
    time_zone: str = Field("UTC", description="Where local calendar periods (days, weeks) are counted.")
    entity_keys: list[str] = Field(
        default_factory=list,
        description="The service's join keys; none for a project of system-wide (entity-less) views.",
    )
    request_fields: list[RequestField] = Field(default_factory=list)
    derived_keys: dict[str, str] = Field(
        default_factory=dict,
        description='Keys built from request fields, as a template: {"route": "{origin}-{dest}"}.',
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {zone!r}: use an IANA name such as UTC or America/New_York"
            ) from exc
        return zone

    @model_validator(mode="after")
    def _fields_and_keys_fit(self) -> Spine:
        names = [f.name for f in self.request_fields]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"request fields {twice} are declared twice: keep one of each")
        for key, template in self.derived_keys.items():
            if key in names:
                raise ValueError(
                    f"derived key {key!r} is also a request field: derive it or send it, not both"
                )
            used = template_fields(template)
            if not used:
                raise ValueError(
                    f"derived key {key!r}: {template!r} uses no request field; write e.g. '{{origin}}-{{dest}}'"
                )
            unknown = sorted(set(used) - set(names))
            if unknown:
                raise ValueError(
                    f"derived key {key!r} uses {unknown}, which are not request fields; declare them "
                    f"under spine.request_fields (known: {names})"
                )
        return self

    def request_field(self, name: str) -> RequestField | None:
        return next((f for f in self.request_fields if f.name == name), None)

    @property
    def request_features(self) -> list[str]:
        """The request fields the model takes as inputs, in declared order."""
        return [f.name for f in self.request_fields if f.feature]


def template_fields(template: str) -> list[str]:
    """The request fields a derived key's template names ("{origin}-{dest}" -> origin, dest)."""
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name]
    except ValueError as exc:
        raise ValueError(f"{template!r} is not a template: {exc}; write e.g. '{{origin}}-{{dest}}'") from exc


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
    label: str = Field(..., min_length=1, examples=["arr_delay > 15", "next_month_price"])
    outcome_known: OutcomeKnown


class Monitoring(SpecModel):
    """The drift run's thresholds, as operators edit them: the drift and decay configurations, how
    many of the last windows must drift before the event fires, and the skew check's sample."""

    window: Duration = "7d"
    drift: DriftConfig = Field(default_factory=DriftConfig)
    decay: DecayConfig = Field(default_factory=DecayConfig)
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


class Backtest(SpecModel):
    step: Duration = "7d"
    first_train: Duration = "60d"
    schedule_every: Duration = "7d"


class ProjectSpec(SpecModel):
    """One project: a feature service and what a model of it needs beyond the features."""

    name: str = Field(..., pattern=NAME.pattern)
    description: str = ""
    feature_service: str
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
