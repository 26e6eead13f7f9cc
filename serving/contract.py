"""The /predict contract of a project, generated from its spec: the request's row model (the
prediction id, the request fields with their types and bounds, the prediction time), the request
body (the spec's batch field), the response, and how a validated row becomes the entity keys and
model inputs that scoring needs. `/docs` shows the project's own fields; nothing here names one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from featureloop.project.spec import ProjectSpec, RequestField

TYPES: dict[str, type] = {"string": str, "int": int, "float": float, "bool": bool, "timestamp": datetime}
TIME_FIELD = "event_timestamp"
MAX_ID_LENGTH = 200


class Row(BaseModel):
    """The base of every project's row model: unknown fields are refused, and the prediction time
    (the one field every project has) is UTC."""

    model_config = ConfigDict(extra="forbid")

    event_timestamp: datetime | None = Field(
        None,
        description="Prediction time (for staleness); default: now. Replays send the spine's time. "
        "Accepted from FEATURELOOP_EVENT_TIME_EARLIEST (default 1970-01-01) to the server's clock plus "
        "FEATURELOOP_EVENT_TIME_MAX_AHEAD_SECONDS (default one day); others get a 422 naming the bound.",
    )

    @field_validator("event_timestamp")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        """As UTC (a time without an offset is the server's local time). A time UTC cannot hold
        (the first hours of year 1 east of UTC, the last of 9999 west of it) is refused here, with the
        field named, rather than failing the batch."""
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except (OverflowError, ValueError, OSError):
            raise ValueError("event_timestamp is outside the times UTC can hold (years 1 to 9999)") from None


def _field(spec_field: RequestField) -> tuple[Any, Any]:
    kind: Any = TYPES[spec_field.type]
    bounds = {
        name: getattr(spec_field, name)
        for name in ("ge", "le", "min_length", "max_length")
        if getattr(spec_field, name) is not None
    }
    if spec_field.type == "float":
        bounds["allow_inf_nan"] = False
    if spec_field.required:
        return kind, Field(..., description=spec_field.description, **bounds)
    return kind | None, Field(None, description=spec_field.description, **bounds)


@dataclass(frozen=True)
class Contract:
    """A project's /predict request and response models, and the row shaping scoring needs."""

    task: Literal["binary", "regression"]
    id_field: str
    batch_field: str
    decision_field: str
    fields: tuple[str, ...]
    entity_keys: tuple[str, ...]
    model_fields: tuple[str, ...]  # request fields the model takes as inputs
    derived: tuple[tuple[str, str], ...]  # (key, template)
    empty_keys: tuple[str, ...]  # optional string keys: an absent one is "" (an entity never stored)
    canary_key: str | None
    row_model: type[BaseModel]
    request_model: type[BaseModel]
    prediction_model: type[BaseModel]
    response_model: type[BaseModel]

    def rows_of(self, body: Any) -> list[Any]:
        return list(getattr(body, self.batch_field))

    def shape(self, body: Any, now: datetime) -> list[dict[str, Any]]:
        """Each row as the prediction log keeps it: id, request fields, derived keys, prediction time."""
        out = []
        for row in getattr(body, self.batch_field):
            values = row.__dict__
            shaped = {self.id_field: values[self.id_field]}
            for name in self.fields:
                shaped[name] = values[name]
            for key in self.empty_keys:
                if shaped[key] is None:
                    shaped[key] = ""
            for key, template in self.derived:
                shaped[key] = template.format_map(shaped)
            stamp = values[TIME_FIELD]
            shaped[TIME_FIELD] = (stamp or now).astimezone(UTC)
            out.append(shaped)
        return out

    def routing_key(self, body: Any) -> str:
        """The request's canary routing key: its first row's `canary_key` (the spec's), else its id,
        else its entity keys."""
        first = getattr(body, self.batch_field)[0].__dict__
        if self.canary_key is not None and first[self.canary_key] not in (None, ""):
            return str(first[self.canary_key])
        if first[self.id_field]:
            return str(first[self.id_field])
        keys = [k for k in self.fields if k in self.entity_keys] or list(self.fields)
        return "-".join(str(first[k]) for k in keys)

    def in_share(self, body: Any, share: float) -> bool:
        key = self.routing_key(body)
        return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64 < share


def build_contract(spec: ProjectSpec) -> Contract:
    """The request and response models of `spec`, named after the project."""
    spine = spec.spine
    title = "".join(part.capitalize() for part in spec.name.split("_"))
    fields: dict[str, Any] = {
        spine.id: (
            str | None,
            Field(None, max_length=MAX_ID_LENGTH, description="Your id for this row; echoed back."),
        ),
        **{f.name: _field(f) for f in spine.request_fields},
    }
    row_model = create_model(
        f"{title}Row", __base__=Row, __doc__=f"One row to score: {spec.description or spec.name}", **fields
    )
    request_model = create_model(  # type: ignore[call-overload]
        "PredictRequest",
        __config__=ConfigDict(extra="forbid"),
        __doc__="One or many rows; the batch size is bounded by settings.",
        **{spec.serving.batch_field: (list[row_model], Field(..., min_length=1))},
    )
    answer: dict[str, Any] = {spine.id: (str | None, ...)}
    if spec.task.type == "binary":
        answer["probability"] = (
            float,
            Field(..., description="The model's probability of the positive label."),
        )
        answer[spec.serving.decision_field] = (
            bool,
            Field(..., description="The probability is at or above FEATURELOOP_DECISION_THRESHOLD."),
        )
    else:
        answer["prediction"] = (float, Field(..., description="The model's estimate of the label."))
    answer["missing_features"] = (list[str], Field(description="Features the online store had no value for."))
    answer["stale_features"] = (
        list[str],
        Field(description="Features older than their view's TTL at prediction time."),
    )
    prediction_model = create_model("Prediction", **answer)
    response_model = create_model(
        "PredictResponse",
        request_id=(str, ...),
        model_name=(str, ...),
        model_version=(str, ...),
        feature_service=(str, ...),
        predictions=(list[prediction_model], ...),
    )
    by_name = {f.name: f for f in spine.request_fields}
    return Contract(
        task=spec.task.type,
        id_field=spine.id,
        batch_field=spec.serving.batch_field,
        decision_field=spec.serving.decision_field,
        fields=tuple(by_name),
        entity_keys=tuple(spine.entity_keys),
        model_fields=tuple(spine.request_features),
        derived=tuple(spine.derived_keys.items()),
        empty_keys=tuple(
            k
            for k in spine.entity_keys
            if k in by_name and not by_name[k].required and by_name[k].type == "string"
        ),
        canary_key=spec.serving.canary_key,
        row_model=row_model,
        request_model=request_model,
        prediction_model=prediction_model,
        response_model=response_model,
    )
