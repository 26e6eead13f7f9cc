"""The servers a profile talks to (Redis, PostgreSQL, the MLflow and Prefect servers, serving's
replicas) and the credentials each asks for: the part of Settings that decides where things run."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import quote

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings


class ServerSettings(BaseSettings):
    """Settings' server fields (Settings adds the environment prefix and .env)."""

    profile: Literal["embedded", "scaleout"] = Field(
        default="embedded",
        description="embedded: SQLite online store, file registry, MLflow and Prefect on SQLite; "
        "scaleout: Redis online store at redis_url, Feast's SQL registry and the Prefect server on "
        "the PostgreSQL server at postgres_url, MLflow through its tracking server at mlflow_url.",
    )
    redis_url: str = Field(
        default="127.0.0.1:6379",
        description="Redis for the scale-out profile (Feast's host:port[,db=N] form).",
    )
    redis_password: SecretStr | None = Field(
        default=None, description="The scale-out Redis's password (its `requirepass`); unset: none."
    )
    postgres_url: str = Field(
        default="postgresql://featureloop@127.0.0.1:5432",
        description="PostgreSQL server of the scale-out profile (postgresql://user@host:port, no database "
        "and no password): the Feast registry, MLflow and Prefect each get a database of their own, "
        "created on first use.",
    )
    postgres_password: SecretStr | None = Field(
        default=None,
        description="The PostgreSQL user's password (password authentication); unset: none is sent "
        "(a server that trusts the caller, or libpq's own PGPASSWORD / ~/.pgpass).",
    )
    postgres_database_prefix: str = Field(
        default="featureloop",
        pattern=r"^[a-z_][a-z0-9_]{0,40}$",
        description="Their names: <prefix>_feast, <prefix>_mlflow (+ _mlflow_auth), <prefix>_prefect.",
    )
    mlflow_url: str = Field(
        default="http://127.0.0.1:5000",
        pattern=r"^https?://[^/@\s]+(:\d+)?/?$",
        description="The scale-out profile's MLflow tracking server: clients talk HTTP only (its backend "
        "is PostgreSQL, its artifacts are proxied), with mlflow_username and mlflow_password.",
    )
    mlflow_username: str = Field(default="admin", description="The MLflow server's basic-auth user.")
    mlflow_password: SecretStr | None = Field(
        default=None,
        description="Its password (at least 12 characters); the scale-out profile's server requires it.",
    )
    prefect_auth: SecretStr | None = Field(
        default=None,
        description="user:password the Prefect server `make up` starts asks every caller for (Prefect's "
        "basic auth); what `make up` starts sends it. Other clients set PREFECT_API_AUTH_STRING.",
    )
    prefect_workers: int = Field(
        default=0,
        ge=0,
        le=16,
        description="0: `make up` serves the flows from one deployment server process; N: it deploys "
        "them into the `featureloop` process work pool and starts N Prefect workers that run them.",
    )
    serving_replicas: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Serving processes `make up` starts. More than one: each on a port of its own above "
        "the serving port, behind HAProxy on it (health checks, retries on another replica).",
    )

    @field_validator("postgres_url")
    @classmethod
    def _server_not_database(cls, value: str) -> str:
        scheme, sep, rest = value.rstrip("/").partition("://")
        if not sep or scheme not in ("postgresql", "postgres") or not rest or "/" in rest:
            raise ValueError(
                "FEATURELOOP_POSTGRES_URL must name a server, postgresql://user@host:port, "
                "without a database or driver (each part gets a database of its own)"
            )
        if ":" in rest.rpartition("@")[0]:  # (the message must not repeat the value: it is a secret)
            raise ValueError(
                "FEATURELOOP_POSTGRES_URL holds a password: give it as FEATURELOOP_POSTGRES_PASSWORD "
                "(a secret setting, never printed) and the URL as postgresql://user@host:port"
            )
        return f"postgresql://{rest}"

    def postgres_database(
        self,
        part: Literal["feast", "mlflow", "mlflow_auth", "prefect"],
        driver: str = "psycopg",
        *,
        secret: bool = False,
    ) -> str:
        """The SQLAlchemy URL of one part's database on the scale-out profile's PostgreSQL server;
        with `secret`, holding the password, to connect with (never to print, to write to a file or
        on a command line: a process given the URL without it gets `postgres_env`)."""
        rest = self.postgres_url.partition("://")[2]
        if secret and self.postgres_password is not None:
            user, _, host = rest.rpartition("@")
            password = quote(self.postgres_password.get_secret_value(), safe="")
            rest = f"{user}:{password}@{host}"
        return f"postgresql+{driver}://{rest}/{self.postgres_database_prefix}_{part}"

    @property
    def postgres_env(self) -> dict[str, str]:
        """What a process started with a password-free `postgres_database` URL needs to log in:
        libpq's (and asyncpg's) PGPASSWORD."""
        if self.postgres_password is None:
            return {}
        return {"PGPASSWORD": self.postgres_password.get_secret_value()}

    @property
    def feast_registry_url(self) -> str | None:
        """Feast's SQL registry on the scale-out profile (with the password: Feast connects in this
        process); None: the file registry in feast_dir."""
        return self.postgres_database("feast", secret=True) if self.profile == "scaleout" else None

    @property
    def prefect_database_url(self) -> str | None:
        """The Prefect server's database on the scale-out profile (asyncpg; with the password: the
        server reads it from its environment as a secret setting); None: its SQLite."""
        if self.profile != "scaleout":
            return None
        return self.postgres_database("prefect", driver="asyncpg", secret=True)


def redacted(url: str) -> str:
    """A URL fit for messages and status pages: a password in it is shown as ***, in a URL's user
    part or as a `password=` option (Feast's Redis connection string)."""
    return re.sub(r"(password=)[^,]*", r"\1***", re.sub(r"(//[^/@:]*):[^/@]*@", r"\1:***@", url))
