"""When a prediction's outcome becomes known, as SQL over the spine's columns: the one rule that
training (which rows it may label) and decay (which served predictions it may score) both run."""

from __future__ import annotations

from featureloop.project.spec import OutcomeKnown, Spine
from featureloop.sql import quote_identifier


def known_at_sql(spine: Spine, outcome: OutcomeKnown) -> str:
    """The spec's outcome time: its column, or the prediction time plus its fixed delay."""
    after = outcome.after
    if after is None:
        return quote_identifier(str(outcome.column))
    return f"{quote_identifier(spine.time)} + to_seconds({int(after.total_seconds())})"
