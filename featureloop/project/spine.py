"""The spine of a project's spec: where prediction events come from and what a prediction request
holds (`featureloop.project.spec` is the whole spec)."""

from __future__ import annotations

import re
import string
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SpecModel(BaseModel):
    """Unknown keys are errors: a misspelt threshold must not be silently ignored."""

    model_config = ConfigDict(extra="forbid")


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
        description='Keys built from request fields, as a template: {"lane": "{from_city}-{to_city}"}.',
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
        reserved = sorted({self.id, "event_timestamp"}.intersection(names))
        if reserved:
            raise ValueError(
                f"request fields {reserved} are sent by every request already (the id and "
                "event_timestamp, the prediction time): remove them from request_fields"
            )
        for name in self.entity_keys:
            field = self.request_field(name)
            if field is not None and not field.required and field.type != "string":
                raise ValueError(
                    f"entity key {name!r} is an optional {field.type}: a key may be absent only as "
                    "text (an absent key reads no entity); make it required or a string"
                )
        for key, template in self.derived_keys.items():
            if key in names:
                raise ValueError(
                    f"derived key {key!r} is also a request field: derive it or send it, not both"
                )
            used = template_fields(template)
            if not used:
                raise ValueError(
                    f"derived key {key!r}: {template!r} uses no request field; write e.g. '{{from_city}}-{{to_city}}'"
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
    """The request fields a derived key's template names ("{from_city}-{to_city}" -> both)."""
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name]
    except ValueError as exc:
        raise ValueError(
            f"{template!r} is not a template: {exc}; write e.g. '{{from_city}}-{{to_city}}'"
        ) from exc
