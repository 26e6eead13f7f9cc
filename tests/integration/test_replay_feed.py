"""The replay's online feed: before each hourly step, the online store holds for every entity the
step's requests read exactly the latest offline value at the step's start (what an hourly
materialisation would hold for them), as Feast's own online read returns it; also while the next
step's rows for other entities are being written (the replay writes them during the step)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from data.prepare import prepare_dataset
from data.synthetic import SyntheticSpec, generate, write_raw
from featureloop.project.spec import load_spec
from featureloop.settings import Settings

pytestmark = pytest.mark.integration

SERVICE = "flight_delay_v1"
START = datetime(2013, 1, 10, 5, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_before_each_step_online_values_equal_the_offline_point_in_time_values(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from featureloop.backtest.replay import OnlineFeed, Requests
    from featureloop.featurestore.materialization import materialize_window
    from featureloop.featurestore.store import apply_repo, open_store

    root = tmp_path_factory.mktemp("feed")
    raw = write_raw(generate(SyntheticSpec(days=14, flights_per_hour=8, n_aircraft=25, seed=3)), root / "raw")
    settings = Settings(data_dir=root / "data", raw_dir=raw)
    prepare_dataset(raw, settings.versions_dir, settings.offline_dir)
    apply_repo(settings)
    store = open_store(settings)
    materialize_window(store, START)
    flights = pd.read_parquet(settings.offline_dir / "flights.parquet")
    requests = Requests(flights, load_spec(settings.feature_repo), START, START + 2 * 24 * HOUR, HOUR)
    feed = OnlineFeed(store, requests)
    assert {v.view.name for v in feed.views} == {
        p.name for p in store.get_feature_service(SERVICE).feature_view_projections
    }
    checked = 0
    early = {0: 0}
    total = written = feed.before(0)
    for step in range(48):
        # As the replay does: the step's remaining rows, then, while the step is answered, the next
        # step's rows for entities this step does not read. The check below runs after both.
        if step > 0:
            written = early[step] + feed.before(step, "late")
            total += written - early[step]
        if step + 1 < 48:
            early[step + 1] = feed.before(step + 1, "early")
            total += early[step + 1]
        rows = requests.at(step)
        if step % 5 or not rows:
            continue
        entity_rows = [
            {"tailnum": r["tailnum"] or "", "origin": r["origin"], "carrier": r["carrier"], "route": f"{r['origin']}-{r['dest']}"}
            for r in rows
        ]  # fmt: skip
        online = store.get_online_features(
            features=store.get_feature_service(SERVICE), entity_rows=entity_rows
        ).to_df()
        entity_df = pd.DataFrame(entity_rows).assign(event_timestamp=pd.Timestamp(START + step * HOUR))
        expected = store.get_historical_features(
            entity_df=entity_df, features=store.get_feature_service(SERVICE)
        ).to_df()
        keys = ["tailnum", "origin", "carrier", "route"]
        expected = entity_df.merge(expected, on=[*keys, "event_timestamp"], how="left")
        features = [c for c in online.columns if c not in keys]
        for name in features:
            got, want = online[name].tolist(), expected[name].tolist()
            # Equal values and the same gaps (Feast reads an absent value as None, the join as NaN).
            assert [None if pd.isna(x) else x for x in got] == [None if pd.isna(x) else x for x in want], (
                f"{name} at step {step}"
            )
        checked += 1
        assert written > 0
    assert checked >= 6
    assert total == feed.rows()  # early + late is every row, each written once
    assert 0 < sum(int(v.early[v.steps > 0].sum()) for v in feed.views) < feed.rows()
    feed.close()
