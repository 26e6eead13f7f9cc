"""Prefect flow `materialize`: load the online store from the offline store, windowed and idempotent.

Scheduled by the deployment server. Each run continues every view from where its last run ended,
minus an overlap for late rows (rewriting a row gives the same online store, so overlaps and reruns
are safe); `start` makes it an explicit backfill (Feast's own first incremental run only covers the
last TTL window). What it wrote is recorded: the run's result, a markdown artifact, and Feast's
registry (the materialised intervals the next run starts from). The steps are the core's
(featureloop.featurestore.materialization), each a Prefect task here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Self

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field, model_validator

from featureloop.params import as_utc
from featureloop.settings import Settings
from featureloop.steps import StepOptions
from flows.steps import PrefectSteps

# A view's load may meet a busy online store: retried, which reloads the same window (idempotent).
STEPS = {"load_view": StepOptions(retries=2, retry_delay_seconds=(5, 30))}


class MaterializeParams(BaseModel):
    """Up to when to load, from when (backfill) or incrementally, and which views."""

    end: datetime | None = Field(None, description="Load values up to this time (UTC); default: now.")
    start: datetime | None = Field(None, description="Backfill from this time; default: incremental.")
    overlap_minutes: int = Field(60, ge=0, description="Incremental runs reload this much for late rows.")
    feature_views: list[str] | None = Field(None, description="Only these views; default: all.")

    @model_validator(mode="after")
    def _utc(self) -> Self:
        for name in ("end", "start"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, as_utc(value))
        if self.start and self.end and self.start >= self.end:
            raise ValueError(f"start ({self.start.isoformat()}) must be before end ({self.end.isoformat()})")
        return self


@flow(name="materialize")
def materialize(params: MaterializeParams | None = None) -> dict[str, Any]:
    """Load each feature view's new values into the online store."""
    from featureloop.featurestore.materialization import materialize_online
    from featureloop.featurestore.store import open_store

    params = params or MaterializeParams()
    settings = Settings()
    now = datetime.now(UTC)
    end = params.end or now
    result = materialize_online(
        open_store(settings), PrefectSteps(STEPS), end, start=params.start,
        feature_views=params.feature_views, overlap=timedelta(minutes=params.overlap_minutes),
        latest=settings.event_time_bounds.latest(now),
    )  # fmt: skip
    counts = result["online_entities"]
    rows = "\n".join(
        f"| {w['feature_view']} | {w['start'][:19]} | {w['end'][:19]} | {w['why']} | {counts.get(w['feature_view'], '-')} |"
        for w in result["loaded"]
    )
    create_markdown_artifact(
        f"# Materialised up to {end.isoformat()[:19]}\n\n| view | from | to | why | entities online |\n"
        f"|---|---|---|---|---|\n{rows or '| (all views up to date) | | | | |'}\n",
        key="materialize-summary",
        description="What this run loaded",
    )
    return result


if __name__ == "__main__":
    print(materialize())
