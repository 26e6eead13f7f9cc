"""The serving app over real HTTP: real online store, real MLflow champion, real prediction log."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from fastapi import FastAPI
from pydantic import SecretStr

from featureloop.featurestore.materialization import materialize_window
from featureloop.params import TrainParams
from featureloop.project.spec import load_spec
from featureloop.settings import PROJECT_ROOT, Settings
from featureloop.training.model import model_input
from featureloop.training.pipeline import run_training
from featureloop.training.registry import CHAMPION, connect, load_model
from serving.app import create_app
from serving.contract import build_contract
from tests.integration.conftest import REDIS_PASSWORD, FeastEnv, free_port, serve_app
from tests.waiting import until

pytestmark = pytest.mark.integration

CONTRACT = build_contract(load_spec(PROJECT_ROOT / "feature_repo"))
WINDOW = {"train_start": datetime(2013, 1, 1, tzinfo=UTC), "train_end": datetime(2013, 1, 30, tzinfo=UTC)}


@dataclass
class Served:
    url: str
    settings: Settings
    feast_env: FeastEnv
    end: datetime
    first_version: str
    app: FastAPI

    def flush_log(self) -> None:
        """Every row served so far written to the prediction log (the app's own writer, in-process)."""
        assert self.app.state.featureloop.log.flush(timeout=30)


@pytest.fixture(scope="module")
def served(feast_env: FeastEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A champion trained on the synthetic data, the online store loaded, the app on a real port."""
    tmp = tmp_path_factory.mktemp("serving")
    settings = feast_env.settings.model_copy(
        update={
            "mlflow_tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}",
            "model_reload_seconds": 0.2,
            "prediction_log_flush_seconds": 0.2,
            "predict_max_batch": 50,
        }
    )
    summary = run_training(settings, TrainParams(**WINDOW), report=lambda _m: None)
    assert summary["promoted"]
    end = datetime.fromisoformat(feast_env.prepared.time_range["end"])
    materialize_window(feast_env.store, end)
    app = create_app(settings)
    with serve_app(app) as url:
        yield Served(url, settings, feast_env, end, summary["version"], app)


def _flights(served: Served, n: int) -> list[dict[str, Any]]:
    flights = served.feast_env.table("flights").dropna(subset=["tailnum"]).sample(n, random_state=5)
    return [
        {
            "flight_id": r.flight_id, "tailnum": r.tailnum, "origin": r.origin, "dest": r.dest,
            "carrier": r.carrier, "distance": r.distance, "sched_hour": int(r.sched_hour),
            "day_of_week": int(r.day_of_week), "event_timestamp": served.end.isoformat(),
        }
        for r in flights.itertuples()
    ]  # fmt: skip


def test_predictions_equal_the_model_applied_to_the_features_feast_returns(served: Served) -> None:
    flights = _flights(served, 20)
    response = httpx.post(f"{served.url}/predict", json={"flights": flights}, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == served.first_version and body["feature_service"] == "flight_delay_v1"

    store = served.feast_env.store
    entity_rows = [
        {"tailnum": f["tailnum"], "origin": f["origin"], "carrier": f["carrier"], "route": f"{f['origin']}-{f['dest']}"}
        for f in flights
    ]  # fmt: skip
    features = store.get_online_features(
        features=store.get_feature_service("flight_delay_v1"), entity_rows=entity_rows
    ).to_df()
    frame = pd.concat(
        [pd.DataFrame(flights), features.drop(columns=["tailnum", "origin", "carrier"])], axis=1
    )
    client, _ = connect(
        served.settings.tracking_uri, served.settings.artifact_location, served.settings.experiment
    )
    version = client.get_model_version_by_alias(served.settings.model_name, CHAMPION)
    inputs = json.loads(version.tags["model_inputs"])
    model = load_model(f"models:/{served.settings.model_name}/{version.version}")
    expected = model.predict_proba(model_input(frame, inputs["numeric"], inputs["categorical"]))[:, 1]
    got = np.array([p["probability"] for p in body["predictions"]])
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert [p["flight_id"] for p in body["predictions"]] == [f["flight_id"] for f in flights]


def test_unknown_entities_are_answered_and_flagged_not_failed(served: Served) -> None:
    flight = {**_flights(served, 1)[0], "tailnum": "NOPE", "dest": "XXX"}
    response = httpx.post(f"{served.url}/predict", json={"flights": [flight]}, timeout=30)
    assert response.status_code == 200, response.text
    missing = response.json()["predictions"][0]["missing_features"]
    assert "seats" in missing and "route_flights_7d" in missing and "aircraft_flights_7d" in missing
    assert "carrier_flights_7d" not in missing
    assert 0.0 <= response.json()["predictions"][0]["probability"] <= 1.0


def test_values_older_than_their_ttl_are_reported_stale(served: Served) -> None:
    flight = {**_flights(served, 1)[0], "event_timestamp": "2013-06-01T00:00:00+00:00"}
    prediction = httpx.post(f"{served.url}/predict", json={"flights": [flight]}, timeout=30).json()[
        "predictions"
    ][0]
    assert "temp" in prediction["stale_features"]  # weather: 3 h TTL
    assert "carrier_flights_7d" in prediction["stale_features"]  # rolling statistics: 30 d TTL
    assert "seats" not in prediction["stale_features"]  # aircraft attributes: 10 years


def test_openapi_documents_predict_and_the_fastapi_route_answers_like_the_fast_path(served: Served) -> None:
    schema = httpx.get(f"{served.url}/openapi.json", timeout=30).json()
    operation = schema["paths"]["/predict"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/PredictRequest"
    )
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/PredictResponse"
    )
    # The route behind the layer (used when the layer is not in front) gives the same answers.
    app = create_app(served.settings)
    flights = _flights(served, 3)

    async def without_layer(scope: Any, receive: Any, send: Any) -> None:
        await FastAPI.__call__(app, scope, receive, send)

    with serve_app(without_layer) as plain:
        for body, status in (({"flights": flights}, 200), ({"flights": flights * 20}, 413)):
            fast = httpx.post(f"{served.url}/predict", json=body, timeout=30)
            slow = httpx.post(f"{plain}/predict", json=body, timeout=30)
            assert fast.status_code == slow.status_code == status
            if status == 200:
                a, b = fast.json(), slow.json()
                assert a["predictions"] == b["predictions"] and a["model_version"] == b["model_version"]
            else:
                assert fast.json() == slow.json()


def test_get_online_features_answers_like_feast_and_names_unknown_features(served: Served) -> None:
    body = {"entities": {"carrier": ["UA", "ZZ"]}, "features": ["carrier_stats:carrier_flights_7d"]}
    response = httpx.post(f"{served.url}/get-online-features", json=body, timeout=30)
    assert response.status_code == 200
    payload = response.json()
    assert payload["metadata"]["feature_names"] == ["carrier", "carrier_flights_7d"]
    assert payload["results"][1]["statuses"] == ["PRESENT", "NOT_FOUND"]
    bad = httpx.post(
        f"{served.url}/get-online-features",
        json={"entities": {"carrier": ["UA"]}, "features": ["carrier_stats:no_such_feature"]},
        timeout=30,
    )
    assert bad.status_code == 400 and "no_such_feature" in bad.text


def _in_name_order(body: bytes) -> bytes:
    payload = json.loads(body)
    names = payload["metadata"]["feature_names"]
    order = sorted(range(len(names)), key=lambda i: names[i])
    payload["metadata"]["feature_names"] = [names[i] for i in order]
    payload["results"] = [payload["results"][i] for i in order]
    return json.dumps(payload, separators=(",", ":")).encode()


@contextlib.contextmanager
def _feast_serve(repo: Path, config: dict[str, Any], data_dir: Path, folder: Path) -> Iterator[str]:
    """Feast's own feature server (`feast serve`, one worker) on `repo` with `config` as its yaml."""
    (folder / "feature_store.yaml").write_text(yaml.safe_dump(config))
    port = free_port()
    env = {**os.environ, "FEATURELOOP_DATA_DIR": str(data_dir)}
    feast_bin = str(Path(sys.executable).parent / "feast")
    proc = subprocess.Popen(
        [feast_bin, "--chdir", str(repo), "-f", str(folder / "feature_store.yaml"), "serve",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            assert proc.poll() is None, "feast serve exited"
            try:
                return httpx.get(f"{url}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        until(healthy, timeout=120, what="feast serve answering /health")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def feast_server(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`feast serve` on the same registry and SQLite online store as the served app."""
    repo = served.settings.feature_repo
    config = yaml.safe_load((repo / "feature_store.yaml").read_text())
    config["registry"] = str(served.settings.feast_dir / "registry.db")
    config["online_store"]["path"] = str(served.settings.feast_dir / "online.db")
    with _feast_serve(repo, config, served.settings.data_dir, tmp_path_factory.mktemp("feast-serve")) as url:
        yield url


def _feature_requests(served: Served) -> list[dict[str, Any]]:
    """Bodies the fast path answers: distinct and repeated entities, unknown ones, several views,
    a feature service with and without full names, a join key no requested view uses."""
    flights = served.feast_env.table("flights").dropna(subset=["tailnum"])
    tails = list(dict.fromkeys(flights["tailnum"]))[:25]
    sample = flights.drop_duplicates("tailnum").head(12)
    rows = {
        "tailnum": [*sample["tailnum"], "NOPE", sample["tailnum"].iloc[0]],
        "origin": [*sample["origin"], "EWR", sample["origin"].iloc[0]],
        "carrier": [*sample["carrier"], "ZZ", sample["carrier"].iloc[0]],
        "route": [*(sample["origin"] + "-" + sample["dest"]), "EWR-NOWHERE", "X-Y"],
    }
    aircraft = ["aircraft_stats:aircraft_flights_24h", "aircraft_stats:aircraft_dep_delay_mean_24h",
                "aircraft_stats:aircraft_delayed_share_24h"]  # fmt: skip
    return [
        {"entities": {"carrier": ["UA", "DL", "ZZ"]}, "features": ["carrier_stats:carrier_flights_7d",
                                                                 "carrier_stats:carrier_dep_delay_mean_24h"]},
        {"entities": {"origin": ["EWR", "JFK"]}, "features": ["weather:temp", "weather:visib"],
         "full_feature_names": True},
        {"entities": {"tailnum": [*tails, "NOPE", tails[0]]}, "features": aircraft},
        {"entities": {"tailnum": tails[:1]}, "features": aircraft},
        {"entities": {"tailnum": tails[:5], "origin": ["EWR", "JFK", "LGA", "EWR", "JFK"]},
         "features": [*aircraft, "aircraft:seats", "aircraft:manufacturer"]},
        {"entities": rows, "feature_service": "flight_delay_v1"},
        {"entities": rows, "feature_service": "flight_delay_v1", "full_feature_names": True},
    ]  # fmt: skip


def _fast_path_count(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    found = re.search(r'^featureloop_online_features_requests_total\{path="fast"\} ([\d.]+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def _assert_bodies_equal(ours: httpx.Response, theirs: httpx.Response) -> None:
    assert ours.status_code == theirs.status_code == 200, (ours.text[:300], theirs.text[:300])
    # Feast does not fix the order of a view's features (a set inside, ordered by the process's
    # string hashes): compare in name order, byte for byte once both bodies list their columns the
    # same way. (The order itself is checked against Feast in one process below.)
    assert _in_name_order(ours.content) == _in_name_order(theirs.content)


def test_get_online_features_body_is_byte_for_byte_feast_serve(served: Served, feast_server: str) -> None:
    """Feast's own feature server on the same registry and online store gives the same bodies, and
    our fast path (not Feast's code) answered every one of them."""
    requests = _feature_requests(served)
    before = _fast_path_count(served.url)
    for request in requests:
        ours = httpx.post(f"{served.url}/get-online-features", json=request, timeout=30)
        theirs = httpx.post(f"{feast_server}/get-online-features", json=request, timeout=30)
        _assert_bodies_equal(ours, theirs)
    assert _fast_path_count(served.url) - before == len(requests)


def test_get_online_features_returns_values_older_than_their_ttl_as_feast_does(
    served: Served, feast_server: str
) -> None:
    """Feast 0.67's feature server applies no TTL to a plain request: a value older than its view's
    TTL comes back PRESENT, with its event time (no OUTSIDE_MAX_AGE). So do we."""
    request = {"entities": {"carrier": ["UA", "DL"], "origin": ["EWR", "JFK"]},
               "features": ["carrier_stats:carrier_flights_7d", "origin_stats:origin_flights_24h"]}  # fmt: skip
    ours = httpx.post(f"{served.url}/get-online-features", json=request, timeout=30)
    theirs = httpx.post(f"{feast_server}/get-online-features", json=request, timeout=30)
    _assert_bodies_equal(ours, theirs)
    payload = ours.json()
    results = dict(zip(payload["metadata"]["feature_names"], payload["results"], strict=True))
    ttl = pd.Timedelta(days=30)  # the rolling statistics' TTL
    for name in ("carrier_flights_7d", "origin_flights_24h"):
        stamps = pd.to_datetime(results[name]["event_timestamps"], utc=True)
        assert (stamps < pd.Timestamp.now(tz="UTC") - ttl).all()  # the synthetic data is from 2013
        assert results[name]["statuses"] == ["PRESENT", "PRESENT"]


def test_get_online_features_fast_path_lists_columns_in_feasts_order(served: Served) -> None:
    """In one process (one string-hash order), the fast path's body equals Feast's own
    `get_online_features` body byte for byte, column order included."""
    from serving.online_features import OnlineFeatures
    from serving.schemas import GetOnlineFeaturesRequest
    from serving.sqlite_store import SqliteStoreFile

    store = served.feast_env.store
    answers = OnlineFeatures(store, SqliteStoreFile(store, 5000))
    for body in _feature_requests(served):
        request = GetOnlineFeaturesRequest(**body)
        assert answers._fast(request) == answers._feast(request)


def test_get_online_features_keeps_feasts_times_when_an_entitys_rows_differ(
    served: Served, tmp_path: Path
) -> None:
    """An entity whose rows were written at different times (a feature added to a view and loaded
    later, one left from an earlier load) gets the time of the row Feast's query lists last, also
    when none of the features asked for is stored for it. The fast path reads only the requested
    features' rows; the time still comes from the entity's last row."""
    import shutil
    import sqlite3

    from featureloop.featurestore.store import open_store
    from serving.online_features import OnlineFeatures
    from serving.schemas import GetOnlineFeaturesRequest

    data = tmp_path / "data"
    shutil.copytree(served.settings.feast_dir, data / "feast")
    (data / "offline").symlink_to(served.settings.offline_dir.resolve(), target_is_directory=True)
    table = "featureloop_aircraft_stats"
    with contextlib.closing(sqlite3.connect(data / "feast" / "online.db", isolation_level=None)) as con:
        found = con.execute(
            f"SELECT entity_key, max(event_ts) FROM {table} GROUP BY entity_key LIMIT 3"
        ).fetchall()
        keys = [k for k, _ in found]
        # The first entity: one row not asked for, rewritten an hour later (now its last row).
        con.execute(
            f"INSERT OR REPLACE INTO {table} (entity_key, feature_name, value, event_ts, created_ts) "
            f"SELECT entity_key, feature_name, value, event_ts + 3600, created_ts FROM {table} "
            "WHERE entity_key = ? AND feature_name = 'aircraft_flights_7d'",
            (keys[0],),
        )
        # The second: the features asked for are gone, the others stay.
        con.execute(f"DELETE FROM {table} WHERE entity_key = ? AND feature_name LIKE '%_24h'", (keys[1],))
    request = GetOnlineFeaturesRequest(
        entities={"tailnum": [*_tails_of(keys), "NOPE"]},
        features=["aircraft_stats:aircraft_flights_24h", "aircraft_stats:aircraft_delayed_share_24h"],
    )
    answers = OnlineFeatures(open_store(served.settings.model_copy(update={"data_dir": data})))
    body = answers._fast(request)
    assert body == answers._feast(request)
    stamps = json.loads(body)["results"][1]["event_timestamps"]

    def text(stored: int) -> str:  # Feast's reading of a stored time (the machine's local time, called UTC)
        return datetime.fromtimestamp(stored).strftime("%Y-%m-%dT%H:%M:%SZ")

    assert stamps[:2] == [text(found[0][1] + 3600), text(found[1][1])]
    assert json.loads(body)["results"][1]["statuses"] == ["PRESENT", "NOT_FOUND", "PRESENT", "NOT_FOUND"]


def _tails_of(keys: list[bytes]) -> list[str]:
    """The tail numbers in Feast's serialised entity keys (one string join key each)."""
    import struct

    tails = []
    for key in keys:
        (name_length,) = struct.unpack_from("<I", key, 8)
        at = 12 + name_length + 4  # the key's name, then the value's type
        (length,) = struct.unpack_from("<I", key, at)
        tails.append(key[at + 4 : at + 4 + length].decode())
    return tails


def test_get_online_features_leaves_what_it_does_not_cover_to_feast(
    served: Served, feast_server: str
) -> None:
    """Requests the fast path does not cover are answered by Feast's code: the same bodies."""
    tails = list(dict.fromkeys(served.feast_env.table("flights").dropna(subset=["tailnum"])["tailnum"]))[:3]
    requests = [
        # a column Feast skips (not a join key): Feast checks and drops it
        {"entities": {"tailnum": tails, "colour": ["red", "green", "blue"]}, "features": ["aircraft:seats"]},
    ]
    before = _fast_path_count(served.url)
    for request in requests:
        ours = httpx.post(f"{served.url}/get-online-features", json=request, timeout=30)
        theirs = httpx.post(f"{feast_server}/get-online-features", json=request, timeout=30)
        _assert_bodies_equal(ours, theirs)
    assert _fast_path_count(served.url) == before


def test_entity_keys_are_serialised_as_feast_serialises_them() -> None:
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.value_type import ValueType

    from featureloop.featurestore.codec import entity_key_encoder

    cases = [
        (["tailnum"], [ValueType.STRING], [("N12345",), ("",), ("Zürich-✈",)]),
        (["id"], [ValueType.INT64], [(0,), (-1,), (2**63 - 1,), (-(2**63),)]),
        (["a_id", "b_name"], [ValueType.INT64, ValueType.STRING], [(7, "x"), (-5, "ÿ")]),
    ]
    for names, types, keys in cases:
        encode = entity_key_encoder(names, types)
        assert encode is not None
        for key in keys:
            values = [
                Value(string_val=v) if t == ValueType.STRING else Value(int64_val=v)
                for v, t in zip(key, types, strict=True)
            ]
            expected = serialize_entity_key(EntityKey(join_keys=names, entity_values=values), 3)
            assert encode(key) == expected, key
    assert entity_key_encoder(["when"], [ValueType.UNIX_TIMESTAMP]) is None  # left to Feast


def test_stored_values_are_written_as_feasts_feature_server_writes_them() -> None:
    from feast.feature_server_utils import _value_to_native
    from feast.protos.feast.types.Value_pb2 import BoolList, DoubleList, Int64List, StringList, Value

    from featureloop.featurestore.codec import json_value

    values = [
        Value(), Value(double_val=0.1), Value(double_val=-0.0), Value(double_val=1e300),
        Value(double_val=float("nan")), Value(double_val=float("inf")), Value(double_val=float("-inf")),
        Value(int64_val=-5), Value(int64_val=2**63 - 1), Value(int32_val=-7), Value(float_val=0.1),
        Value(string_val=""), Value(string_val="Zürich ✈"), Value(bool_val=True), Value(bool_val=False),
        Value(bytes_val=b"\x00\xff"), Value(unix_timestamp_val=1356998400),
        Value(double_list_val=DoubleList(val=[1.5, float("nan")])), Value(int64_list_val=Int64List(val=[1, -2])),
        Value(string_list_val=StringList(val=["a", "b"])), Value(bool_list_val=BoolList(val=[True])),
    ]  # fmt: skip
    for value in values:
        assert json.dumps(json_value(value.SerializeToString())) == json.dumps(_value_to_native(value)), value


@dataclass
class RedisCopy:
    url: str  # ours
    feast_url: str
    requests: list[dict[str, Any]]


@pytest.fixture(scope="module")
def redis_copy(
    served: Served, redis_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisCopy]:
    """A copy of the repo on a real Redis (loaded as the SQLite store is), its service with a twin
    that has Feast's `precompute_online`; ours and `feast serve` on it."""
    import shutil

    from featureloop.featurestore.store import apply_repo, open_store

    tmp = tmp_path_factory.mktemp("redis-copy")
    repo, data = tmp / "feature_repo", tmp / "data"
    shutil.copytree(served.settings.feature_repo, repo, ignore=shutil.ignore_patterns("__pycache__"))
    with (repo / "feature_services.py").open("a") as services:
        services.write(
            "\nflight_delay_v1_precomputed = FeatureService(\n"
            '    name="flight_delay_v1_precomputed", features=flight_delay_v1._features, precompute_online=True\n)\n'
        )
    config = yaml.safe_load((repo / "feature_store.yaml").read_text())
    config["online_store"] = {
        "type": "redis",
        "connection_string": f"{redis_server},db=11,password={REDIS_PASSWORD}",
    }
    (repo / "feature_store.yaml").write_text(yaml.safe_dump(config))
    (data / "feast").mkdir(parents=True)
    (data / "offline").symlink_to(served.settings.offline_dir.resolve(), target_is_directory=True)
    settings = served.settings.model_copy(update={"feature_repo": repo, "data_dir": data})
    apply_repo(settings)
    store = open_store(settings)
    materialize_window(store, served.end)
    assert store.precompute_feature_service("flight_delay_v1_precomputed") > 0
    config["registry"] = str(data / "feast" / "registry.db")
    rows = _feature_requests(served)[-1]["entities"]
    requests = [
        *_feature_requests(served),
        # Feast reads precomputed vectors only with full names (the vectors store them so)
        {"entities": rows, "feature_service": "flight_delay_v1_precomputed", "full_feature_names": True},
    ]
    with _feast_serve(repo, config, data, tmp) as feast_url, serve_app(create_app(settings)) as url:
        yield RedisCopy(url, feast_url, requests)


def test_get_online_features_on_redis_is_byte_for_byte_feast_serve(redis_copy: RedisCopy) -> None:
    """The Redis profile's reader (one pipeline a request) gives feast serve's bodies: Feast's Redis
    store answers an unknown entity PRESENT with nulls and the epoch as its time, and a service
    with precomputed vectors (answered by Feast's code) marks values older than their TTL
    OUTSIDE_MAX_AGE."""
    before = _fast_path_count(redis_copy.url)
    for request in redis_copy.requests:
        ours = httpx.post(f"{redis_copy.url}/get-online-features", json=request, timeout=30)
        theirs = httpx.post(f"{redis_copy.feast_url}/get-online-features", json=request, timeout=30)
        _assert_bodies_equal(ours, theirs)
    assert _fast_path_count(redis_copy.url) - before == len(redis_copy.requests) - 1  # all but precomputed
    unknown = httpx.post(
        f"{redis_copy.url}/get-online-features",
        json={"entities": {"tailnum": ["NOPE"]}, "features": ["aircraft:seats"]},
        timeout=30,
    ).json()
    assert unknown["results"][1] == {
        "values": [None], "statuses": ["PRESENT"], "event_timestamps": ["1970-01-01T00:00:00Z"]
    }  # fmt: skip
    precomputed = httpx.post(
        f"{redis_copy.url}/get-online-features", json=redis_copy.requests[-1], timeout=30
    ).json()
    assert "OUTSIDE_MAX_AGE" in {s for r in precomputed["results"] for s in r["statuses"]}


def test_served_rows_reach_the_prediction_log(served: Served) -> None:
    response = httpx.post(f"{served.url}/predict", json={"flights": _flights(served, 3)}, timeout=30).json()
    pattern = str(served.settings.prediction_log_dir / "**" / "*.parquet")
    served.flush_log()
    rows = duckdb.sql(
        f"SELECT * FROM read_parquet('{pattern}', union_by_name = true) WHERE request_id = '{response['request_id']}'"
    ).df()
    assert len(rows) == 3
    assert set(rows["model_version"]) == {response["model_version"]}
    assert rows["prediction"].tolist() == pytest.approx([p["probability"] for p in response["predictions"]])
    assert rows["carrier_flights_7d"].notna().all() and rows["latency_ms"].gt(0).all()


def test_promotion_under_concurrent_load_fails_no_request_and_versions_are_consistent(served: Served) -> None:
    from featureloop.training.registry import get_alias

    client, _ = connect(
        served.settings.tracking_uri, served.settings.artifact_location, served.settings.experiment
    )
    before = get_alias(client, served.settings.model_name, CHAMPION)
    assert before is not None
    retrained = run_training(
        served.settings,
        TrainParams(**WINDOW, promote=False, hyperparameters={"max_iter": 50}),
        report=lambda _m: None,
    )
    flights = _flights(served, 5)
    stop = threading.Event()

    def hammer() -> list[tuple[int, str | None, str | None]]:
        seen = []
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                r = http.post(f"{served.url}/predict", json={"flights": flights})
                ok = r.status_code == 200
                seen.append(
                    (
                        r.status_code,
                        r.json()["model_version"] if ok else None,
                        r.json()["request_id"] if ok else None,
                    )
                )
        return seen

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(hammer) for _ in range(4)]
        time.sleep(1.0)  # a second of load before the promotion (not a synchronisation)
        client.set_registered_model_alias(served.settings.model_name, CHAMPION, retrained["version"])
        until(
            lambda: (
                httpx.post(f"{served.url}/predict", json={"flights": flights}, timeout=30).json()[
                    "model_version"
                ]
                == retrained["version"]
            ),
            timeout=20,
            what="the promoted version answering",
        )
        time.sleep(0.5)  # load goes on for a while after the swap (not a synchronisation)
        stop.set()
        seen = [item for future in futures for item in future.result()]
    client.set_registered_model_alias(served.settings.model_name, CHAMPION, before.version)
    assert len(seen) > 20
    assert {status for status, _, _ in seen} == {200}
    assert {version for _, version, _ in seen} == {before.version, retrained["version"]}
    # Every row of a response was computed by the version the response names (the log says which).
    pattern = str(served.settings.prediction_log_dir / "**" / "*.parquet")
    answered = {request_id: version for _, version, request_id in seen}
    served.flush_log()
    logged = duckdb.sql(
        f"SELECT request_id, list(DISTINCT model_version) AS versions, count(*) AS n "
        f"FROM read_parquet('{pattern}', union_by_name = true) GROUP BY request_id"
    ).df()
    logged = logged[logged["request_id"].isin(answered)]
    assert len(logged) == len(answered)
    for row in logged.itertuples():
        assert list(row.versions) == [answered[row.request_id]] and row.n == len(flights)


def test_metrics_expose_latency_predictions_and_feature_status(served: Served) -> None:
    for _ in range(2):  # the second time, every entity's answer comes from the cache
        httpx.post(f"{served.url}/predict", json={"flights": _flights(served, 2)}, timeout=30)
    text = httpx.get(f"{served.url}/metrics", timeout=30).text
    hits = re.search(r'featureloop_online_cache_lookups_total\{result="hit"\} (\S+)', text)
    assert hits is not None and float(hits.group(1)) >= 2 * 4  # 2 flights, at least 4 entity views
    assert 'featureloop_request_seconds_bucket{endpoint="/predict"' in text
    assert f'featureloop_predictions_total{{model_version="{served.first_version}",role="champion"}}' in text
    assert 'featureloop_feature_status_total{status="present"}' in text
    assert "featureloop_model_load_seconds" in text
    # Unknown paths share one label (a scanner cannot grow the series without bound).
    for path in ("/nope", "/nope/2", "/wp-admin"):
        assert httpx.get(f"{served.url}{path}", timeout=30).status_code == 404
    text = httpx.get(f"{served.url}/metrics", timeout=30).text
    assert 'featureloop_errors_total{endpoint="other",kind="404"} 3.0' in text
    assert "/wp-admin" not in text


def test_ready_reports_model_and_stores(served: Served) -> None:
    body = httpx.get(f"{served.url}/ready", timeout=30).json()
    assert body["ready"] is True
    assert body["checks"] == {"model_loaded": True, "online_store": True, "tracking_store": True}


def test_token_is_required_everywhere_but_health(served: Served) -> None:
    settings = served.settings.model_copy(update={"serving_token": SecretStr("s3cret")})
    with serve_app(create_app(settings)) as url:
        assert httpx.get(f"{url}/health", timeout=30).status_code == 200
        flights = {"flights": _flights(served, 1)}
        refused = httpx.post(f"{url}/predict", json=flights, timeout=30)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert "FEATURELOOP_SERVING_TOKEN" in refused.json()["detail"]
        wrong = {"Authorization": "Bearer nope"}
        assert httpx.post(f"{url}/predict", json=flights, headers=wrong, timeout=30).status_code == 401
        assert httpx.get(f"{url}/metrics", headers=wrong, timeout=30).status_code == 401
        right = {"Authorization": "Bearer s3cret"}
        assert httpx.post(f"{url}/predict", json=flights, headers=right, timeout=30).status_code == 200
        assert httpx.get(f"{url}/ready", headers=right, timeout=30).status_code == 200


def test_cached_answers_follow_every_change_to_the_store(served: Served, tmp_path: Path) -> None:
    """The reader keeps entities' answers only while SQLite says nothing changed: a commit by
    another connection (`materialize`), a write on the reader's own connection (Feast's store
    object writing in this process) and a replaced file are each seen at the next read."""
    import shutil
    import sqlite3

    from feast.protos.feast.types.Value_pb2 import Value

    from featureloop.featurestore.store import open_store
    from serving.features import ServiceReader

    data = tmp_path / "data"
    shutil.copytree(served.settings.feast_dir, data / "feast")
    (data / "offline").symlink_to(served.settings.offline_dir.resolve(), target_is_directory=True)
    with (
        contextlib.closing(sqlite3.connect(data / "feast" / "online.db")) as source,
        contextlib.closing(sqlite3.connect(tmp_path / "original.db")) as copy,
    ):
        source.backup(copy)  # the store as it is now, its write-ahead log included
    store = open_store(served.settings.model_copy(update={"data_dir": data}))
    reader = ServiceReader(store, "flight_delay_v1", cache_entries=10_000)
    flights = _flights(served, 5)
    rows = [{"tailnum": f["tailnum"], "origin": f["origin"], "carrier": f["carrier"],
             "route": f"{f['origin']}-{f['dest']}"} for f in flights]  # fmt: skip
    times = [served.end] * len(rows)
    table, feature = "featureloop_aircraft_stats", "aircraft_flights_7d"
    first = reader.read(rows, times)
    assert reader.read(rows, times) == first
    assert reader.tables.cache_hits >= len(rows)  # the second read came from the cache

    def fresh() -> list[Any]:
        expected = store.get_online_features(features=[f"aircraft_stats:{feature}"], entity_rows=rows)
        return expected.to_dict()[feature]

    assert first.columns[feature] == fresh()
    (view,) = [t for t, _, _ in reader._views if t.sqlite_table.strip('"') == table]
    key = reader.tables.encode_keys(view, [(rows[0]["tailnum"],)])[0]

    def stored(value: int) -> bytes:
        return Value(int64_val=value).SerializeToString()

    update = f"UPDATE {table} SET value = ? WHERE entity_key = ? AND feature_name = ?"
    with contextlib.closing(sqlite3.connect(data / "feast" / "online.db", isolation_level=None)) as con:
        assert con.execute(update, (stored(12345), key, feature)).rowcount == 1
    assert reader.read(rows, times).columns[feature][0] == 12345 == fresh()[0]
    own = reader.tables.sqlite.connection()
    with own:  # committed, as Feast's store commits its writes
        own.execute(update, (stored(777), key, feature))
    assert reader.read(rows, times).columns[feature][0] == 777 == fresh()[0]
    # The file replaced (a restore): its write-ahead log emptied first, as SQLite needs when a
    # database file changes under its log.
    own.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    os.replace(tmp_path / "original.db", data / "feast" / "online.db")
    assert reader.read(rows, times) == first
    assert reader.read(rows, times).columns[feature] == fresh()


def test_service_reader_returns_what_feast_get_online_features_returns(served: Served) -> None:
    from serving.features import MISSING, PRESENT, ServiceReader

    store = served.feast_env.store
    flights = _flights(served, 15)
    rows = [
        {"tailnum": f["tailnum"], "origin": f["origin"], "carrier": f["carrier"], "route": f"{f['origin']}-{f['dest']}"}
        for f in flights
    ] + [{"tailnum": "NOPE", "origin": "EWR", "carrier": "ZZ", "route": "EWR-NOWHERE"}]  # fmt: skip
    reader = ServiceReader(store, "flight_delay_v1")
    got = reader.read(rows, [served.end] * len(rows))
    expected = store.get_online_features(
        features=store.get_feature_service("flight_delay_v1"), entity_rows=rows
    )
    expected_values = expected.to_dict()
    names = list(expected.proto.metadata.feature_names.val)
    for name, vector in zip(names, expected.proto.results, strict=True):
        if name in ("tailnum", "origin", "carrier", "route"):
            continue
        ours = [
            None if isinstance(x, float) and x != x else x for x in got.values[name].tolist()
        ]  # NaN -> None
        assert ours == expected_values[name], name
        feast_status = [PRESENT if s == 1 and v is not None else MISSING
                        for s, v in zip(vector.statuses, expected_values[name], strict=True)]  # fmt: skip
        assert got.status[name].tolist() == feast_status, name
    assert set(got.values.columns) == set(names) - {"tailnum", "origin", "carrier", "route"}


@pytest.fixture(scope="module")
def challenger(served: Served) -> str:
    """A second version (fewer boosting rounds: different probabilities) under the `challenger` alias."""
    from featureloop.training.registry import CHALLENGER

    summary = run_training(
        served.settings,
        TrainParams(**WINDOW, promote=False, hyperparameters={"max_iter": 30}),
        report=lambda _m: None,
    )
    client, _ = connect(
        served.settings.tracking_uri, served.settings.artifact_location, served.settings.experiment
    )
    client.set_registered_model_alias(served.settings.model_name, CHALLENGER, summary["version"])
    return str(summary["version"])


def test_canary_answers_a_stable_share_of_aircraft_with_the_challenger(
    served: Served, challenger: str
) -> None:
    settings = served.settings.model_copy(update={"serving_mode": "canary", "canary_share": 0.5})
    flights = _flights(served, 40)
    with serve_app(create_app(settings)) as url, httpx.Client(timeout=30) as http:
        first = [http.post(f"{url}/predict", json={"flights": [f]}).json()["model_version"] for f in flights]
        again = [http.post(f"{url}/predict", json={"flights": [f]}).json()["model_version"] for f in flights]
        text = http.get(f"{url}/metrics").text
    assert first == again  # the same aircraft always meets the same model
    assert set(first) == {served.first_version, challenger}
    for flight, version in zip(flights, first, strict=True):
        expected = (
            challenger
            if CONTRACT.in_share(CONTRACT.request_model(flights=[flight]), 0.5)
            else served.first_version
        )
        assert version == expected
    assert f'featureloop_predictions_total{{model_version="{challenger}",role="canary"}}' in text


def test_shadow_scores_with_the_challenger_but_answers_with_the_champion(
    served: Served, challenger: str
) -> None:
    settings = served.settings.model_copy(update={"serving_mode": "shadow"})
    flights = _flights(served, 4)
    with serve_app(create_app(settings)) as url:
        response = httpx.post(f"{url}/predict", json={"flights": flights}, timeout=30).json()
        text = httpx.get(f"{url}/metrics", timeout=30).text
    assert response["model_version"] == served.first_version
    pattern = str(served.settings.prediction_log_dir / "**" / "*.parquet")
    rows = duckdb.sql(
        f"SELECT * FROM read_parquet('{pattern}', union_by_name = true) WHERE request_id = '{response['request_id']}'"
    ).df()
    assert len(rows) == 4  # the app flushed the log on shutdown
    assert set(rows["shadow_model_version"]) == {challenger}
    assert rows["shadow_prediction"].between(0, 1).all()
    assert not np.allclose(rows["shadow_prediction"], rows["prediction"])  # a different model scored them
    assert f'featureloop_predictions_total{{model_version="{challenger}",role="shadow"}} 4.0' in text


def test_a_writer_holding_the_store_does_not_make_serving_wait(served: Served) -> None:
    """The store is in write-ahead-log mode (apply and materialize set it): a writer's exclusive
    transaction, uncommitted changes and all, leaves readers on the last committed state."""
    import sqlite3

    flights = {"flights": _flights(served, 1)}
    before = httpx.post(f"{served.url}/predict", json=flights, timeout=30).json()["predictions"]
    writer = sqlite3.connect(served.settings.feast_dir / "online.db", isolation_level=None)
    try:
        assert writer.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        writer.execute("BEGIN EXCLUSIVE")
        for (table,) in writer.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            writer.execute(f'DELETE FROM "{table}"')  # uncommitted: nobody may see it
        start = time.monotonic()
        during = httpx.post(f"{served.url}/predict", json=flights, timeout=30)
        elapsed = time.monotonic() - start
        assert during.status_code == 200, during.text
        assert during.json()["predictions"] == before  # the committed values, not the deletions
        assert elapsed < 1.0
        assert httpx.get(f"{served.url}/ready", timeout=30).status_code == 200
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_store_locked_in_rollback_journal_mode_gives_a_quick_503_and_service_resumes(
    served: Served, tmp_path: Path
) -> None:
    """A store someone switched back to SQLite's rollback journal can lock readers out: the 503
    comes within FEATURELOOP_ONLINE_STORE_TIMEOUT_MS (50 ms), not SQLite's 5 s, and names it."""
    import shutil
    import sqlite3

    data = tmp_path / "data"
    shutil.copytree(served.settings.feast_dir, data / "feast")
    (data / "offline").symlink_to(served.settings.offline_dir.resolve())
    with contextlib.closing(sqlite3.connect(data / "feast" / "online.db")) as con:
        assert con.execute("PRAGMA journal_mode = DELETE").fetchone() == ("delete",)
    flights = {"flights": _flights(served, 1)}
    with serve_app(create_app(served.settings.model_copy(update={"data_dir": data}))) as url:
        assert httpx.post(f"{url}/predict", json=flights, timeout=30).status_code == 200
        lock = sqlite3.connect(data / "feast" / "online.db", isolation_level=None)
        try:
            lock.execute("BEGIN EXCLUSIVE")
            start = time.monotonic()
            down = httpx.post(f"{url}/predict", json=flights, timeout=30)
            elapsed = time.monotonic() - start
            assert down.status_code == 503
            assert "online store unavailable" in down.json()["detail"] and "locked" in down.json()["detail"]
            assert elapsed < 1.0
            ready = httpx.get(f"{url}/ready", timeout=30)
            assert ready.status_code == 503 and ready.json()["checks"]["online_store"] is False
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        assert httpx.post(f"{url}/predict", json=flights, timeout=30).status_code == 200
        assert httpx.get(f"{url}/ready", timeout=30).status_code == 200


def test_served_rows_carry_every_feature_of_the_reference_profile(served: Served) -> None:
    """The contract between training and serving: drift can compare every profiled feature."""
    from featureloop.monitoring.comparison import compare_window, log_window
    from featureloop.monitoring.thresholds import DriftConfig
    from featureloop.training.registry import get_alias, load_reference_profile

    httpx.post(f"{served.url}/predict", json={"flights": _flights(served, 30)}, timeout=30)
    served.flush_log()
    client, _ = connect(
        served.settings.tracking_uri, served.settings.artifact_location, served.settings.experiment
    )
    champion = get_alias(client, served.settings.model_name, CHAMPION)
    assert champion is not None
    reference = load_reference_profile(client, champion)
    window = log_window(served.settings.prediction_log_dir, served.end, served.end + pd.Timedelta(seconds=1))
    report = compare_window(reference, window, DriftConfig(min_rows=10))
    assert report["absent"] == []
    assert report["rows"] >= 30
    assert {f["name"] for f in report["features"]} == set(reference["features"])


def test_compiled_scorer_is_used_and_equals_scikit_learn_on_real_rows(served: Served) -> None:
    from featureloop.training.registry import get_alias
    from featureloop.training.training_set import load_training_set
    from serving.model import load_version

    client, _ = connect(
        served.settings.tracking_uri, served.settings.artifact_location, served.settings.experiment
    )
    champion = get_alias(client, served.settings.model_name, CHAMPION)
    assert champion is not None
    model = load_version(champion.name, champion.version, champion.tags)
    assert model.compiled is not None
    frame = load_training_set(
        served.feast_env.store, served.settings.offline_dir, TrainParams(**WINDOW)
    ).frame
    columns = {c: [None if pd.isna(v) else v for v in frame[c]] for c in model.numeric + model.categorical}
    expected = model.pipeline.predict_proba(model_input(frame, model.numeric, model.categorical))[:, 1]
    np.testing.assert_allclose(model.compiled.predict(columns), expected, rtol=0, atol=1e-12)


def test_a_failing_canary_hands_its_requests_to_the_champion_and_the_release_sees_its_errors(
    served: Served, challenger: str
) -> None:
    """A released challenger whose every scoring fails (its feature service is gone): the champion
    answers its canary share, each row records the failure, and the release's evidence counts it."""
    from featureloop.release.evidence import gather
    from featureloop.training.registry import CHALLENGER

    client, _ = connect(
        served.settings.tracking_uri, served.settings.artifact_location, served.settings.experiment
    )
    name = served.settings.model_name
    good = client.get_model_version(name, challenger)
    broken = client.create_model_version(
        name, good.source, run_id=good.run_id,
        tags={**good.tags, "feature_service": "gone_v9", "release.stage": "canary", "release.canary_share": "1.0"},
    )  # fmt: skip
    client.set_registered_model_alias(name, CHALLENGER, broken.version)
    try:
        flights = _flights(served, 6)
        with serve_app(create_app(served.settings)) as url, httpx.Client(timeout=30) as http:
            release = http.get(f"{url}/ready").json()["release"]
            answers = [http.post(f"{url}/predict", json={"flights": [f]}) for f in flights]
            text = http.get(f"{url}/metrics").text
    finally:
        client.set_registered_model_alias(name, CHALLENGER, challenger)
    assert release == {
        "challenger_version": str(broken.version),
        "stage": "canary",
        "canary_share": 1.0,
        "from_release": True,
    }
    assert [a.status_code for a in answers] == [200] * 6
    assert {a.json()["model_version"] for a in answers} == {served.first_version}
    assert 'featureloop_errors_total{endpoint="/predict",kind="canary"} 6.0' in text
    assert f'featureloop_release_stage{{challenger_version="{broken.version}",stage="canary"}} 1.0' in text
    ids = ", ".join(f"'{a.json()['request_id']}'" for a in answers)
    pattern = str(served.settings.prediction_log_dir / "**" / "*.parquet")
    rows = duckdb.sql(
        f"SELECT * FROM read_parquet('{pattern}', union_by_name = true) WHERE request_id IN ({ids})"
    ).df()
    assert len(rows) == 6 and set(rows["role"]) == {"champion"} and set(rows["release_stage"]) == {"canary"}
    assert rows["challenger_error"].str.contains("gone_v9").all()
    evidence = gather(
        served.settings.prediction_log_dir, "(SELECT NULL AS __id, NULL AS __label, NULL AS __known_at)",
        "flight_id", str(broken.version), "canary", served.end, served.end - timedelta(hours=1),
    )  # fmt: skip
    assert (evidence.challenger.rows, evidence.challenger.errors, evidence.champion.rows) == (6, 6, 0)
