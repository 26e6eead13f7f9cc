"""Request and response models of the serving API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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
        description="Prediction time (for staleness); default: now. Replays send the scheduled departure.",
    )


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
