"""Request and error models of the serving API (/predict's own come from the project's spec:
serving/contract.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, model_validator


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
