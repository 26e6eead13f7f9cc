"""The prediction times the loop accepts: one rule for serving (which refuses others) and monitoring
(which ignores and counts rows outside it). Pure: no I/O, no clock of its own (callers pass `now`).

A prediction time (`event_timestamp`) is accepted from `earliest` to the server's clock plus
`max_ahead`. Without an upper bound one request stamped 9999-12-31 would set every default drift
window after it; replays of history (the worked example serves 2013) stay inside the range.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

EARLIEST_ENV = "FEATURELOOP_EVENT_TIME_EARLIEST"
MAX_AHEAD_ENV = "FEATURELOOP_EVENT_TIME_MAX_AHEAD_SECONDS"


@dataclass(frozen=True)
class EventTimeBounds:
    """Accepted prediction times: [earliest, now + max_ahead]."""

    earliest: datetime
    max_ahead: timedelta

    def latest(self, now: datetime) -> datetime:
        """The latest accepted time for a server whose clock reads `now` (capped at 9999-12-31)."""
        try:
            return now.astimezone(UTC) + self.max_ahead
        except OverflowError:
            return datetime.max.replace(tzinfo=UTC)

    def problem(self, value: datetime, now: datetime) -> str | None:
        """None when `value` is accepted; otherwise one sentence naming the bound and the way out."""
        value = value.astimezone(UTC)
        if value < self.earliest:
            return (
                f"event_timestamp {value.isoformat()} is before the earliest accepted prediction time "
                f"{self.earliest.isoformat()} ({EARLIEST_ENV}): send the prediction time in UTC, "
                "or lower that setting"
            )
        latest = self.latest(now)
        if value > latest:
            return (
                f"event_timestamp {value.isoformat()} is more than {self.max_ahead.total_seconds():g} s "
                f"ahead of the server's clock (latest accepted: {latest.isoformat(timespec='seconds')}, "
                f"{MAX_AHEAD_ENV}): send the prediction time in UTC, or omit it for now"
            )
        return None
