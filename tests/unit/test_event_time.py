"""The accepted range of prediction times: its bounds are inclusive, and each refusal names its setting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from featureloop.event_time import EARLIEST_ENV, MAX_AHEAD_ENV, EventTimeBounds
from featureloop.settings import Settings

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
BOUNDS = EventTimeBounds(datetime(1970, 1, 1, tzinfo=UTC), timedelta(days=1))


@pytest.mark.parametrize(
    "value",
    [datetime(1970, 1, 1, tzinfo=UTC), datetime(2013, 6, 1, 8, tzinfo=UTC), NOW + timedelta(days=1), NOW],
)
def test_times_inside_the_range_are_accepted(value: datetime) -> None:
    assert BOUNDS.problem(value, NOW) is None


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC), EARLIEST_ENV),
        (datetime(1, 1, 1, tzinfo=UTC), EARLIEST_ENV),
        (NOW + timedelta(days=1, seconds=1), MAX_AHEAD_ENV),
        (datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), MAX_AHEAD_ENV),
        (datetime(9999, 12, 31, 18, 59, 59, tzinfo=timezone(timedelta(hours=-5))), MAX_AHEAD_ENV),
    ],
)
def test_times_outside_are_refused_naming_the_bound(value: datetime, named: str) -> None:
    problem = BOUNDS.problem(value, NOW)
    assert problem is not None and named in problem and value.astimezone(UTC).isoformat() in problem


def test_the_latest_time_never_overflows() -> None:
    assert EventTimeBounds(BOUNDS.earliest, timedelta(days=3650)).latest(
        datetime.max.replace(tzinfo=UTC)
    ) == (datetime.max.replace(tzinfo=UTC))


def test_settings_take_a_naive_earliest_as_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EARLIEST_ENV, "2013-01-01T00:00:00")
    monkeypatch.setenv(MAX_AHEAD_ENV, "60")
    bounds = Settings().event_time_bounds
    assert bounds == EventTimeBounds(datetime(2013, 1, 1, tzinfo=UTC), timedelta(seconds=60))
