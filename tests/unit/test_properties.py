"""Property-based tests (hypothesis) of what bad input meets first: the request models and the raw
data's row rules. Any input is either accepted whole or refused with a named reason, never a crash,
and no row is ever dropped silently."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from data.schema import ORIGINS, WEATHER, YEAR_END, YEAR_START
from data.tables import WEATHER_FEATURES
from data.validate import validate_table
from featureloop.project.spec import load_spec
from featureloop.settings import PROJECT_ROOT
from serving.contract import build_contract

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
JSON = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
CONTRACT = build_contract(load_spec(PROJECT_ROOT / "feature_repo"))  # the worked example's request
Flight, PredictRequest = CONTRACT.row_model, CONTRACT.request_model
FIELDS = list(Flight.model_fields)


def _flight_like() -> st.SearchStrategy[dict[str, Any]]:
    """Dicts with the request's field names (and sometimes others), each value anything JSON holds
    or a near-valid one: the cases a validator must get right."""
    near = {
        "flight_id": st.text(max_size=250) | st.none(),
        "tailnum": st.text(max_size=25) | st.none(),
        "origin": st.sampled_from([*ORIGINS, "", "XX", "TOOLONG"]),
        "dest": st.text(min_size=2, max_size=5),
        "carrier": st.text(min_size=1, max_size=4),
        "distance": st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10, 30_000),
        "sched_hour": st.integers(-2, 25) | st.floats(),
        "day_of_week": st.integers(-1, 7) | st.text(max_size=3),
        "event_timestamp": st.none()
        | st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat())
        | st.text(max_size=30),
    }
    return st.fixed_dictionaries(
        {},
        optional={name: near[name] | JSON for name in FIELDS} | {"unexpected": JSON},
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(JSON, st.fixed_dictionaries({"flights": st.lists(_flight_like(), max_size=4) | JSON})))
def test_any_request_body_is_either_a_valid_request_or_a_validation_error(body: Any) -> None:
    try:
        request = PredictRequest.model_validate_json(json.dumps(body))
    except ValidationError as exc:
        # Every error says what is wrong and where (the field's path; empty: the body itself).
        assert exc.errors() and all(e["msg"] and isinstance(e["loc"], tuple) for e in exc.errors())
        return
    assert request.flights  # at least one flight, each inside every bound
    for flight in request.flights:
        assert flight.origin and 3 <= len(flight.origin) <= 4 and 2 <= len(flight.carrier) <= 3
        assert math.isfinite(flight.distance) and 0 <= flight.distance <= 20_000
        assert 0 <= flight.sched_hour <= 23 and 0 <= flight.day_of_week <= 6
        stamp = flight.event_timestamp
        assert stamp is None or stamp.utcoffset() == timedelta(0)
    # A valid request survives a round trip unchanged (what the log and the replay rely on).
    assert PredictRequest.model_validate_json(request.model_dump_json()) == request


FINITE_OR_NOT = st.floats(allow_nan=True, allow_infinity=True, width=32) | st.none()


@st.composite
def weather_frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(0, 30))
    stamps = st.datetimes(
        min_value=(YEAR_START - pd.Timedelta(days=3)).to_pydatetime().replace(tzinfo=None),
        max_value=(YEAR_END + pd.Timedelta(days=3)).to_pydatetime().replace(tzinfo=None),
    )
    columns: dict[str, Any] = {
        "origin": draw(st.lists(st.sampled_from([*ORIGINS, "ORD", ""]) | st.none(), min_size=n, max_size=n)),
        "time_hour": pd.to_datetime(
            draw(st.lists(stamps | st.none(), min_size=n, max_size=n)), utc=True
        ).floor("h"),
    }
    for name in WEATHER_FEATURES:
        columns[name] = draw(st.lists(FINITE_OR_NOT, min_size=n, max_size=n))
    frame = pd.DataFrame(columns)
    for name in ("year", "month", "day", "hour"):
        frame[name] = np.int64(1)
    return frame.astype({name: "float64" for name in columns if name not in ("origin", "time_hour")})


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(weather_frames())
def test_every_weather_row_is_accepted_or_quarantined_with_its_reasons(frame: pd.DataFrame) -> None:
    out = validate_table(WEATHER, frame)
    assert out.read == len(frame)  # nothing dropped silently
    assert sorted([*out.accepted["source_row"], *out.quarantined["source_row"]]) == list(
        range(2, len(frame) + 2)
    )
    # Accepted rows break no rule (validating them again quarantines nothing)...
    again = validate_table(WEATHER, out.accepted.drop(columns="source_row"))
    assert len(again.quarantined) == 0
    accepted = out.accepted
    assert accepted["origin"].isin(ORIGINS).all() and accepted["time_hour"].notna().all()
    assert not accepted.duplicated(subset=["origin", "time_hour"]).any()
    assert ((accepted["pressure"].isna()) | accepted["pressure"].between(900, 1100)).all()
    # ...and every quarantined row names each rule it broke, with the sentence a person reads.
    rules = {rule.name: rule.description for rule in WEATHER.rules}
    for names, reason in zip(out.quarantined["rule"], out.quarantined["reason"], strict=True):
        assert names and all(name in rules for name in names.split(","))
        assert reason == "; ".join(rules[name] for name in names.split(","))
