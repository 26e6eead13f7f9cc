"""Parameters models: wrong values become sentences that name the parameter, its value and what to
use instead; never pydantic's developer dump (input_value=..., [type=...], a documentation URL)."""

from __future__ import annotations

import re
import shlex
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from featureloop.params import DriftParams, TrainParams, explain

RAW = re.compile(r"errors\.pydantic\.dev|input_value|\[type=|validation error for|Input should")
OPTIONS = {
    "train_start": "--start",
    "train_end": "--end",
    "model_family": "--family",
    "window_hours": "--hours",
}


def cli_label(name: str, value: object) -> str:
    """As the command line names a value: its option, the value quoted for a shell."""
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return f"{OPTIONS.get(name, name)} {shlex.quote(text) if text.isprintable() else repr(text)}"


def _explained(model: type[TrainParams | DriftParams], **values: Any) -> str:
    with pytest.raises(ValidationError) as raised:
        model(**values)
    return explain(raised.value, cli_label)


def test_an_inverted_window_names_both_ends_and_the_way_out() -> None:
    assert _explained(TrainParams, train_start="2013-03-01", train_end="2013-02-01") == (
        "--start 2013-03-01T00:00:00+00:00 is not before --end 2013-02-01T00:00:00+00:00: "
        "use a start before the end (the end is exclusive)"
    )
    assert _explained(DriftParams, window_start="2013-03-01", window_end="2013-03-01").startswith(
        "window_start 2013-03-01T00:00:00+00:00 is not before window_end"
    )


def test_an_unknown_family_lists_the_families() -> None:
    assert _explained(TrainParams, model_family="xgboost") == (
        "--family xgboost is not one of the choices: use 'hist_gradient_boosting' or 'logistic_regression'"
    )


def test_out_of_range_numbers_and_times_say_the_range() -> None:
    assert _explained(DriftParams, skew_sample=-1) == (
        "skew_sample -1 is out of range: use a value of at least 0"
    )
    assert _explained(DriftParams, window_hours=0) == "--hours 0 is out of range: use a value greater than 0"
    assert (
        _explained(DriftParams, window_hours=float("nan"))
        == "--hours nan is not a finite number: use a finite one"
    )
    # An offset that takes the time past year 9999 (pandas' limit is reached long before).
    assert _explained(TrainParams, train_end=datetime.fromisoformat("9999-12-31T23:00-05:00")) == (
        "--end 9999-12-31T23:00:00-05:00 is outside the times featureloop handles: use a time from "
        "1678-01-01 to 2262-01-01"
    )
    assert _explained(DriftParams, persistence_k=4, persistence_n=3) == (
        "persistence_k 4 is not at most persistence_n 3: k verdicts cannot be more than the n counted"
    )


def test_without_a_label_parameters_are_named_as_the_flow_form_names_them() -> None:
    with pytest.raises(ValidationError) as raised:
        TrainParams(train_start=datetime(2013, 3, 1, tzinfo=UTC), train_end=datetime(2013, 2, 1, tzinfo=UTC))
    assert explain(raised.value).startswith("train_start=2013-03-01T00:00:00+00:00 is not before train_end=")


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=8),
    st.datetimes(timezones=st.none() | st.timezones()),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([TrainParams, DriftParams]),
    st.dictionaries(
        st.sampled_from(
            ["train_start", "train_end", "model_family", "labels_as_of",
             "validation_fraction", "window_start", "window_end", "window_hours", "skew_sample",
             "persistence_k", "persistence_n", "feature_service", "promote"]
        ),
        VALUES,
        max_size=4,
    ),
)  # fmt: skip
def test_any_values_validate_or_explain_in_sentences_that_name_the_parameter(
    model: type[TrainParams | DriftParams], values: dict[str, Any]
) -> None:
    try:
        model(**values)
    except ValidationError as exc:
        text = explain(exc, cli_label)
        assert text and not RAW.search(text), text
        for line in text.splitlines():
            assert any(name in line for name in (*values, *OPTIONS.values())), line
