"""One settings object for every entry point: environment variables and an optional config file."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from featureloop.event_time import EventTimeBounds
from featureloop.servers import ServerSettings, redacted

PROJECT_ROOT = Path(__file__).resolve().parent.parent
__all__ = ["PROJECT_ROOT", "Settings", "redacted"]


class Settings(ServerSettings):
    """Where featureloop reads and writes; read once at an entry point, then passed down."""

    model_config = SettingsConfigDict(
        env_prefix="FEATURELOOP_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        hide_input_in_errors=True,  # an error names the setting, never its value (secrets among them)
    )

    raw_dir: Path | None = Field(
        default=None,
        description="Folder the project's prepare step reads raw files from; default: the step's own.",
    )
    data_dir: Path = Field(default=PROJECT_ROOT / "data", description="Root of prepared data.")
    feature_repo: Path = Field(default=PROJECT_ROOT / "feature_repo")
    mlflow_tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking URI; default: sqlite under data_dir/mlflow (embedded), the "
        "tracking server at mlflow_url (scaleout).",
    )
    model_name: str = Field(
        default="", description="Registered model name in MLflow; default: the project spec's name."
    )
    experiment: str = Field(default="featureloop", description="MLflow experiment for training runs.")
    environment: Literal["development", "production"] = "development"
    serving_token: SecretStr | None = Field(
        default=None, description="Bearer token every serving endpoint but /health requires (unset: none)."
    )
    predict_max_batch: int = Field(default=1000, ge=1, le=100_000, description="Most rows in one /predict.")
    max_request_bytes: int = Field(
        default=4_000_000, ge=1024, description="Largest request body serving reads; larger ones get a 413."
    )
    model_reload_seconds: float = Field(default=5.0, gt=0, description="How often serving checks the alias.")
    serving_mode: Literal["champion", "shadow", "canary"] = Field(
        default="champion",
        description="shadow: the `challenger` alias also scores every row (logged, not returned); "
        "canary: a share of aircraft, chosen by a stable hash, is answered by the challenger.",
    )
    canary_share: float = Field(default=0.1, ge=0, le=1, description="Share of aircraft the canary answers.")
    online_store_timeout_ms: int = Field(
        default=50,
        ge=1,
        description="How long serving waits for the online store (a locked SQLite file, a Redis "
        "connection; a Redis reply: at least 1 s) before answering 503.",
    )
    online_cache_entries: int = Field(
        default=50_000,
        ge=0,
        description="Entity answers of a local SQLite online store kept between requests, per reader "
        "(each view of each entity is one); emptied whenever the database changes. 0: none.",
    )
    decision_threshold: float = Field(
        default=0.5,
        gt=0,
        lt=1,
        description="Probability at or above which a binary project's decision is yes.",
    )
    event_time_earliest: datetime = Field(
        default=datetime(1970, 1, 1, tzinfo=UTC),
        description="Earliest prediction time (event_timestamp) serving accepts (earlier: a 422); "
        "monitoring ignores and counts logged rows outside the accepted range.",
    )
    event_time_max_ahead_seconds: float = Field(
        default=86_400,
        ge=0,
        le=100 * 365 * 86_400,
        description="How far past the server's clock a prediction time may lie (further: a 422).",
    )
    prediction_log_flush_seconds: float = Field(
        default=1.0, gt=0, description="Most a crash can lose, in time."
    )
    prediction_log_max_queue: int = Field(
        default=100_000, ge=1, description="Rows held in memory before dropping (counted)."
    )

    @field_validator("event_time_earliest")
    @classmethod
    def _as_utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @model_validator(mode="after")
    def _absolute_paths_and_model_name(self) -> Settings:
        """Paths as absolute ones (a project's .env names them relative to its folder), and the
        registered model named after the project unless named here."""
        self.data_dir = self.data_dir.resolve()
        self.feature_repo = self.feature_repo.resolve()
        if self.raw_dir is not None:
            self.raw_dir = self.raw_dir.resolve()
        if not self.model_name:
            self.model_name = _project_name(self.feature_repo)
        return self

    @model_validator(mode="after")
    def _safe_outside_development(self) -> Settings:
        if self.serving_token is not None and not self.serving_token.get_secret_value().strip():
            raise ValueError(
                "FEATURELOOP_SERVING_TOKEN is set but empty (an empty token would let anyone in): "
                "unset it, or set a real token"
            )
        if self.environment == "production" and self.serving_token is None:
            raise ValueError(
                "FEATURELOOP_SERVING_TOKEN must be set when FEATURELOOP_ENVIRONMENT=production "
                "(serving would otherwise answer anyone)"
            )
        return self

    @property
    def event_time_bounds(self) -> EventTimeBounds:
        """The prediction times serving accepts and monitoring counts as plausible."""
        return EventTimeBounds(self.event_time_earliest, timedelta(seconds=self.event_time_max_ahead_seconds))

    @property
    def prediction_log_dir(self) -> Path:
        """Append-only parquet partitions of what serving answered (date=YYYY-MM-DD/...)."""
        return self.data_dir / "prediction_log"

    @property
    def drift_dir(self) -> Path:
        """Drift reports, their history, and the gauges file (`metrics.prom`) serving exposes."""
        return self.data_dir / "drift"

    @property
    def offline_dir(self) -> Path:
        """The current dataset version (a symlink swapped atomically by `prepare`)."""
        return self.data_dir / "offline"

    @property
    def versions_dir(self) -> Path:
        return self.data_dir / "versions"

    @property
    def feast_dir(self) -> Path:
        """Feast's file registry and SQLite online store for the embedded profile."""
        return self.data_dir / "feast"

    @property
    def mlflow_dir(self) -> Path:
        return self.data_dir / "mlflow"

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI: explicit; else the tracking server (mlflow_url) on the scale-out
        profile, SQLite in the data folder on the embedded one."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        if self.profile == "scaleout":
            return self.mlflow_url.rstrip("/")
        return self.mlflow_backend_uri

    @property
    def mlflow_backend_uri(self) -> str:
        """Where MLflow keeps runs and models: the database the tracking server (and `make up`'s UI)
        serves; PostgreSQL on the scale-out profile, SQLite in the data folder on the embedded one."""
        if self.profile == "scaleout":
            return self.postgres_database("mlflow")
        return f"sqlite:///{(self.mlflow_dir / 'mlflow.db').resolve()}"

    @property
    def mlflow_over_http(self) -> bool:
        return self.tracking_uri.startswith(("http://", "https://"))

    @property
    def artifact_location(self) -> str | None:
        """Where new experiments keep their artifacts: a local folder beside the SQLite store; None
        through a tracking server (it proxies them to its own `mlflow_artifacts_dir`)."""
        return None if self.mlflow_over_http else self.mlflow_artifacts_dir.as_uri()

    @property
    def mlflow_artifacts_dir(self) -> Path:
        """The artifact store's folder: the clients' own on the embedded profile, only the tracking
        server's on the scale-out one."""
        return (self.mlflow_dir / "artifacts").resolve()


def _project_name(feature_repo: Path) -> str:
    """The `name` of the project's spec (the full checks are the spec's own: featureloop.project)."""
    import yaml

    try:
        loaded = yaml.safe_load((feature_repo / "project.yaml").read_text())
        name = loaded.get("name") if isinstance(loaded, dict) else None
    except (OSError, yaml.YAMLError):
        name = None
    return name if isinstance(name, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else "model"
