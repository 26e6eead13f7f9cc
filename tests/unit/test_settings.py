"""Settings refuse what would silently weaken serving."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr, ValidationError

from featureloop.operations.services import prometheus_config
from featureloop.settings import Settings


def test_an_empty_serving_token_is_refused_not_treated_as_no_auth() -> None:
    with pytest.raises(ValidationError, match="FEATURELOOP_SERVING_TOKEN is set but empty"):
        Settings(serving_token=SecretStr("  "))


def test_production_needs_a_token() -> None:
    with pytest.raises(ValidationError, match="must be set when FEATURELOOP_ENVIRONMENT=production"):
        Settings(environment="production")
    assert Settings(environment="production", serving_token=SecretStr("s3cret")).serving_token


def test_prometheus_sends_the_serving_token_when_there_is_one() -> None:
    job = yaml.safe_load(prometheus_config(8000, token='to"ken'))["scrape_configs"][0]
    assert job["authorization"] == {"type": "Bearer", "credentials": 'to"ken'}
    assert job["static_configs"] == [{"targets": ["127.0.0.1:8000"]}]
    assert "authorization" not in yaml.safe_load(prometheus_config(8000))["scrape_configs"][0]


def test_window_times_are_kept_in_utc_whatever_offset_they_came_with() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    from featureloop.params import DriftParams

    paris = timezone(timedelta(hours=2))
    params = DriftParams(window_end=datetime(2013, 6, 1, 2, tzinfo=paris), window_start=datetime(2013, 5, 25))
    assert params.window_end == datetime(
        2013, 6, 1, tzinfo=UTC
    ) and params.window_end.utcoffset() == timedelta(0)
    assert params.window_end.isoformat() == "2013-06-01T00:00:00+00:00"
    assert params.window_start is not None and params.window_start.tzinfo == UTC


def test_a_pid_record_of_another_program_is_stale_and_never_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from featureloop.operations import stack

    monkeypatch.setattr(stack, "RUN_DIR", tmp_path)
    (tmp_path / "serving.pid").write_text(
        f"{os.getpid()}\n/usr/bin/uvicorn\0serving.app:create_app\0--factory"
    )
    assert stack.running_pid("serving") is None  # this pid runs pytest, not the serving app
    assert not (tmp_path / "serving.pid").exists()
    assert stack.down(report=lambda _m: None) == []


def test_the_scaleout_profile_derives_every_postgres_database_from_one_server_url() -> None:
    settings = Settings(
        profile="scaleout", postgres_url="postgresql://ml@db.internal:6543/", postgres_password="p@ss/w:rd%"
    )
    # What connects in-process or hands the URL to a server's secret setting: the password, escaped.
    assert (
        settings.feast_registry_url
        == "postgresql+psycopg://ml:p%40ss%2Fw%3Ard%25@db.internal:6543/featureloop_feast"
    )
    assert (
        settings.prefect_database_url
        == "postgresql+asyncpg://ml:p%40ss%2Fw%3Ard%25@db.internal:6543/featureloop_prefect"
    )
    # MLflow's store is the tracking server's (on its command line: no password, PGPASSWORD instead);
    # clients talk to the server over HTTP only.
    assert settings.mlflow_backend_uri == "postgresql+psycopg://ml@db.internal:6543/featureloop_mlflow"
    assert settings.postgres_env == {"PGPASSWORD": "p@ss/w:rd%"} and "p@ss" not in repr(settings)
    assert settings.tracking_uri == "http://127.0.0.1:5000" and settings.artifact_location is None
    trusted = Settings(profile="scaleout", postgres_url="postgresql://ml@db.internal:6543")
    assert trusted.feast_registry_url == "postgresql+psycopg://ml@db.internal:6543/featureloop_feast"
    assert trusted.postgres_env == {}
    embedded = Settings(postgres_url="postgresql://ml@db.internal:6543")
    assert embedded.feast_registry_url is None and embedded.prefect_database_url is None
    assert (
        embedded.tracking_uri.startswith("sqlite:///")
        and embedded.tracking_uri == embedded.mlflow_backend_uri
    )
    assert embedded.artifact_location == embedded.mlflow_artifacts_dir.as_uri()
    explicit = Settings(profile="scaleout", mlflow_tracking_uri="http://mlflow:5000")
    assert explicit.tracking_uri == "http://mlflow:5000"


def test_the_scaleout_tracking_server_proxies_artifacts_and_asks_for_a_password(tmp_path: Path) -> None:
    from featureloop.operations.services import mlflow_auth_config, mlflow_service, prepare_mlflow_server

    settings = Settings(profile="scaleout", mlflow_url="http://127.0.0.1:5055", data_dir=tmp_path / "data")
    with pytest.raises(ValueError, match="set FEATURELOOP_MLFLOW_PASSWORD"):
        prepare_mlflow_server(settings, tmp_path)  # refused before any database is touched
    secret = settings.model_copy(update={"mlflow_password": SecretStr("a-long-enough-secret")})
    service = mlflow_service(secret, 5000, tmp_path, {})
    command = " ".join(service.command)
    assert "--port 5055" in command and "--serve-artifacts --app-name basic-auth" in command
    assert f"--artifacts-destination {secret.mlflow_artifacts_dir}" in command
    assert "featureloop_mlflow" in command and "a-long-enough-secret" not in command
    assert service.env["MLFLOW_AUTH_ADMIN_PASSWORD"] == "a-long-enough-secret"
    assert "a-long-enough-secret" not in service.env["MLFLOW_FLASK_SERVER_SECRET_KEY"]
    ini = mlflow_auth_config(secret, tmp_path).read_text()
    assert "featureloop_mlflow_auth" in ini and "admin_username = admin" in ini and "secret" not in ini
    embedded = mlflow_service(Settings(data_dir=tmp_path / "data"), 5000, tmp_path, {})
    assert "--app-name" not in embedded.command and "--port" in embedded.command
    with pytest.raises(ValueError, match="mlflow_url"):
        Settings(mlflow_url="mlflow.internal:5000")  # a URL, with its scheme


@pytest.mark.parametrize(
    "url",
    ["postgresql://ml@db:5432/mydb", "postgresql+psycopg://ml@db:5432", "mysql://ml@db:3306", "db:5432"],
)
def test_a_postgres_url_with_a_database_driver_or_other_scheme_is_refused(url: str) -> None:
    with pytest.raises(ValidationError, match="must name a server"):
        Settings(postgres_url=url)


def test_a_password_in_the_postgres_url_is_refused_without_repeating_it() -> None:
    with pytest.raises(ValidationError, match="FEATURELOOP_POSTGRES_PASSWORD") as refused:
        Settings(postgres_url="postgresql://ml:hunter2-secret@db:5432")
    assert "hunter2-secret" not in str(refused.value)


def test_passwords_in_urls_are_redacted_for_messages() -> None:
    from featureloop.settings import redacted

    assert redacted("postgresql+psycopg://app:s3cr%40t@db:5432/x") == "postgresql+psycopg://app:***@db:5432/x"
    assert redacted("http://user:pw@mlflow:5000") == "http://user:***@mlflow:5000"
    assert redacted("postgresql://featureloop@127.0.0.1:5432") == "postgresql://featureloop@127.0.0.1:5432"
    assert redacted("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"
    assert (
        redacted("redis.internal:6379,db=6,password=s3cret,ssl=true")
        == "redis.internal:6379,db=6,password=***,ssl=true"
    )
