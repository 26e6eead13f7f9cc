"""Flow parameters: one pydantic model per flow (each becomes a form in the Prefect UI), and the
sentences that say what is wrong with given values (`explain`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import BaseModel, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from featureloop.monitoring.thresholds import DecayConfig, DriftConfig
from featureloop.training.gate import GateConfig

if TYPE_CHECKING:
    from featureloop.project.spec import Monitoring

ModelFamily = Literal["hist_gradient_boosting", "logistic_regression"]
# How a message names a parameter with its value: `train_start=2013-05-01T00:00:00+00:00` for a
# flow's log; the command line passes one that says `--start 2013-05-01`, as the user typed it.
Label = Callable[[str, object], str]


def parameter_label(name: str, value: object) -> str:
    """`name=value`: times in ISO form, text quoted."""
    if isinstance(value, datetime):
        return f"{name}={value.isoformat()}"
    return f"{name}={value!r}" if isinstance(value, str) else f"{name}={value}"


# Times pandas can hold (nanoseconds since 1970 in 64 bits): windows become pandas timestamps.
EARLIEST = datetime(1678, 1, 1, tzinfo=UTC)
LATEST = datetime(2262, 1, 1, tzinfo=UTC)


def as_utc(value: datetime) -> datetime:
    """A time in UTC: a naive time is read as UTC, an aware one converted (so times compare and
    print the same way whatever offset a form or an event gave them)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc_in_range(model: BaseModel, *names: str) -> None:
    """Each of the model's times `names` in UTC, or an error naming the first outside EARLIEST..LATEST."""
    for name in names:
        value = getattr(model, name)
        if value is None:
            continue
        try:
            utc = as_utc(value)
        except OverflowError:  # an offset that takes it past year 1 or 9999
            utc = None
        if utc is None or not EARLIEST <= utc < LATEST:
            raise PydanticCustomError(
                "time_range",
                "{name} ({value}) is outside {earliest} .. {latest}",
                {
                    "name": name,
                    "value": value,
                    "earliest": f"{EARLIEST:%Y-%m-%d}",
                    "latest": f"{LATEST:%Y-%m-%d}",
                },
            )
        setattr(model, name, utc)


def _order(model: BaseModel, first: str, second: str, relation: str, advice: str) -> PydanticCustomError:
    """The error for `first` not being `relation` ("before", "at most") `second`."""
    return PydanticCustomError(
        "order",
        "{first} ({first_value}) must be {relation} {second} ({second_value}): {advice}",
        {
            "first": first,
            "second": second,
            "first_value": getattr(model, first),
            "second_value": getattr(model, second),
            "relation": relation,
            "advice": advice,
        },
    )


_WINDOW_ADVICE = "use a start before the end (the end is exclusive)"


class TrainParams(BaseModel):
    """What to train on, how to label it, which model, and how strict the promotion gate is."""

    feature_service: str = Field(
        "", description="Feast feature service: the serving contract; default: the project spec's."
    )
    train_start: datetime | None = Field(
        None,
        description="First prediction time (UTC); default: train_end minus the spec's training.window.",
    )
    train_end: datetime | None = Field(
        None,
        description="End of the window (exclusive, UTC); default: just after the last labelled prediction.",
    )
    labels_as_of: datetime | None = Field(
        None,
        description="Only outcomes known by then are labels (UTC); default: every known outcome.",
    )
    model_family: ModelFamily = "hist_gradient_boosting"
    hyperparameters: dict[str, float | int | str] = Field(default_factory=dict)
    validation_fraction: float = Field(0.15, gt=0, lt=0.5)
    holdout_fraction: float = Field(0.15, gt=0, lt=0.5, description="Most recent slice: the gate's window.")
    gate: GateConfig = Field(default_factory=lambda: GateConfig())
    promote: bool = Field(True, description="Run the gate and move the champion alias when it passes.")
    release: bool = Field(
        False,
        description="When the gate passes and a champion exists, release the version on live traffic "
        "(challenger: shadow, then canary; docs/releases.md) instead of promoting it at once.",
    )
    shuffle_labels: bool = Field(False, description="Testing aid: train on shuffled labels (a worse model).")

    @model_validator(mode="after")
    def _window(self) -> Self:
        _utc_in_range(self, "train_start", "train_end", "labels_as_of")
        if self.train_start is not None and self.train_end is not None and self.train_end <= self.train_start:
            raise _order(self, "train_start", "train_end", "before", _WINDOW_ADVICE)
        return self

    @property
    def start(self) -> datetime:
        """train_start, once resolved (`featureloop.training.training_set.resolve_params`)."""
        if self.train_start is None:
            raise ValueError("train_start is not resolved yet: resolve_params fills it from the project")
        return self.train_start

    @property
    def end(self) -> datetime:
        if self.train_end is None:
            raise ValueError("train_end is not resolved yet: resolve_params fills it from the project")
        return self.train_end


class RollbackParams(BaseModel):
    """Which registered model to roll back to its `previous` version."""

    model_name: str | None = Field(None, description="Registered model; default: the configured one.")


class ReleaseParams(BaseModel):
    """What to do with the release in progress (the `challenger` alias's version)."""

    action: Literal["advance", "start", "promote", "rollback"] = Field(
        "advance",
        description="advance: decide the current stage if its evidence is in; start: release `version` "
        "(it passed the gate); promote or rollback: end the release now, by hand.",
    )
    version: str | None = Field(None, description="start: the version to release; default: the challenger's.")
    as_of: datetime | None = Field(
        None,
        description="The release clock (UTC): which outcomes are known, how long stages ran; default: now.",
    )
    reason: str = Field("", description="promote or rollback by hand: why, for the record.")

    @model_validator(mode="after")
    def _utc(self) -> Self:
        _utc_in_range(self, "as_of")
        return self


class DriftParams(BaseModel):
    """Which window of served predictions to check, against what, and when to raise the event."""

    window_end: datetime | None = Field(
        None, description="End of the window (exclusive, UTC); default: just after the newest served row."
    )
    window_hours: float = Field(
        24 * 7, gt=0, allow_inf_nan=False, description="Window length, ending at window_end."
    )
    window_start: datetime | None = Field(None, description="Overrides window_hours when given.")
    seasonal_reference_hours: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="Compare with the rows served one season earlier (24: the same hours yesterday; "
        "168: last week; 8760: last year) instead of the training reference, when they are enough.",
    )
    labels_as_of: datetime | None = Field(
        None, description="Outcomes known by this time count as labels; default: now."
    )
    persistence_k: int = Field(
        2, ge=1, description="The event fires when k of the last n verdicts drifted..."
    )
    persistence_n: int = Field(3, ge=1, description="...(windows without a verdict are skipped).")
    drift: DriftConfig = Field(default_factory=lambda: DriftConfig())
    decay: DecayConfig = Field(default_factory=lambda: DecayConfig())
    feature_weights: dict[str, float] = Field(
        default_factory=dict,
        description="Weights of the drift share (e.g. feature importance); default equal.",
    )
    skew_sample: int = Field(
        200, ge=0, description="Entities per feature view for the skew check; 0: skip it."
    )
    emit_event: bool = Field(True, description="Send featureloop.drift.detected when drift or decay holds.")

    @model_validator(mode="after")
    def _times(self) -> Self:
        _utc_in_range(self, "window_end", "window_start", "labels_as_of")
        if self.persistence_k > self.persistence_n:
            raise _order(
                self,
                "persistence_k",
                "persistence_n",
                "at most",
                "k verdicts cannot be more than the n counted",
            )
        if self.window_start and self.window_end and self.window_start >= self.window_end:
            raise _order(self, "window_start", "window_end", "before", _WINDOW_ADVICE)
        return self


_LIMITS = {
    "greater_than": ("gt", "greater than"),
    "greater_than_equal": ("ge", "of at least"),
    "less_than": ("lt", "less than"),
    "less_than_equal": ("le", "of at most"),
}


# Values of the wrong kind, by the prefix of pydantic's error type: what was expected, an example.
_KINDS = (
    ("datetime", "a time", "ISO 8601, e.g. 2013-05-01 or 2013-05-01T06:30+00:00"),
    ("int", "a whole number", "one such as 15"),
    ("float", "a number", "one such as 0.5"),
    ("bool", "true or false", "true or false"),
    ("string", "text", "a name"),
)


def _sentence(error: Any, label: Label) -> str:
    """One problem of a validation error as a sentence that names the parameter, its value and what
    would do instead."""
    kind, ctx = error["type"], error.get("ctx") or {}
    name = ".".join(str(part) for part in error["loc"])
    given = label(name, error.get("input")) if name else ""
    if kind == "order":
        first, second = label(ctx["first"], ctx["first_value"]), label(ctx["second"], ctx["second_value"])
        return f"{first} is not {ctx['relation']} {second}: {ctx['advice']}"
    if kind == "time_range":
        return (
            f"{label(ctx['name'], ctx['value'])} is outside the times featureloop handles: "
            f"use a time from {ctx['earliest']} to {ctx['latest']}"
        )
    if kind == "literal_error":
        return f"{given} is not one of the choices: use {ctx['expected']}"
    if kind in _LIMITS:
        key, words = _LIMITS[kind]
        limit = ctx[key]
        return f"{given} is out of range: use a value {words} {limit:g}"
    if kind == "finite_number":
        return f"{given} is not a finite number: use a finite one"
    for prefix, what, example in _KINDS:
        if kind.startswith(prefix):
            return f"{given} is not {what}: use {example}"
    if kind == "missing":
        return f"{name} is missing: give it a value"
    message = str(error["msg"]).rstrip(".")
    return f"{given} is not valid ({message[0].lower()}{message[1:]})" if given else f"{message}"


def explain(error: ValidationError, label: Label = parameter_label) -> str:
    """A parameters model's validation error as sentences (one a line), each naming the parameter as
    `label` shows it (the command line: its option and the value as typed); pydantic's own rendering,
    with its input dump and documentation link, is written for developers."""
    return "\n".join(_sentence(e, label) for e in error.errors(include_url=False))


def drift_params_for(monitoring: Monitoring, **given: Any) -> DriftParams:
    """A drift run's parameters with the project's `monitoring` section (project.yaml) as defaults:
    what `given` leaves out or None comes from the spec (the window's length, the drift and decay
    thresholds, persistence, the skew sample). `featureloop drift` and the scheduled deployment's
    form start from it; a DriftParams built by hand is taken as it is."""
    from featureloop.project.spec import parse_duration

    season = monitoring.seasonal_reference
    defaults: dict[str, Any] = {
        "window_hours": parse_duration(monitoring.window).total_seconds() / 3600,
        "seasonal_reference_hours": parse_duration(season).total_seconds() / 3600 if season else None,
        "drift": monitoring.drift,
        "decay": monitoring.decay,
        "persistence_k": monitoring.persistence_k,
        "persistence_n": monitoring.persistence_n,
        "skew_sample": monitoring.skew_sample,
    }
    return DriftParams(**{**defaults, **{k: v for k, v in given.items() if v is not None}})
