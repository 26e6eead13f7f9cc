"""/predict's contract generated from a project's spec (serving/contract.py): the worked example's
is the request and response it had before the spec; other projects get their own fields, keys and
answer, and every bound the spec declares is enforced."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from featureloop.project.spec import ProjectSpec, load_spec
from featureloop.settings import PROJECT_ROOT
from serving.contract import build_contract

FLIGHTS = build_contract(load_spec(PROJECT_ROOT / "feature_repo"))
NOW = datetime(2013, 6, 1, 12, tzinfo=UTC)


def _sensors(**changes: Any) -> ProjectSpec:
    spec: dict[str, Any] = {
        "name": "sensor_failure",
        "feature_service": "sensor_v1",
        "spine": {
            "table": "readings", "id": "reading_id", "time": "read_at", "entity_keys": ["sensor"],
            "request_fields": [
                {"name": "sensor", "type": "string", "min_length": 1},
                {"name": "load", "type": "float", "ge": 0, "le": 1, "feature": True},
            ],
        },
        "task": {"type": "regression", "label": "hours_to_failure", "outcome_known": {"delay": "6h"}},
        "serving": {"batch_field": "readings", "canary_key": "sensor"},
        **changes,
    }  # fmt: skip
    return ProjectSpec.model_validate(spec)


def test_the_worked_examples_request_and_answer_are_the_ones_it_had_before_the_spec() -> None:
    assert list(FLIGHTS.row_model.model_fields) == [
        "event_timestamp", "flight_id", "tailnum", "origin", "dest", "carrier", "distance", "sched_hour",
        "day_of_week",
    ]  # fmt: skip
    assert list(FLIGHTS.request_model.model_fields) == ["flights"]
    assert list(FLIGHTS.prediction_model.model_fields) == [
        "flight_id", "probability", "delayed", "missing_features", "stale_features"
    ]  # fmt: skip
    body = FLIGHTS.request_model.model_validate(
        {
            "flights": [
                {
                    "origin": "EWR",
                    "dest": "BOS",
                    "carrier": "UA",
                    "distance": 200,
                    "sched_hour": 8,
                    "day_of_week": 1,
                }
            ]
        }
    )
    (row,) = FLIGHTS.shape(body, NOW)
    # An absent aircraft reads no entity (""), the route is derived, the prediction time defaults to now.
    assert row == {
        "flight_id": None, "tailnum": "", "origin": "EWR", "dest": "BOS", "carrier": "UA", "distance": 200.0,
        "sched_hour": 8, "day_of_week": 1, "route": "EWR-BOS", "event_timestamp": NOW,
    }  # fmt: skip


def test_another_project_gets_its_own_fields_batch_name_keys_and_a_value_for_regression() -> None:
    contract = build_contract(_sensors())
    assert contract.task == "regression" and contract.entity_keys == ("sensor",)
    assert list(contract.request_model.model_fields) == ["readings"]
    assert list(contract.prediction_model.model_fields) == [
        "reading_id", "prediction", "missing_features", "stale_features"
    ]  # fmt: skip
    body = contract.request_model.model_validate(
        {"readings": [{"sensor": "s1", "load": 0.5, "event_timestamp": "2013-06-01T14:00:00+02:00"}]}
    )
    assert contract.shape(body, NOW) == [
        {"reading_id": None, "sensor": "s1", "load": 0.5, "event_timestamp": NOW}
    ]
    assert contract.routing_key(body) == "s1"
    schema = contract.request_model.model_json_schema()
    assert "SensorFailureRow" in schema["$defs"]


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ({"sensor": "s1", "load": 1.5}, ("load", "less_than_equal")),
        ({"sensor": "s1", "load": float("nan")}, ("load", "finite_number")),
        ({"sensor": "", "load": 0.5}, ("sensor", "string_too_short")),
        ({"load": 0.5}, ("sensor", "missing")),
        ({"sensor": "s1", "load": 0.5, "tailnum": "N1"}, ("tailnum", "extra_forbidden")),
        ({"sensor": "s1", "load": 0.5, "reading_id": "x" * 201}, ("reading_id", "string_too_long")),
    ],
)
def test_each_bound_of_the_spec_is_enforced_naming_the_field(
    row: dict[str, Any], problem: tuple[str, str]
) -> None:
    contract = build_contract(_sensors())
    with pytest.raises(ValidationError) as caught:
        contract.request_model.model_validate({"readings": [row]})
    (error,) = caught.value.errors()
    assert (error["loc"][-1], error["type"]) == problem


def test_the_canary_key_falls_back_to_the_id_then_to_the_entity_keys() -> None:
    contract = build_contract(_sensors(serving={"batch_field": "readings"}))
    with_id = contract.request_model.model_validate(
        {"readings": [{"reading_id": "r9", "sensor": "s1", "load": 0}]}
    )
    without = contract.request_model.model_validate({"readings": [{"sensor": "s1", "load": 0}]})
    assert contract.routing_key(with_id) == "r9" and contract.routing_key(without) == "s1"
    shares = [contract.in_share(contract.request_model.model_validate(
        {"readings": [{"sensor": f"s{i}", "load": 0}]}), 0.3) for i in range(1000)]  # fmt: skip
    assert 240 <= sum(shares) <= 360  # a stable hash spreads keys near the share
