"""The serving app's HTTP contract, in-process: what it refuses and how (401, 413, 422, 503), and what
its OpenAPI document says. The app is driven as an ASGI function without its lifespan: no Feast
store, no model, no server process; requests are refused before any of those would be read, and a
valid /predict with no model loaded is a 503."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from featureloop.settings import Settings
from serving.app import create_app

FLIGHT = {"flight_id": "UA1-EWR", "tailnum": "N1", "origin": "EWR", "dest": "BOS", "carrier": "UA",
          "distance": 200.0, "sched_hour": 8, "day_of_week": 1}  # fmt: skip


def _call(settings: Settings, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://serving") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


@pytest.fixture
def settings(tmp_path: Any) -> Settings:
    return Settings(data_dir=tmp_path, predict_max_batch=2, max_request_bytes=10_000)


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"flights": []}, "flights"),
        ({"flights": [{"origin": "EWR"}]}, "carrier"),
        ({"flights": [{**FLIGHT, "distance": "far"}]}, "distance"),
        ({"flights": [{**FLIGHT, "sched_hour": 30}]}, "sched_hour"),
        ({"flights": [{**FLIGHT, "colour": "red"}]}, "colour"),
        ({"flights": [{**FLIGHT, "event_timestamp": "1969-12-31T23:00:00Z"}]}, "FEATURELOOP_EVENT_TIME_EARLIEST"),
        ({"flights": [{**FLIGHT, "event_timestamp": "9999-12-31T23:59:59Z"}]}, "event_timestamp"),
    ],
)  # fmt: skip
def test_bad_requests_get_a_422_that_names_the_field(settings: Settings, body: Any, names: str) -> None:
    response = _call(settings, "POST", "/predict", json=body)
    assert response.status_code == 422
    assert names in response.text


def test_malformed_json_is_a_422(settings: Settings) -> None:
    response = _call(
        settings, "POST", "/predict", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422 and "json" in response.text.lower()


def test_a_batch_over_the_limit_is_a_413_that_says_how_to_raise_it(settings: Settings) -> None:
    response = _call(settings, "POST", "/predict", json={"flights": [FLIGHT] * 3})
    assert response.status_code == 413
    assert "flights: 3 rows exceed the batch limit of 2" in response.text
    assert "FEATURELOOP_PREDICT_MAX_BATCH" in response.text


def test_bodies_over_the_size_limit_get_a_413_before_being_read(settings: Settings) -> None:
    limit = settings.max_request_bytes
    padding = {"flights": [FLIGHT], "pad": "x" * limit}
    for path in ("/predict", "/get-online-features"):
        response = _call(settings, "POST", path, json=padding)
        assert response.status_code == 413, path
        assert f"over {limit} bytes" in response.json()["detail"]

    async def chunked() -> AsyncIterator[bytes]:  # no content-length: the limit applies while reading
        yield b'{"flights": ['
        for _ in range(limit // 1000 + 1):
            yield b" " * 1000
        yield b"]}"

    for path in ("/predict", "/get-online-features"):  # before any token check
        response = _call(settings.model_copy(update={"serving_token": SecretStr("t")}), "POST", path,
                         content=chunked())  # fmt: skip
        assert response.status_code == 413 and f"over {limit} bytes" in response.text, path


def test_a_valid_request_with_no_model_loaded_is_a_503_that_says_to_retry(settings: Settings) -> None:
    response = _call(settings, "POST", "/predict", json={"flights": [FLIGHT]})
    assert response.status_code == 503
    assert "no model loaded yet; retry shortly" in response.json()["detail"]
    assert _call(settings, "GET", "/ready").status_code == 503


def _requests() -> Iterator[tuple[str, str, dict[str, Any]]]:
    yield "POST", "/predict", {"json": {"flights": [FLIGHT]}}
    yield "POST", "/get-online-features", {"json": {"entities": {"carrier": ["UA"]}, "features": ["x:y"]}}
    yield "GET", "/ready", {}
    yield "GET", "/metrics", {}


def test_the_token_is_asked_for_everywhere_but_health_and_the_documentation(settings: Settings) -> None:
    settings = settings.model_copy(update={"serving_token": SecretStr("s3cret")})
    for method, path, kwargs in _requests():
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic s3cret"}):
            refused = _call(settings, method, path, headers=headers, **kwargs)
            assert refused.status_code == 401, (path, headers)
            assert refused.headers["www-authenticate"] == "Bearer"
            assert "FEATURELOOP_SERVING_TOKEN" in refused.json()["detail"]
        right = _call(settings, method, path, headers={"Authorization": "Bearer s3cret"}, **kwargs)
        assert right.status_code != 401, path  # past the token: 503 here, no store or model loaded
    for path in ("/health", "/docs", "/openapi.json"):
        assert _call(settings, "GET", path).status_code == 200, path


def test_openapi_documents_predict_with_the_request_and_response_models(settings: Settings) -> None:
    schema = _call(settings, "GET", "/openapi.json").json()
    operation = schema["paths"]["/predict"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/PredictRequest"
    )
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/PredictResponse"
    )
    assert {"401", "413", "422", "503"} <= set(operation["responses"])


def test_unknown_paths_are_404_with_or_without_a_token(settings: Settings) -> None:
    settings = settings.model_copy(update={"serving_token": SecretStr("s3cret")})
    assert _call(settings, "GET", "/nope").status_code == 404
    assert _call(settings, "GET", "/nope", headers={"Authorization": "Bearer s3cret"}).status_code == 404


def test_a_prediction_time_past_the_allowance_is_a_422_naming_the_setting(settings: Settings) -> None:
    now = datetime.now(UTC) + timedelta(days=2)
    body = {"flights": [{**FLIGHT, "event_timestamp": now.isoformat()}]}
    response = _call(settings, "POST", "/predict", json=body)
    assert response.status_code == 422 and "FEATURELOOP_EVENT_TIME_MAX_AHEAD_SECONDS" in response.text
