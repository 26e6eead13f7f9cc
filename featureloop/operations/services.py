"""What the local stack runs: each service's command, environment, URL and health URL, and the
Prometheus configuration that scrapes the serving app.

The services: the Prefect server (SQLite under the run folder's `prefect/`, or PostgreSQL in the
scale-out profile), the deployment server (`python -m flows.deploy`; or the deployments into a work
pool and its workers: `workers.py`), the MLflow UI on the tracking store (the scale-out profile's
tracking server), the serving app (or its replicas behind HAProxy: `replicas.py`), and Prometheus
(Debian's package) with the alert rules in
`docs/prometheus/` (its URL is the alerts API: Debian's build has no /alerts page; docs/monitoring.md
says where to look instead). featureloop.operations.stack starts and stops them.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

from featureloop.operations.base import Service, ports
from featureloop.operations.replicas import serving_services
from featureloop.operations.workers import POOL, deploy_command, pool_env, worker_services
from featureloop.settings import PROJECT_ROOT, Settings

ALERT_RULES = PROJECT_ROOT / "docs" / "prometheus" / "alerts.yml"


def prometheus_config(
    serving_port: int | list[int], rules: Path = ALERT_RULES, interval: str = "15s", token: str | None = None
) -> str:
    """Scrape the serving app (its own metrics and the drift flow's gauges; each replica when there
    are several) and load the alert rules; with a serving token, the scrape sends it (serving's
    /metrics requires it then)."""
    targets = ", ".join(
        f"'127.0.0.1:{p}'" for p in ([serving_port] if isinstance(serving_port, int) else serving_port)
    )
    auth = (
        f"    authorization:\n      type: Bearer\n      credentials: {json.dumps(token)}\n" if token else ""
    )
    return (
        f"global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\n"
        f"rule_files:\n  - {rules}\n"
        "scrape_configs:\n"
        "  - job_name: featureloop-serving\n"
        f"{auth}"
        f"    static_configs:\n      - targets: [{targets}]\n"
    )


def prefect_service(
    port: int, env: dict[str, str], home: Path, database_url: str | None = None, auth: str | None = None
) -> Service:
    """The Prefect server on `port`: on SQLite under its `home`, or on `database_url` (PostgreSQL, the
    scale-out profile); with `auth` ("user:password"), every call but its health check needs it
    (`client_env` gives the clients' environment)."""
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **env,
        "PREFECT_API_URL": api,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    if database_url is not None:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url
    if auth is not None:
        env |= {"PREFECT_SERVER_API_AUTH_STRING": auth, "PREFECT_API_AUTH_STRING": auth}
    command = [
        str(Path(sys.executable).parent / "prefect"),
        "server",
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    return Service("prefect", f"http://127.0.0.1:{port}", f"{api}/health", command, env)


def client_env(server: Service) -> dict[str, str]:
    """The environment of what talks to the Prefect server: its URL and, with auth, the credentials
    the client sends; not the server's own settings."""
    return {k: v for k, v in server.env.items() if not k.startswith("PREFECT_SERVER_")}


def mlflow_auth_config(settings: Settings, home: Path) -> Path:
    """The basic-auth app's configuration (its users in PostgreSQL; anyone else is refused), written
    under `home`; the admin's password is not in it (the server reads it from its environment)."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "basic_auth.ini"
    path.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {settings.postgres_database('mlflow_auth')}\n"
        f"admin_username = {settings.mlflow_username}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "grant_default_workspace_access = false\n"
        # A checked password is remembered for 60 s: without it every call (a model's download is
        # one per file) hashes it again (PBKDF2), seconds of CPU per swap on a loaded machine.
        "auth_cache_ttl_seconds = 60\n"
    )
    return path


def prepare_mlflow_server(settings: Settings, home: Path) -> None:
    """What the scale-out profile's tracking server needs before it starts: a password, its two
    PostgreSQL databases (runs and models; users), the basic-auth configuration."""
    from featureloop.operations.postgres import ensure_database

    if settings.mlflow_password is None:
        raise ValueError(
            "the scale-out profile's MLflow server asks every caller who it is: set "
            "FEATURELOOP_MLFLOW_PASSWORD (at least 12 characters; FEATURELOOP_MLFLOW_USERNAME, default "
            "admin) in the environment or the project's .env, never in the repository"
        )
    ensure_database(settings.postgres_database("mlflow", secret=True))
    ensure_database(settings.postgres_database("mlflow_auth", secret=True))
    mlflow_auth_config(settings, home)


def mlflow_service(settings: Settings, port: int, home: Path, env: dict[str, str]) -> Service:
    """The MLflow tracking server on `port`. Embedded: the UI on the SQLite store, artifacts in the
    data folder's. Scale-out (on mlflow_url's port): the store on PostgreSQL, artifacts proxied (kept
    in `mlflow_artifacts_dir`, which only the server touches: clients send and fetch them over HTTP),
    and MLflow's basic-auth app: every call but /health needs mlflow_username/mlflow_password (the
    caller checks the password is set, writes `mlflow_auth_config` to `home` and creates the
    databases first: `prepare_mlflow_server`)."""
    command = [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri"]
    command.append(settings.mlflow_backend_uri)
    if settings.profile == "scaleout":
        port = urlsplit(settings.mlflow_url).port or 80
        command += ["--artifacts-destination", str(settings.mlflow_artifacts_dir), "--serve-artifacts"]
        command += ["--app-name", "basic-auth"]
        # Its store URLs (command line, basic_auth.ini) hold no password: libpq reads PGPASSWORD.
        env = {**env, "MLFLOW_AUTH_CONFIG_PATH": str(home / "basic_auth.ini"), **settings.postgres_env}
        if settings.mlflow_password is not None:  # (`up` refuses to start the server without it)
            secret = settings.mlflow_password.get_secret_value()
            env["MLFLOW_AUTH_ADMIN_PASSWORD"] = secret
            # The UI's CSRF key: the same on every replica of the server, never the password itself.
            env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = hashlib.sha256(
                f"featureloop-csrf:{secret}".encode()
            ).hexdigest()
    else:
        command += ["--default-artifact-root", settings.mlflow_artifacts_dir.as_uri()]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    return Service("mlflow", f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/health", command, env)


def services(settings: Settings, run_dir: Path) -> list[Service]:
    """The stack's services in start order, with their state (Prefect's home, Prometheus's config and
    data) under `run_dir`."""
    port = ports()
    prefect = prefect_service(
        port["prefect"],
        {**os.environ, "FEATURELOOP_DATA_DIR": str(settings.data_dir)},
        run_dir / "prefect",
        settings.prefect_database_url,
        settings.prefect_auth.get_secret_value() if settings.prefect_auth else None,
    )
    prefect_api = prefect.env["PREFECT_API_URL"]
    base = client_env(prefect)
    prometheus_dir = run_dir / "prometheus"
    if settings.prefect_workers:  # the flows in a work pool, run by workers
        flows = [
            Service(
                "deployments",
                f"http://127.0.0.1:{port['prefect']}/work-pools/work-pool/{POOL}",
                "",  # a step: `make up` checks its exit status
                deploy_command(),
                pool_env(base),
                oneshot=True,
            ),
            *worker_services(
                settings.prefect_workers,
                base,
                f"http://127.0.0.1:{port['prefect']}/work-pools/work-pool/{POOL}",
            ),
        ]
    else:  # one process serves every flow
        flows = [
            Service(
                "deployments",
                f"http://127.0.0.1:{port['prefect']}/deployments",
                f"{prefect_api}/health",
                [sys.executable, "-m", "flows.deploy"],
                base,
            )
        ]
    return [
        prefect,
        *flows,
        mlflow_service(settings, port["mlflow"], run_dir / "mlflow", base),
        *serving_services(settings, run_dir, base),
        # The alerts API, which every build answers (Debian's has no /alerts page).
        Service(
            "prometheus", f"http://127.0.0.1:{port['prometheus']}/api/v1/alerts",
            f"http://127.0.0.1:{port['prometheus']}/-/ready",
            ["prometheus", f"--config.file={prometheus_dir / 'prometheus.yml'}",
             f"--storage.tsdb.path={prometheus_dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{port['prometheus']}"],
            base,
        ),
        # The dashboard: the Grafana panels and the loop's history, offline (docs/monitoring.md).
        Service(
            "dashboard", f"http://127.0.0.1:{port['dashboard']}/",
            f"http://127.0.0.1:{port['dashboard']}/health",
            [sys.executable, "-m", "uvicorn", "dashboard.app:create_app", "--factory",
             "--host", "127.0.0.1", "--port", str(port["dashboard"]), "--log-level", "warning"],
            {**base, "FEATURELOOP_DATA_DIR": str(settings.data_dir)},
        ),
    ]  # fmt: skip
