"""What `make up` starts for serving: one process, or replicas behind HAProxy (pure: no process)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from featureloop.operations.replicas import haproxy_config, serving_services
from featureloop.operations.services import prometheus_config
from featureloop.settings import Settings


def test_one_replica_is_one_process_on_the_serving_port(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FEATURELOOP_SERVING_PORT", "8100")
    (only,) = serving_services(Settings(data_dir=tmp_path), tmp_path, {})
    assert only.name == "serving" and only.url == "http://127.0.0.1:8100" and "8100" in only.command


def test_replicas_get_the_ports_above_and_the_balancer_the_serving_port(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FEATURELOOP_SERVING_PORT", "8100")
    found = serving_services(Settings(data_dir=tmp_path, serving_replicas=3), tmp_path, {"K": "v"})
    assert [(s.name, s.url) for s in found] == [
        ("serving-1", "http://127.0.0.1:8101"),
        ("serving-2", "http://127.0.0.1:8102"),
        ("serving-3", "http://127.0.0.1:8103"),
        ("balancer", "http://127.0.0.1:8100"),
    ]
    assert found[-1].command == ["haproxy", "-db", "-f", str(tmp_path / "haproxy.cfg")]
    assert all(s.env == {"K": "v"} for s in found)  # one data folder: the drift run reads every replica's log
    config = haproxy_config(8100, [8101, 8102, 8103])
    assert "bind 127.0.0.1:8100" in config and config.count(" check\n") == 3
    assert "option httpchk GET /health" in config and "retry-on conn-failure empty-response" in config
    targets = yaml.safe_load(prometheus_config([8101, 8102]))["scrape_configs"][0]["static_configs"][0]
    assert targets["targets"] == ["127.0.0.1:8101", "127.0.0.1:8102"]
    with pytest.raises(ValueError, match="serving_replicas"):
        Settings(serving_replicas=0)


def test_workers_replace_the_deployment_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from featureloop.operations.services import services

    monkeypatch.setenv("FEATURELOOP_WORKERS_PORT", "8300")
    served = [s.name for s in services(Settings(data_dir=tmp_path), tmp_path)]
    assert served[:2] == ["prefect", "deployments"] and "worker-1" not in served
    found = {s.name: s for s in services(Settings(data_dir=tmp_path, prefect_workers=2), tmp_path)}
    assert list(found)[:4] == ["prefect", "deployments", "worker-1", "worker-2"]
    deploy = found["deployments"]
    assert deploy.oneshot and deploy.command[-3:] == ["flows.deploy", "--work-pool", "featureloop"]
    assert deploy.health == "" and deploy.url.endswith("/work-pools/work-pool/featureloop")
    for i, name in enumerate(("worker-1", "worker-2")):
        worker = found[name]
        assert worker.command[-9:] == [
            "--pool", "featureloop", "--type", "process", "--name", name, "--limit", "1", "--with-healthcheck",
        ]  # fmt: skip
        assert worker.env["PREFECT_WORKER_WEBSERVER_PORT"] == str(8300 + i)
        assert worker.health == f"http://127.0.0.1:{8300 + i}/health" and not worker.oneshot
    # The workers' runs send heartbeats as often as the deployment step sized the crash automation for.
    assert {
        found[n].env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] for n in ("deployments", "worker-1", "worker-2")
    } == {"30"}


def test_the_recovery_automations_touch_only_the_pools_deployments() -> None:
    """Crashed after `unresponsive_after` without a heartbeat; rerun only after a first attempt."""
    from datetime import timedelta
    from uuid import uuid4

    from flows.recovery import CRASH, RERUN, heartbeat_seconds, install_recovery, recovery_automations

    ids = [uuid4(), uuid4()]
    crash, rerun = recovery_automations(ids, timedelta(seconds=90))
    for automation in (crash, rerun):
        related = automation.trigger.match_related
        assert related.get("prefect.resource.role") == ["deployment"]
        assert sorted(related.get("prefect.resource.id")) == sorted(f"prefect.deployment.{i}" for i in ids)
    assert crash.name == CRASH and crash.trigger.posture == "Proactive"
    assert crash.trigger.after == {"prefect.flow-run.heartbeat"} and crash.trigger.within == timedelta(
        seconds=90
    )
    assert {"prefect.flow-run.heartbeat", "prefect.flow-run.Completed"} <= crash.trigger.expect
    assert crash.actions[0].state.value == "CRASHED"
    assert rerun.name == RERUN and rerun.trigger.expect == {"prefect.flow-run.Crashed"}
    assert rerun.trigger.match.get("prefect.run-count") == ["1"]  # a second crash stays crashed
    assert (rerun.actions[0].state.value, rerun.actions[0].name) == ("SCHEDULED", "AwaitingRetry")
    assert heartbeat_seconds() >= 30
    with pytest.raises(ValueError, match="PREFECT_FLOWS_HEARTBEAT_FREQUENCY"):
        install_recovery(ids, timedelta(0))


def test_the_prefect_servers_password_reaches_its_clients_not_its_command_line(tmp_path: Path) -> None:
    from featureloop.operations.services import client_env, prefect_service, services

    server = prefect_service(4300, {}, tmp_path, auth="featureloop:pw-from-settings")
    assert server.env["PREFECT_SERVER_API_AUTH_STRING"] == "featureloop:pw-from-settings"
    assert "pw-from-settings" not in " ".join(server.command)
    client = client_env(server)
    assert client["PREFECT_API_AUTH_STRING"] == "featureloop:pw-from-settings"
    assert not any(k.startswith("PREFECT_SERVER_") for k in client)  # the server's own settings stay its own
    found = {s.name: s for s in services(Settings(data_dir=tmp_path, prefect_auth="u:p-secret"), tmp_path)}
    assert found["prefect"].env["PREFECT_SERVER_API_AUTH_STRING"] == "u:p-secret"
    assert found["deployments"].env["PREFECT_API_AUTH_STRING"] == "u:p-secret"
    assert "PREFECT_SERVER_API_AUTH_STRING" not in found["mlflow"].env
    assert "p-secret" not in repr(Settings(prefect_auth="u:p-secret"))


def test_make_up_starts_the_scaleout_stores_only_on_this_machine(tmp_path: Path) -> None:
    """Redis and PostgreSQL are `make up`'s to start when their settings name this machine; a server
    elsewhere is the team's. Redis's password is in a file only its user reads, on no command line."""
    from featureloop.operations.stores import prepare_store, store_services

    assert store_services(Settings(data_dir=tmp_path), tmp_path, {}) == []  # (the embedded profile)
    local = Settings(
        data_dir=tmp_path, profile="scaleout", redis_url="127.0.0.1:6390,db=2", redis_password="redis-secret-1",
        postgres_url="postgresql://featureloop@localhost:5440", postgres_password="pg-secret-1",
    )  # fmt: skip
    redis, postgres = store_services(local, tmp_path, {})
    assert (redis.name, redis.health) == ("redis", "tcp://127.0.0.1:6390")
    assert (postgres.name, postgres.health) == ("postgres", "tcp://localhost:5440")
    assert postgres.command[postgres.command.index("-p") + 1] == "5440"
    assert not any("secret" in part for part in [*redis.command, *postgres.command])
    prepare_store(local, redis, tmp_path)
    config = tmp_path / "redis" / "redis.conf"
    assert "requirepass redis-secret-1" in config.read_text() and "port 6390" in config.read_text()
    assert config.stat().st_mode & 0o077 == 0
    with pytest.raises(ValueError, match="FEATURELOOP_REDIS_PASSWORD"):
        prepare_store(local.model_copy(update={"redis_password": None}), redis, tmp_path)
    remote = local.model_copy(
        update={
            "redis_url": "redis.internal:6379",
            "postgres_url": "postgresql://featureloop@pg.internal:5432",
        }
    )
    assert store_services(remote, tmp_path, {}) == []
