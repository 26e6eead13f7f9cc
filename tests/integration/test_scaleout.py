"""Both profiles, for real, through the same code: materialise, train and register, serve, drift.

embedded: SQLite online store, Feast's file registry, MLflow on SQLite, the session's Prefect test
server (SQLite). scaleout (FEATURELOOP_PROFILE=scaleout, the one setting): a real Redis online store,
and on a real PostgreSQL Feast's SQL registry, MLflow's tracking store and a Prefect server. Each
profile gets a data folder of its own (sharing the prepared offline tables), so their prediction
logs, drift histories and stores cannot mix; the PostgreSQL databases are checked directly, so a
silent fall-back to SQLite would fail the test.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from featureloop.featurestore.materialization import materialize_window
from featureloop.featurestore.store import apply_repo, open_store
from featureloop.monitoring.skew import check_service
from featureloop.monitoring.thresholds import DecayConfig, DriftConfig
from featureloop.params import DriftParams, TrainParams
from featureloop.settings import Settings, redacted
from featureloop.training.pipeline import run_training
from serving.app import create_app
from tests.integration.conftest import (
    POSTGRES_PASSWORD,
    REDIS_PASSWORD,
    FeastEnv,
    free_port,
    mlflow_server,
    run_redis,
    serve_app,
)

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

PROFILES = ("embedded", "scaleout")
MLFLOW_PASSWORD = secrets.token_urlsafe(18)
PREFECT_AUTH = f"featureloop:{secrets.token_urlsafe(18)}"  # the scale-out Prefect server's basic auth  # a setting, as a deployment's would be: never in the repository
TRAIN = TrainParams(train_start=datetime(2013, 1, 1, tzinfo=UTC), train_end=datetime(2013, 1, 20, tzinfo=UTC))
WINDOW = (datetime(2013, 1, 21, tzinfo=UTC), datetime(2013, 1, 24, tzinfo=UTC))


@dataclass
class Profile:
    name: str
    settings: Settings
    env: dict[str, str]  # what the flows (which read Settings() themselves) see
    trained: dict[str, Any]
    prefect_api: str | None  # None: the session's Prefect test server
    server_artifacts: Path | None  # the MLflow server's own artifact folder (scaleout)


def _postgres_rows(settings: Settings, part: str, query: str) -> list[tuple[Any, ...]]:
    """Rows straight from one part's PostgreSQL database (not through the code under test)."""
    import psycopg

    url = settings.postgres_database(part, secret=True)  # type: ignore[arg-type]
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as con:
        return con.execute(query).fetchall()


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        yield


@contextlib.contextmanager
def _prefect_on_postgres(settings: Settings) -> Iterator[str]:
    """A real `prefect server start` whose database is the profile's PostgreSQL one."""
    from featureloop.operations.postgres import ensure_database
    from featureloop.operations.prefect_server import prefect_server

    assert settings.prefect_database_url is not None
    ensure_database(settings.postgres_database("prefect", secret=True))
    home = settings.data_dir / "prefect"
    with prefect_server(
        lambda _m: None, database_url=settings.prefect_database_url, home=home, auth=PREFECT_AUTH
    ) as server:
        server.wait_healthy(timeout=180)
        yield server.api


@pytest.fixture(scope="module")
def profiles(
    feast_env: FeastEnv,
    redis_server: str,
    postgres_server: str,
    prefect_server: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Profile]]:
    tmp = tmp_path_factory.mktemp("profiles")
    end = datetime.fromisoformat(feast_env.prepared.time_range["end"])
    envs = {
        "embedded": {"FEATURELOOP_PROFILE": "embedded"},
        "scaleout": {
            "FEATURELOOP_PROFILE": "scaleout",
            "FEATURELOOP_REDIS_URL": f"{redis_server},db=6",
            "FEATURELOOP_REDIS_PASSWORD": REDIS_PASSWORD,
            "FEATURELOOP_POSTGRES_URL": postgres_server,
            "FEATURELOOP_POSTGRES_PASSWORD": POSTGRES_PASSWORD,
            "FEATURELOOP_MLFLOW_URL": f"http://127.0.0.1:{free_port()}",
            "FEATURELOOP_MLFLOW_PASSWORD": MLFLOW_PASSWORD,
        },
    }
    with contextlib.ExitStack() as stack:
        found: dict[str, Profile] = {}
        for name in PROFILES:
            env = {
                **envs[name],
                "FEATURELOOP_DATA_DIR": str(feast_env.own_data_dir(tmp / name)),
                "FEATURELOOP_PREDICTION_LOG_FLUSH_SECONDS": "0.1",
            }
            with _environment(env):
                settings = Settings()
            if name == "scaleout":
                artifacts = stack.enter_context(mlflow_server(settings, tmp / "mlflow-server"))
            apply_repo(settings)
            materialize_window(open_store(settings), end)
            trained = run_training(settings, TRAIN, report=lambda _m: None)
            api = stack.enter_context(_prefect_on_postgres(settings)) if name == "scaleout" else None
            found[name] = Profile(
                name, settings, env, trained, api, artifacts if name == "scaleout" else None
            )
        yield found


@pytest.mark.parametrize("name", PROFILES)
def test_one_setting_selects_the_profiles_stores_and_materialise_fills_its_online_store(
    profiles: dict[str, Profile], name: str
) -> None:
    settings = profiles[name].settings
    store = open_store(settings)
    online, registry = store.config.online_store.type, type(store.registry).__name__
    assert (online, registry) == {"embedded": ("sqlite", "Registry"), "scaleout": ("redis", "SqlRegistry")}[
        name
    ]
    assert type(store._get_provider().batch_engine).__name__ == "FastComputeEngine"
    skew = check_service(store, "flight_delay_v1", sample=500)
    assert skew["mismatches"] == 0 and sum(v["checked"] for v in skew["views"]) > 50
    if name == "scaleout":  # Redis asks who is calling; the password is a secret setting
        import redis

        host, port = store.config.online_store.connection_string.split(",")[0].split(":")
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host=host, port=int(port)).ping()
        assert REDIS_PASSWORD not in repr(settings)
        assert REDIS_PASSWORD not in redacted(store.config.online_store.connection_string)
    if name == "scaleout":  # the definitions live in PostgreSQL, not in a file
        views = _postgres_rows(settings, "feast", "SELECT feature_view_name FROM feature_views")
        assert {"weather", "aircraft_stats", "route_stats"} <= {v for (v,) in views}
        assert not (settings.feast_dir / "registry.db").exists()


@pytest.mark.parametrize("name", PROFILES)
def test_training_registers_and_promotes_in_the_profiles_tracking_store(
    profiles: dict[str, Profile], name: str
) -> None:
    profile = profiles[name]
    trained = profile.trained
    assert trained["promoted"] and trained["version"]
    assert profile.settings.tracking_uri.startswith({"embedded": "sqlite:///", "scaleout": "http://"}[name])
    if name == "scaleout":  # through the tracking server, into its PostgreSQL database
        aliases = _postgres_rows(
            profile.settings, "mlflow", "SELECT name, alias, version FROM registered_model_aliases"
        )
        assert (profile.settings.model_name, "champion", int(trained["version"])) in aliases
        # The client's folder holds no MLflow store and no artifact: the server keeps them.
        assert not profile.settings.mlflow_dir.exists()
        assert profile.server_artifacts is not None and list(profile.server_artifacts.rglob("MLmodel"))


@pytest.fixture(scope="module")
def served(profiles: dict[str, Profile], feast_env: FeastEnv) -> dict[str, list[dict[str, Any]]]:
    """Each profile's serving app answers the same three days of flights (and logs them)."""
    rows = feast_env.requests(*WINDOW)
    answers: dict[str, list[dict[str, Any]]] = {}
    for name, profile in profiles.items():
        with serve_app(create_app(profile.settings)) as url:
            ready = httpx.get(f"{url}/ready", timeout=30).json()
            assert (
                ready["checks"]["online_store"] is True
                and ready["model_version"] == profile.trained["version"]
            )
            answers[name] = []
            for i in range(0, len(rows), 100):
                response = httpx.post(f"{url}/predict", json={"flights": rows[i : i + 100]}, timeout=30)
                assert response.status_code == 200, response.text
                answers[name] += response.json()["predictions"]
    return answers


def test_a_stopped_redis_is_a_quick_503_and_serving_recovers_when_it_is_back(
    profiles: dict[str, Profile], feast_env: FeastEnv, tmp_path: Path
) -> None:
    """On a Redis of its own (the session's keeps running) and a data folder of its own (its
    prediction log is not the profile's): stop Redis under the running app, start it again on the
    same port, load it again; serving is never restarted."""
    port = free_port()
    end = datetime.fromisoformat(feast_env.prepared.time_range["end"])
    settings = profiles["scaleout"].settings.model_copy(
        update={
            "redis_url": f"127.0.0.1:{port},db=0",
            "data_dir": feast_env.own_data_dir(tmp_path / "data"),
        }
    )
    body = {"flights": feast_env.requests(*WINDOW)[:50]}
    with contextlib.ExitStack() as stack:
        first = contextlib.ExitStack()
        first.enter_context(run_redis(port, REDIS_PASSWORD))
        stack.callback(first.close)
        materialize_window(open_store(settings), end)
        url = stack.enter_context(serve_app(create_app(settings)))
        before = httpx.post(f"{url}/predict", json=body, timeout=30)
        assert before.status_code == 200

        first.close()  # Redis goes away
        start = time.monotonic()
        down = httpx.post(f"{url}/predict", json=body, timeout=30)
        elapsed = time.monotonic() - start
        assert down.status_code == 503 and "online store unavailable" in down.json()["detail"]
        assert "ConnectionError" in down.json()["detail"] and str(port) in down.json()["detail"]
        assert REDIS_PASSWORD not in down.text
        assert elapsed < 1.0  # refused at once, not after a client's retries and timeouts
        assert httpx.get(f"{url}/ready", timeout=30).json()["checks"]["online_store"] is False

        stack.enter_context(
            run_redis(port, REDIS_PASSWORD)
        )  # back, empty (no persistence): answered, features missing
        empty = httpx.post(f"{url}/predict", json=body, timeout=30)
        assert empty.status_code == 200
        assert all(p["missing_features"] for p in empty.json()["predictions"])
        materialize_window(open_store(settings), end)  # loaded again: the same answers as before
        assert (
            httpx.post(f"{url}/predict", json=body, timeout=30).json()["predictions"]
            == before.json()["predictions"]
        )
        assert httpx.get(f"{url}/ready", timeout=30).status_code == 200


def test_serving_answers_the_same_from_either_profile(served: dict[str, list[dict[str, Any]]]) -> None:
    embedded, scaleout = served["embedded"], served["scaleout"]
    assert len(embedded) == len(scaleout) > 100
    # Same data, same deterministic fit: the same answers (probabilities, the features each lacked),
    # from SQLite + file registry + SQLite MLflow and from Redis + PostgreSQL.
    assert embedded == scaleout
    assert min(len(p["missing_features"]) for p in scaleout) < 10  # values came from Redis


@pytest.mark.parametrize("name", PROFILES)
def test_the_drift_flow_runs_on_the_profiles_prefect_server(
    profiles: dict[str, Profile], served: dict[str, list[dict[str, Any]]], name: str
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    from flows.drift import drift

    profile = profiles[name]
    # On the PostgreSQL-backed server the run raises the event (thresholds that flag any window, one
    # window suffices), and the event must arrive there; the session's server has other tests'
    # automations, so the embedded run sends none.
    sends = name == "scaleout"
    params = DriftParams(
        window_start=WINDOW[0], window_end=WINDOW[1],
        drift=DriftConfig(min_rows=100, min_psi=0.0, alpha=0.5, share_threshold=0.01) if sends else DriftConfig(min_rows=100),
        decay=DecayConfig(min_labels=50), skew_sample=50, emit_event=sends, persistence_k=1, persistence_n=1,
    )  # fmt: skip
    api: dict[Any, Any] = {}
    if profile.prefect_api:  # the scale-out server asks who is calling: only its health check is open
        assert httpx.post(f"{profile.prefect_api}/flows/filter", json={}, timeout=10).status_code == 401
        assert httpx.get(f"{profile.prefect_api}/health", timeout=10).status_code == 200
        user, password = PREFECT_AUTH.split(":", 1)
        assert httpx.post(
            f"{profile.prefect_api}/flows/filter", json={}, auth=(user, password), timeout=10
        ).is_success
        api = {PREFECT_API_URL: profile.prefect_api, PREFECT_API_AUTH_STRING: PREFECT_AUTH}
    with _environment(profile.env), temporary_settings(updates=api):
        result = drift(params)
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["drift"])),
                sort=FlowRunSort.START_TIME_DESC,
                limit=1,
            )
    assert runs and runs[0].state is not None and runs[0].state.is_completed()
    assert runs[0].parameters["params"]["window_start"].startswith("2013-01-21")
    assert result["rows"] == len(served[name]) and result["model_version"] == profile.trained["version"]
    assert result["labelled"] > 0.9 * result["rows"] and result["skew_mismatches"] == 0
    assert Path(result["report"]).is_relative_to(profile.settings.drift_dir)
    if name == "scaleout":  # the run is a row of the PostgreSQL database the server was given
        stored = _postgres_rows(
            profile.settings,
            "prefect",
            "SELECT r.id::text, f.name, r.state_type::text FROM flow_run r JOIN flow f ON f.id = r.flow_id",
        )
        assert (str(runs[0].id), "drift", "COMPLETED") in stored
        mlflow_runs = _postgres_rows(profile.settings, "mlflow", "SELECT count(*) FROM runs")
        assert mlflow_runs[0][0] >= 2  # the training run and the drift run's
        # The event reached this server (its events table), about the model, related to the run.
        assert result["event"] and result["event_id"]
        query = f"SELECT id::text, resource_id, related_resource_ids::text FROM events WHERE id = '{result['event_id']}'"
        deadline = time.monotonic() + 30  # the server persists received events in batches
        while not (events := _postgres_rows(profile.settings, "prefect", query)):
            assert time.monotonic() < deadline, "the drift event never reached the PostgreSQL-backed server"
            time.sleep(0.5)
        ((_id, resource, related),) = events
        assert resource == f"featureloop.model.{profile.settings.model_name}"
        assert f"prefect.flow-run.{runs[0].id}" in related


def test_an_unreachable_postgres_is_a_clear_error_naming_the_server(profiles: dict[str, Profile]) -> None:
    from featureloop.featurestore.store import repo_config
    from featureloop.operations.postgres import PostgresUnavailable

    down = profiles["scaleout"].settings.model_copy(
        update={"postgres_url": "postgresql://featureloop@127.0.0.1:1"}
    )
    with pytest.raises(
        PostgresUnavailable, match=r"featureloop@127\.0\.0\.1:1 is unreachable.*FEATURELOOP_POSTGRES_URL"
    ):
        repo_config(down)
    started = datetime.now(UTC)
    no_server = profiles["scaleout"].settings.model_copy(update={"mlflow_url": "http://127.0.0.1:1"})
    with pytest.raises(RuntimeError, match=r"MLflow tracking store http://127\.0\.0\.1:1 is unreachable"):
        run_training(no_server, TRAIN, report=lambda _m: None)
    assert datetime.now(UTC) - started < timedelta(seconds=30)


def test_postgresql_asks_for_the_password_and_no_url_a_process_is_given_shows_it(
    profiles: dict[str, Profile],
) -> None:
    """The session's server uses password authentication: without FEATURELOOP_POSTGRES_PASSWORD, or
    with a wrong one, the error names the setting and never the password; the loop above ran with it.
    The URLs written on the MLflow server's command line and into its basic-auth file hold none (it
    reads PGPASSWORD from its environment)."""
    from featureloop.featurestore.store import repo_config
    from featureloop.operations.postgres import PostgresUnavailable, ensure_database
    from featureloop.operations.services import mlflow_auth_config, mlflow_service

    settings = profiles["scaleout"].settings
    assert settings.postgres_password is not None
    for password in (None, "not-" + POSTGRES_PASSWORD):
        anonymous = settings.model_copy(
            update={"postgres_password": None if password is None else SecretStr(password)}
        )
        with pytest.raises(PostgresUnavailable, match=r"password.*FEATURELOOP_POSTGRES_PASSWORD") as refused:
            repo_config(anonymous)
        assert POSTGRES_PASSWORD not in str(refused.value)
    ensure_database(settings.postgres_database("feast", secret=True))  # (with it: in)
    service = mlflow_service(settings, 0, settings.data_dir, {})
    ini = mlflow_auth_config(settings, settings.data_dir / "auth-check").read_text()
    assert settings.postgres_database("mlflow") in service.command and "database_uri = postgresql" in ini
    assert not any(POSTGRES_PASSWORD in part for part in [*service.command, ini])
    assert service.env["PGPASSWORD"] == POSTGRES_PASSWORD


def test_the_tracking_server_asks_who_is_calling_and_serving_swaps_through_it(
    profiles: dict[str, Profile],
) -> None:
    """Anyone without the credentials is refused, by the server and with a clear error from our
    client (the password never shown); with them, a new champion registered through the server
    reaches a serving app that has only HTTP to it, without a restart."""
    from featureloop.training.registry import TrackingUnavailable, get_version, open_tracking, promote

    profile = profiles["scaleout"]
    settings = profile.settings
    search = f"{settings.tracking_uri}/api/2.0/mlflow/experiments/search?max_results=1"
    assert httpx.get(search, timeout=10).status_code == 401
    assert httpx.get(search, auth=("admin", "not-the-password"), timeout=10).status_code == 401
    assert httpx.get(search, auth=("admin", MLFLOW_PASSWORD), timeout=10).status_code == 200
    wrong = settings.model_copy(update={"mlflow_password": SecretStr("wrong-password-here")})
    with pytest.raises(TrackingUnavailable, match="FEATURELOOP_MLFLOW_PASSWORD") as refused:
        open_tracking(wrong)
    assert "wrong-password-here" not in str(refused.value) and MLFLOW_PASSWORD not in str(refused.value)

    later = TrainParams(
        train_start=datetime(2013, 1, 4, tzinfo=UTC), train_end=datetime(2013, 1, 21, tzinfo=UTC)
    )
    with serve_app(create_app(settings.model_copy(update={"model_reload_seconds": 0.2}))) as url:
        before = httpx.get(f"{url}/ready", timeout=30).json()["model_version"]
        second = run_training(settings, later, report=lambda _m: None)  # (client: the right password)
        client, _ = open_tracking(settings)
        if not second["promoted"]:  # the gate's call; the swap is what this test is about
            promote(client, get_version(client, settings.model_name, second["version"]))
        deadline = time.monotonic() + 30
        while (now := httpx.get(f"{url}/ready", timeout=30).json()["model_version"]) != second["version"]:
            assert time.monotonic() < deadline, f"serving still answers with v{now}"
            time.sleep(0.2)
    assert before == profile.trained["version"] != second["version"]
    assert not settings.mlflow_dir.exists()
