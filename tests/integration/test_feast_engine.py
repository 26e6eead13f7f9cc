"""The fast materialisation engine writes exactly what Feast's own local engine writes."""

from __future__ import annotations

import contextlib
import shutil
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType

from featureloop.featurestore.codec import encode_entity_keys, encode_values
from featureloop.featurestore.store import open_store
from featureloop.settings import PROJECT_ROOT
from tests.integration.conftest import REDIS_PASSWORD, FeastEnv
from tests.waiting import until

pytestmark = pytest.mark.integration


def _empty_copy(source: Path, target: Path) -> Path:
    shutil.copy(source, target)
    with contextlib.closing(sqlite3.connect(target)) as con, con:
        for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            con.execute(f'DELETE FROM "{name}"')
    return target


def _contents(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with contextlib.closing(sqlite3.connect(path)) as con:
        tables = [n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()]
        return {
            t: con.execute(
                f'SELECT entity_key, feature_name, value, value_text, event_ts, created_ts FROM "{t}" '
                "ORDER BY entity_key, feature_name"
            ).fetchall()
            for t in tables
        }


def test_online_store_equals_feasts_engine_byte_for_byte(feast_env: FeastEnv, tmp_path: Path) -> None:
    online = feast_env.settings.feast_dir / "online.db"
    theirs_path = _empty_copy(online, tmp_path / "feast_engine.db")
    ours_path = _empty_copy(online, tmp_path / "our_engine.db")
    theirs = open_store(feast_env.settings, batch_engine="local", online_path=theirs_path)
    ours = open_store(feast_env.settings, online_path=ours_path)
    assert type(ours._get_provider().batch_engine).__name__ == "FastComputeEngine"
    end = datetime.fromisoformat(feast_env.prepared.time_range["end"])
    # Two windows: a backfill, then an incremental one that overwrites part of it.
    for start, stop in ((end - timedelta(days=20), end - timedelta(days=6)), (end - timedelta(days=7), end)):
        theirs.materialize(start_date=start, end_date=stop)
        ours.materialize(start_date=start, end_date=stop)
    a, b = _contents(theirs_path), _contents(ours_path)
    assert set(a) == set(b) and sum(len(rows) for rows in a.values()) > 500, {t: len(r) for t, r in a.items()}
    for table in a:
        assert a[table] == b[table], table

    # A late backfill of the first window: ours keeps the newer values, Feast's engine regresses them.
    first = (end - timedelta(days=20), end - timedelta(days=6))
    ours.materialize(start_date=first[0], end_date=first[1])
    assert _contents(ours_path) == b
    regressed = _empty_copy(theirs_path, tmp_path / "regressed.db")
    shutil.copy(theirs_path, regressed)
    regressing = open_store(feast_env.settings, batch_engine="local", online_path=regressed)
    regressing.materialize(start_date=first[0], end_date=first[1])
    assert _contents(regressed) != a

    # And as a reader sees it: Feast's get_online_features on both stores.
    flights = feast_env.table("flights").dropna(subset=["tailnum"]).head(40)
    rows = [
        {"tailnum": r.tailnum, "origin": r.origin, "carrier": r.carrier, "route": r.route}
        for r in flights.itertuples()
    ] + [{"tailnum": "NOPE", "origin": "XXX", "carrier": "ZZ", "route": "XXX-YYY"}]
    service = feast_env.store.get_feature_service("flight_delay_v1")
    assert (
        theirs.get_online_features(features=service, entity_rows=rows).proto
        == ours.get_online_features(features=service, entity_rows=rows).proto
    )


@pytest.mark.parametrize(
    ("value_type", "values"),
    [
        (ValueType.DOUBLE, pa.array([1.5, None, -0.0, 1e300, 3.0, float("nan"), 1 / 3])),
        (ValueType.FLOAT, pa.array([1.1, None, -2.5], type=pa.float32())),
        (
            ValueType.INT64,
            pa.array([0, 1, -5, 2**40, None, -(2**52)]),
        ),  # with a null: read as floats, as Feast does
        (ValueType.INT64, pa.array([2**63 - 1, -(2**63), 7])),
        (ValueType.INT32, pa.array([3, -3, None, 2**31 - 1], type=pa.int32())),
        (ValueType.STRING, pa.array(["a", None, "é", "", "x" * 300])),
        (ValueType.BOOL, pa.array([True, False, None])),
    ],
)
def test_value_encoding_equals_feasts(value_type: ValueType, values: pa.Array) -> None:
    from feast.infra.online_stores.helpers import extract_text_and_num

    encoded, texts = encode_values(values, value_type)
    protos = python_values_to_proto_values(values.to_numpy(zero_copy_only=False), value_type)
    assert encoded == [p.SerializeToString() for p in protos]
    assert texts == [extract_text_and_num(p, False)[0] for p in protos]


def test_entity_key_encoding_equals_feasts() -> None:
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    names, ids = pa.array(["N1", "é", ""]), pa.array(np.array([7, -1, 2**40]))
    ours = encode_entity_keys([("tailnum", names, ValueType.STRING), ("airport_id", ids, ValueType.INT64)])
    for i, key in enumerate(ours):
        proto = EntityKey(
            join_keys=["tailnum", "airport_id"],
            entity_values=[Value(string_val=names[i].as_py()), Value(int64_val=ids[i].as_py())],
        )
        assert key == serialize_entity_key(proto, entity_key_serialization_version=3)


def test_a_run_killed_midway_and_rerun_gives_the_same_online_store(tmp_path: Path) -> None:
    from tests.integration import materialize_repo as repo

    repo.write_data(tmp_path, 200_000)
    engine = {"type": "featureloop.featurestore.engine.FastComputeEngine", "chunk_rows": 5_000}
    repo.store(tmp_path, "clean.db", engine).materialize(start_date=repo.START, end_date=repo.END)
    full = len(_contents(tmp_path / "clean.db")[repo.TABLE])

    run = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.materialize_repo", str(tmp_path), "killed.db", "5000"],
        cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def rows_written() -> int:
        with contextlib.closing(sqlite3.connect(tmp_path / "killed.db", timeout=0.1)) as con:
            return int(con.execute(f'SELECT count(*) FROM "{repo.TABLE}"').fetchone()[0])

    written = until(
        rows_written, timeout=120, what="the run's first committed chunk", process=run,
        ignoring=(sqlite3.OperationalError,),  # table not created yet, or locked
    )  # fmt: skip
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    assert 0 < written < full  # killed midway: some chunks, not all

    repo.store(tmp_path, "killed.db", engine).materialize(start_date=repo.START, end_date=repo.END)
    assert _contents(tmp_path / "killed.db") == _contents(tmp_path / "clean.db")


def test_readers_never_wait_for_a_materialisation_and_see_whole_commits(tmp_path: Path) -> None:
    """A reader with serving's timeout (50 ms) reads one entity in a loop while another process
    rewrites every entity (30,000, one transaction): with SQLite's rollback journal the writer
    locks readers out once its changes outgrow the page cache; with the write-ahead log the engine
    sets, no read waits, and each read sees the old or the new value, never a mix."""
    import pandas as pd

    from tests.integration import materialize_repo as repo

    repo.write_data(tmp_path, 30_000)
    engine = {"type": "featureloop.featurestore.engine.FastComputeEngine", "chunk_rows": 250_000}
    repo.store(tmp_path, "online.db", engine).materialize(start_date=repo.START, end_date=repo.END)
    frame = pd.read_parquet(tmp_path / "features.parquet")
    frame["orders"] += 1  # the same entities and times, new values: the rerun rewrites every row
    frame.to_parquet(tmp_path / "features.parquet", index=False)

    reader = sqlite3.connect(tmp_path / "online.db", timeout=0.05, isolation_level=None)
    (journal,) = reader.execute("PRAGMA journal_mode").fetchone()
    assert journal == "wal"
    last = f'SELECT entity_key FROM "{repo.TABLE}" ORDER BY entity_key DESC LIMIT 1'
    (key,) = reader.execute(last).fetchone()
    point = f'SELECT group_concat(hex(value)) FROM "{repo.TABLE}" WHERE entity_key = ? ORDER BY feature_name'
    (before,) = reader.execute(point, (key,)).fetchone()
    run = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.materialize_repo", str(tmp_path), "online.db", "250000"],
        cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    seen: list[str] = []
    locked = 0
    while run.poll() is None:
        try:
            (value,) = reader.execute(point, (key,)).fetchone()
            if not seen or seen[-1] != value:
                seen.append(value)
        except sqlite3.OperationalError as exc:
            assert "locked" in str(exc), exc
            locked += 1
    _, err = run.communicate()
    assert run.returncode == 0, err.decode(errors="replace")[-2000:]
    (after,) = reader.execute(point, (key,)).fetchone()
    reader.close()
    assert after != before  # the rerun did rewrite the entity
    assert locked == 0, f"{locked} reads waited out serving's timeout for the writer"
    assert seen == [before, after]  # old until the commit, then new: never a partial state


def test_materialize_rebuilds_a_store_whose_tables_or_file_were_removed(tmp_path: Path) -> None:
    """Once "no such table" from SQLite: materialize creates the view's table as apply does."""
    from tests.integration import materialize_repo as repo

    repo.write_data(tmp_path, 2_000)
    engine = {"type": "featureloop.featurestore.engine.FastComputeEngine"}
    store = repo.store(tmp_path, "online.db", engine)
    store.materialize(start_date=repo.START, end_date=repo.END)
    expected = _contents(tmp_path / "online.db")
    with contextlib.closing(sqlite3.connect(tmp_path / "online.db")) as con:
        con.execute(f'DROP TABLE "{repo.TABLE}"')
    store.materialize(start_date=repo.START, end_date=repo.END)
    assert _contents(tmp_path / "online.db") == expected
    for path in tmp_path.glob("online.db*"):
        path.unlink()
    repo.store(tmp_path, "online.db", engine).materialize(start_date=repo.START, end_date=repo.END)
    assert _contents(tmp_path / "online.db") == expected


def test_materialize_refuses_a_far_future_end_or_an_inverted_window_and_records_nothing(
    feast_env: FeastEnv,
) -> None:
    """A run to 9999 would be recorded by Feast, and every later incremental run would start there."""
    from featureloop.featurestore.materialization import materialize_window

    store = feast_env.store
    before = {fv.name: list(fv.materialization_intervals) for fv in store.list_feature_views()}
    now = datetime.now(UTC)
    with pytest.raises(ValueError, match="FEATURELOOP_EVENT_TIME_MAX_AHEAD_SECONDS"):
        materialize_window(store, datetime(9999, 12, 31, tzinfo=UTC), latest=now + timedelta(days=1))
    with pytest.raises(ValueError, match="must be before end"):
        materialize_window(store, datetime(2013, 1, 1, tzinfo=UTC), start=datetime(2013, 2, 1, tzinfo=UTC))
    after = {fv.name: list(fv.materialization_intervals) for fv in store.list_feature_views()}
    assert after == before


def _redis_contents(address: str, db: int) -> dict[bytes, dict[bytes, bytes]]:
    import redis

    host, port = address.split(":")
    client = redis.Redis(host=host, port=int(port), db=db, password=REDIS_PASSWORD)
    return {key: client.hgetall(key) for key in client.scan_iter(count=10_000)}


def test_redis_store_equals_feasts_engine_key_for_key(tmp_path: Path, redis_server: str) -> None:
    from tests.integration import materialize_repo as repo

    repo.write_data(tmp_path, 20_000)
    stores = {
        name: repo.store(
            tmp_path,
            f"{name}.db",
            engine,
            {"type": "redis", "connection_string": f"{redis_server},db={db},password={REDIS_PASSWORD}"},
        )
        for name, engine, db in (
            ("ours", {"type": "featureloop.featurestore.engine.FastComputeEngine", "chunk_rows": 7_000}, 1),
            ("feast", {"type": "local"}, 2),
        )
    }
    assert type(stores["ours"]._get_provider().batch_engine).__name__ == "FastComputeEngine"
    middle = repo.START + (repo.END - repo.START) / 2
    # The whole range, then an older window again: Feast's writer keeps the newer values; so does ours.
    for start, end in ((repo.START, repo.END), (repo.START, middle)):
        for store in stores.values():
            store.materialize(start_date=start, end_date=end)
        ours, theirs = _redis_contents(redis_server, 1), _redis_contents(redis_server, 2)
        assert len(ours) == 20_000 and ours == theirs
    rows = [{"customer_id": f"c{i:07d}"} for i in (0, 1, 49, 50, 19_999)] + [{"customer_id": "nope"}]
    features = ["customer_stats:balance", "customer_stats:orders", "customer_stats:segment"]
    assert (
        stores["ours"].get_online_features(features=features, entity_rows=rows).proto
        == stores["feast"].get_online_features(features=features, entity_rows=rows).proto
    )


def test_null_times_are_null_and_null_keys_are_refused() -> None:
    from feast.infra.online_stores.sqlite import adapt_datetime_epoch

    from featureloop.featurestore.sqlite_writer import sqlite_timestamps

    when = datetime(2024, 3, 1, 10, 30, 15, 999_999)
    stamps = pa.array([when, None], type=pa.timestamp("us", tz="UTC"))
    assert sqlite_timestamps(stamps) == [adapt_datetime_epoch(when), None]  # Feast's adapter, whole seconds
    with pytest.raises(ValueError, match="join key 'tailnum' is null in 1 rows"):
        encode_entity_keys([("tailnum", pa.array(["N1", None]), ValueType.STRING)])


def test_timestamp_encoding_equals_protobufs() -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    from featureloop.featurestore.redis_writer import timestamp_protos

    times = [datetime(2024, 1, 1), datetime(1970, 1, 1), datetime(1965, 5, 5, 1, 2, 3, 456_789),
             datetime(2013, 5, 5, 1, 2, 3, 7), datetime(1970, 1, 1, 0, 0, 5), datetime(2100, 1, 1),
             datetime(1980, 1, 1), datetime(3100, 1, 1)]  # fmt: skip
    times = [t.replace(tzinfo=UTC) for t in times]
    protos, nanos = timestamp_protos(pa.array(times, type=pa.timestamp("us", tz="UTC")))
    for when, proto, nano in zip(times, protos, nanos, strict=True):
        expected = Timestamp()
        expected.FromDatetime(when)
        assert proto == expected.SerializeToString(), when
        assert nano == expected.seconds * 1_000_000_000 + expected.nanos


@pytest.mark.parametrize(
    ("value_type", "values"),
    [
        (ValueType.DOUBLE, pa.array([1.5, None, -0.0, 1e300, 1 / 3])),
        (ValueType.FLOAT, pa.array([1.1, None, -2.5], type=pa.float32())),
        (ValueType.INT64, pa.array([0, 1, -5, 2**40, 2**63 - 1, -(2**63)])),
        (ValueType.INT32, pa.array([3, -3, 2**31 - 1, -(2**31)], type=pa.int32())),
        (ValueType.STRING, pa.array(["a", None, "é", "", "x" * 300])),
        (ValueType.BOOL, pa.array([True, False, None])),
    ],
)
def test_serving_decodes_stored_values_as_feast_does(value_type: ValueType, values: pa.Array) -> None:
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import feast_value_type_to_python_type

    from featureloop.featurestore.codec import decode_value

    for data in encode_values(values, value_type)[0]:
        proto = Value()
        proto.ParseFromString(data)
        assert decode_value(data) == feast_value_type_to_python_type(proto), data
