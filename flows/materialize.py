"""Prefect flow `materialize`: load the online store from the offline store, windowed and idempotent.

Scheduled by the deployment server. Each run continues every view from where its last run ended,
minus an overlap for late rows (rewriting a row gives the same online store, so overlaps and reruns
are safe); `start` makes it an explicit backfill (Feast's own first incremental run only covers the
last TTL window). What it wrote is recorded: the run's result, a markdown artifact, and Feast's
registry (the materialised intervals the next run starts from).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Self

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field, model_validator

from featureloop.params import as_utc
from featureloop.settings import Settings


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


@task(retries=2, retry_delay_seconds=[5, 30], cache_policy=NO_CACHE)
def load_view(settings: Settings, view: str, start: datetime, end: datetime) -> dict[str, Any]:
    """One view's window (a retry reloads the same window: idempotent)."""
    from featureloop.featurestore.store import materialize_window, open_store

    return materialize_window(open_store(settings), end, start=start, feature_views=[view])[0]


@flow(name="materialize")
def materialize(params: MaterializeParams | None = None) -> dict[str, Any]:
    """Load each feature view's new values into the online store."""
    from featureloop.featurestore.store import check_end, incremental_windows, online_counts, open_store

    params = params or MaterializeParams()
    logger = get_run_logger()
    settings = Settings()
    now = datetime.now(UTC)
    end = params.end or now
    check_end(end, settings.event_time_bounds.latest(now))
    store = open_store(settings)
    plan = incremental_windows(
        store, end, overlap=timedelta(minutes=params.overlap_minutes), start=params.start,
        feature_views=params.feature_views,
    )  # fmt: skip
    loaded = []
    for view, start, stop, why in plan:
        if start >= stop:
            logger.info("%s: up to date at %s", view, stop.isoformat())
            continue
        logger.info("%s: %s .. %s (%s)", view, start.isoformat(), stop.isoformat(), why)
        loaded.append({**load_view(settings, view, start, stop), "why": why})
    counts = online_counts(open_store(settings))
    rows = "\n".join(
        f"| {w['feature_view']} | {w['start'][:19]} | {w['end'][:19]} | {w['why']} | {counts.get(w['feature_view'], '-')} |"
        for w in loaded
    )
    create_markdown_artifact(
        f"# Materialised up to {end.isoformat()[:19]}\n\n| view | from | to | why | entities online |\n"
        f"|---|---|---|---|---|\n{rows or '| (all views up to date) | | | | |'}\n",
        key="materialize-summary",
        description="What this run loaded",
    )
    return {"end": end.isoformat(), "loaded": loaded, "online_entities": counts}


if __name__ == "__main__":
    print(materialize())
