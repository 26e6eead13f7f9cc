"""The `materialize` flow: backfill, incremental with overlap, idempotent reruns, a record of what it wrote."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from featureloop.featurestore.materialization import incremental_windows
from featureloop.featurestore.store import open_store
from featureloop.settings import Settings
from tests.integration.conftest import FeastEnv

pytestmark = pytest.mark.integration


def _contents(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with contextlib.closing(sqlite3.connect(path)) as con:
        tables = [n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()]
        return {t: con.execute(f'SELECT * FROM "{t}" ORDER BY 1, 2').fetchall() for t in tables}


@pytest.fixture()
def fresh(feast_env: FeastEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A copy of the session's data folder (registry and online store of its own) for the flow."""
    data = tmp_path / "data"
    shutil.copytree(
        feast_env.settings.data_dir,
        data,
        symlinks=True,
        ignore=shutil.ignore_patterns("prediction_log", "drift", "mlflow"),
    )
    for name in ("online.db", "registry.db"):  # a registry and an online store of its own, never loaded
        (data / "feast" / name).unlink()
    monkeypatch.setenv("FEATURELOOP_DATA_DIR", str(data))
    settings = Settings()
    # The new registry and the online store's tables: apply the repo.
    from featureloop.featurestore.store import apply_repo

    apply_repo(settings)
    yield settings


def test_backfill_then_incremental_with_overlap_and_idempotent_reruns(
    fresh: Settings, feast_env: FeastEnv, prefect_server: None
) -> None:
    from flows.materialize import MaterializeParams, materialize

    end = datetime.fromisoformat(feast_env.prepared.time_range["end"])
    first_end = end - timedelta(days=5)
    backfill = materialize(MaterializeParams(start=end - timedelta(days=40), end=first_end))
    assert {w["why"] for w in backfill["loaded"]} == {"backfill"} and len(backfill["loaded"]) == 6
    assert all(n > 0 for n in backfill["online_entities"].values())

    store = open_store(fresh)
    plan = {
        view: (start, why)
        for view, start, _, why in incremental_windows(store, end, overlap=timedelta(minutes=90))
    }
    assert all(start == first_end - timedelta(minutes=90) for start, _ in plan.values()), plan
    assert all(why.startswith("incremental from") for _, why in plan.values())

    incremental = materialize(MaterializeParams(end=end, overlap_minutes=90))
    assert len(incremental["loaded"]) == 6
    online = fresh.feast_dir / "online.db"
    after = _contents(online)
    again = materialize(
        MaterializeParams(start=end - timedelta(days=40), end=first_end)
    )  # a rerun of old windows...
    materialize(MaterializeParams(end=end, overlap_minutes=90))  # ...then the incremental again
    assert _contents(online) == after  # nothing changes: every write is an idempotent upsert
    assert len(again["loaded"]) == 6

    up_to_date = materialize(MaterializeParams(end=end, overlap_minutes=0))
    assert up_to_date["loaded"] == []  # nothing new since the last run


def test_bad_parameters_name_the_problem() -> None:
    from pydantic import ValidationError

    from flows.materialize import MaterializeParams

    with pytest.raises(ValidationError, match=r"start .* must be before end"):
        MaterializeParams(start=datetime(2013, 2, 1), end=datetime(2013, 1, 1))


def test_unknown_views_are_named(feast_env: FeastEnv) -> None:
    with pytest.raises(ValueError, match=r"unknown feature views \['nope'\]"):
        incremental_windows(feast_env.store, datetime(2013, 2, 1), feature_views=["nope"])
