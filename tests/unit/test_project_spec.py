"""The project spec: the worked example's spec loads and says what the core assumes today; every bad
spec is refused with the field named and the way out; the published JSON schema is the models'."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from featureloop.project.__main__ import SCHEMA_PATH, render
from featureloop.project.spec import ProjectSpec, SpecError, load_spec, parse_duration
from featureloop.settings import PROJECT_ROOT

REPO = PROJECT_ROOT / "feature_repo"


def _flights() -> dict[str, Any]:
    loaded = yaml.safe_load((REPO / "project.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_the_worked_examples_spec_declares_what_its_scorecard_was_measured_with() -> None:
    spec = load_spec(REPO)
    assert spec.feature_service == "flight_delay_v1" and spec.training.window == "56d"
    assert spec.spine.id == "flight_id"
    assert spec.spine.entity_keys == ["tailnum", "origin", "carrier", "route"]
    assert spec.spine.request_features == ["distance", "sched_hour", "day_of_week"]
    assert spec.task.label == "arr_delay > 15"  # the demo's scorecard was measured with it
    assert spec.spine.derived_keys == {"route": "{origin}-{dest}"}
    assert spec.task.outcome_known.column == "outcome_known_ts" and spec.task.outcome_known.after is None
    assert spec.monitoring.drift.min_psi == 0.2 and spec.monitoring.drift.share_threshold == 0.4


def test_the_published_json_schema_is_the_models() -> None:
    assert SCHEMA_PATH.read_text() == render(), (
        "run `python -m featureloop.project` and commit docs/project.schema.json"
    )


def test_durations() -> None:
    assert parse_duration("90d") == timedelta(days=90)
    assert parse_duration("3h") == timedelta(hours=3)
    assert parse_duration("2w") == timedelta(weeks=2)
    with pytest.raises(ValueError, match=r"e\.g\. 90d"):
        parse_duration("three days")


def _set(raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, last = path.split(".")
    node = raw
    for part in parents:
        node = node[part]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return raw


# (what is changed, the value (None: removed), what the message must say)
BAD = [
    ("monitoring.drift.min_pis", 0.1, r"monitoring\.drift\.min_pis: not a field of the spec \(misspelt\?\)"),
    (
        "task.outcome_known.delay",
        "3h",
        r"task\.outcome_known: outcome_known takes exactly one of column, delay, window; got \['column', 'delay'\]",
    ),
    ("task.outcome_known.window", "ninety days", r"task\.outcome_known\.window: String should match pattern"),
    (
        "spine.derived_keys",
        {"route": "{origin}-{destination}"},
        r"derived key 'route' uses \['destination'\], which are not request fields",
    ),
    (
        "spine.derived_keys",
        {"route": "origin-dest"},
        r"uses no request field; write e\.g\. '\{from_city\}-\{to_city\}'",
    ),
    ("spine.derived_keys", {"origin": "{dest}"}, r"derived key 'origin' is also a request field"),
    ("serving.canary_key", "aircraft", r"serving\.canary_key 'aircraft' is not a request field"),
    ("spine.time_zone", "New York", r"unknown time zone 'New York': use an IANA name"),
    ("monitoring.persistence_k", 4, r"persistence_k 4 is above persistence_n 3"),
    ("task.type", "multiclass", r"task\.type: Input should be 'binary' or 'regression'"),
    ("feature_service", None, r"feature_service: is required"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD, ids=[f"{p}={v}" for p, v, _ in BAD])
def test_a_bad_spec_names_the_field_and_the_way_out(
    tmp_path: Path, path: str, value: Any, message: str
) -> None:
    (tmp_path / "project.yaml").write_text(yaml.safe_dump(_set(_flights(), path, value)))
    with pytest.raises(SpecError, match=message):
        load_spec(tmp_path)


def test_request_fields_bounds_fit_their_types_and_names_are_unique() -> None:
    raw = _flights()
    raw["spine"]["request_fields"][0] = {"name": "tailnum", "type": "string", "ge": 1}
    with pytest.raises(ValueError, match="ge/le bound numbers; it is a string"):
        ProjectSpec.model_validate(raw)
    raw = _flights()
    raw["spine"]["request_fields"][4] = {"name": "distance", "type": "float", "ge": 10, "le": 1}
    with pytest.raises(ValueError, match=r"ge 10\.0 is above le 1\.0"):
        ProjectSpec.model_validate(raw)
    raw = _flights()
    raw["spine"]["request_fields"].append({"name": "origin", "type": "string"})
    with pytest.raises(ValueError, match=r"request fields \['origin'\] are declared twice"):
        ProjectSpec.model_validate(raw)


def test_a_regression_task_cannot_take_a_classifier_family() -> None:
    raw = _flights()
    raw["task"]["type"] = "regression"
    raw["training"]["model_family"] = "logistic_regression"
    with pytest.raises(
        ValueError, match="logistic_regression cannot fit a regression task: use hist_gradient_boosting"
    ):
        ProjectSpec.model_validate(raw)


def test_a_missing_or_unreadable_spec_file_says_what_to_write(tmp_path: Path) -> None:
    with pytest.raises(
        SpecError, match=r"no project spec at .*project\.yaml: write one beside feature_store\.yaml"
    ):
        load_spec(tmp_path)
    (tmp_path / "project.yaml").write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="is not YAML"):
        load_spec(tmp_path)
    (tmp_path / "project.yaml").write_text("- a list\n")
    with pytest.raises(SpecError, match="holds no mapping of fields"):
        load_spec(tmp_path)
