"""Request and response models of the serving API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Flight(BaseModel):
    """One flight to score: its entity keys and the request-time fields from the schedule."""

    model_config = ConfigDict(extra="forbid")

    flight_id: str | None = Field(None, max_length=200, description="Your id for this row; echoed back.")
    tailnum: str | None = Field(None, max_length=20, description="Aircraft tail number (may be unknown).")
    origin: str = Field(..., min_length=3, max_length=4, description="Departure airport (EWR, JFK, LGA).")
    dest: str = Field(..., min_length=3, max_length=4, description="Arrival airport.")
    carrier: str = Field(..., min_length=2, max_length=3, description="Two-letter carrier code.")
    distance: float = Field(..., ge=0, le=20_000, description="Route distance in miles.")
    sched_hour: int = Field(..., ge=0, le=23, description="Scheduled departure hour, local time.")
    day_of_week: int = Field(..., ge=0, le=6, description="Scheduled departure weekday, Monday = 0.")
    event_timestamp: datetime | None = Field(
        None,
        description="Prediction time (for staleness); default: now. Replays send the scheduled departure. "
        "Accepted from FEATURELOOP_EVENT_TIME_EARLIEST (default 1970-01-01) to the server's clock plus "
        "FEATURELOOP_EVENT_TIME_MAX_AHEAD_SECONDS (default one day); others get a 422 naming the bound.",
    )

    @field_validator("event_timestamp")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        """As UTC (a time without an offset is the server's local time). A time UTC cannot hold
        (the first hours of year 1 east of UTC, the last of 9999 west of it) is refused here, with the field
        named, rather than failing the batch."""
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except (OverflowError, ValueError, OSError):
            raise ValueError("event_timestamp is outside the times UTC can hold (years 1 to 9999)") from None


class PredictRequest(BaseModel):
    """One or many flights; the batch size is bounded by settings."""

    model_config = ConfigDict(extra="forbid")

    flights: list[Flight] = Field(..., min_length=1)


class Prediction(BaseModel):
    flight_id: str | None
    probability: float
    delayed: bool
    missing_features: list[str] = Field(description="Features the online store had no value for.")
    stale_features: list[str] = Field(description="Features older than their view's TTL at prediction time.")


class PredictResponse(BaseModel):
    request_id: str
    model_name: str
    model_version: str
    feature_service: str
    predictions: list[Prediction]


class GetOnlineFeaturesRequest(BaseModel):
    """The request body of `feast serve`'s /get-online-features."""

    entities: dict[str, list[Any]]
    feature_service: str | None = None
    features: list[str] = []
    full_feature_names: bool = False

    @model_validator(mode="after")
    def _something_to_read(self) -> GetOnlineFeaturesRequest:
        if not self.features and not self.feature_service:
            raise ValueError("name the features to read: `features` (view:feature) or a `feature_service`")
        return self


class ErrorDetail(BaseModel):
    """Every error's body: what went wrong and the way out (a list of field errors for a 422)."""

    detail: str | list[dict[str, Any]]


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorDetail, "description": description}


Responses = dict[int | str, dict[str, Any]]
UNAUTHORIZED: Responses = {401: _error("A bearer token is configured and the request's is missing or wrong.")}
NOT_READY: Responses = {503: _error("The online store or the model is not available; retry shortly.")}
PREDICT_ERRORS: Responses = {
    **UNAUTHORIZED,
    413: _error("The body or the batch is larger than the configured limit."),
    422: _error("The body is not JSON, or a field is missing or out of range (named in the detail)."),
    **NOT_READY,
}
FEATURES_ERRORS: Responses = {
    **UNAUTHORIZED,
    400: _error("Feast refused the request: an unknown feature, feature service or entity key."),
    413: PREDICT_ERRORS[413],
    422: PREDICT_ERRORS[422],
    **NOT_READY,
}
