"""MLflow I/O: the tracking store, model versions and their aliases, gate decisions recorded, the
champion alias moved, the versions a stopped train left half-made (logging and registering a
candidate: `training.registration`)."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from featureloop.settings import Settings

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS = "previous"
# Tags training writes on a version once MLflow has registered it (`holdout.n` last): a version
# without them was left by a train that stopped in between.
LINEAGE_TAGS = ("training_set_digest", "run_id", "model_inputs", "reference_profile", "holdout.n")
# The process that runs a training run, as tags of the run.
RUN_HOST = "featureloop.host"
RUN_PID = "featureloop.pid"


class TrackingUnavailable(RuntimeError):
    """The MLflow tracking store cannot be reached; nothing was logged or registered."""


class NoPreviousModel(RuntimeError):
    """Rollback asked for, but no model version carries the `previous` alias."""


def open_tracking(settings: Settings, experiment: str | None = None) -> tuple[MlflowClient, str]:
    """`connect` with the settings' tracking store, artifact location and (through a tracking
    server) credentials; the experiment: the settings' unless named."""
    password = settings.mlflow_password
    credentials = (settings.mlflow_username, password.get_secret_value()) if password else None
    return connect(
        settings.tracking_uri,
        settings.artifact_location,
        experiment or settings.experiment,
        credentials=credentials,
    )


def connect(
    tracking_uri: str,
    artifact_location: str | None,
    experiment: str,
    *,
    credentials: tuple[str, str] | None = None,
) -> tuple[MlflowClient, str]:
    """A client on a reachable tracking store and the experiment id (created on first use).
    `credentials` (user, password) authenticate to a tracking server (its basic-auth app): MLflow's
    client reads them from its environment variables, for this process."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from featureloop.settings import redacted

    # Fail fast instead of MLflow's minutes of HTTP retries when a server is down.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    if credentials is not None and tracking_uri.startswith(("http://", "https://")):
        os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = credentials
    if tracking_uri.startswith("sqlite:///"):
        os.makedirs(os.path.dirname(tracking_uri.removeprefix("sqlite:///")) or ".", exist_ok=True)
    if tracking_uri.startswith("postgresql"):  # the scale-out profile: its database on first use
        from featureloop.operations.postgres import PostgresUnavailable, ensure_database

        try:
            ensure_database(tracking_uri)
        except PostgresUnavailable as exc:
            raise TrackingUnavailable(f"MLflow tracking store: {exc}. Nothing was registered.") from exc
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        found = client.get_experiment_by_name(experiment)
        experiment_id = (
            found.experiment_id
            if found is not None
            else client.create_experiment(experiment, artifact_location=artifact_location)
        )
    except MlflowException as exc:
        if exc.get_http_status_code() in (401, 403) or "not authenticated" in str(exc).lower():
            raise TrackingUnavailable(
                f"MLflow tracking server {redacted(tracking_uri)} refused us ({exc.get_http_status_code()}: "
                "not authenticated or not allowed): set FEATURELOOP_MLFLOW_USERNAME and "
                "FEATURELOOP_MLFLOW_PASSWORD to an account of its basic-auth app. Nothing was registered."
            ) from exc
        raise TrackingUnavailable(
            f"MLflow tracking store {redacted(tracking_uri)} is unreachable ({type(exc).__name__}: {exc}); "
            "start it or set FEATURELOOP_MLFLOW_TRACKING_URI. Nothing was registered."
        ) from exc
    except Exception as exc:  # connection errors come in many types
        raise TrackingUnavailable(
            f"MLflow tracking store {redacted(tracking_uri)} is unreachable ({type(exc).__name__}: {exc}); "
            "start it or set FEATURELOOP_MLFLOW_TRACKING_URI. Nothing was registered."
        ) from exc
    return client, experiment_id


@dataclass(frozen=True)
class VersionInfo:
    """A registered model version and what it recorded."""

    name: str
    version: str
    run_id: str
    tags: dict[str, str]

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def metric(self, key: str) -> float:
        return float(self.tags[f"holdout.{key}"])


def _info(version: ModelVersion) -> VersionInfo:
    return VersionInfo(
        name=version.name, version=str(version.version), run_id=version.run_id or "", tags=dict(version.tags)
    )


def get_alias(client: MlflowClient, name: str, alias: str) -> VersionInfo | None:
    """The version behind an alias, or None when the model or alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return _info(client.get_model_version_by_alias(name, alias))
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def get_version(client: MlflowClient, name: str, version: str) -> VersionInfo:
    """A registered version by number."""
    return _info(client.get_model_version(name, version))


def load_model(uri: str) -> Any:
    """Load a scikit-learn model from our own registry.

    MLflow refuses to deserialise models unless MLFLOW_ALLOW_PICKLE_DESERIALIZATION is true, because
    a model file can run code. featureloop only loads versions that its own training registered
    (skops format, with the exact trusted types recorded at save time), so it opts in here; do not
    point featureloop at a registry that others can write to.
    """
    import mlflow.sklearn

    os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
    return mlflow.sklearn.load_model(uri)


def load_reference_profile(client: MlflowClient, version: VersionInfo) -> dict[str, Any]:
    """The reference profile stored with a version's training run (for drift checks)."""
    path = client.download_artifacts(version.run_id, "reference_profile.json")
    with open(path) as handle:
        return dict(json.load(handle))


def record_decision(client: MlflowClient, version: VersionInfo, decision: dict[str, Any]) -> None:
    """Write the gate's decision onto the model version, promoted or not."""
    client.set_model_version_tag(
        version.name, version.version, "gate.promoted", str(decision["promote"]).lower()
    )
    client.set_model_version_tag(version.name, version.version, "gate.reason", decision["reason"])
    client.set_model_version_tag(version.name, version.version, "gate.checks", json.dumps(decision["checks"]))
    champion = decision.get("champion_version")
    client.set_model_version_tag(version.name, version.version, "gate.champion_version", champion or "none")
    client.set_model_version_tag(version.name, version.version, "gate.window", decision.get("window", ""))
    overlap = str(bool(decision.get("window_overlaps_champion_training"))).lower()
    client.set_model_version_tag(
        version.name, version.version, "gate.window_overlaps_champion_training", overlap
    )


def promote(client: MlflowClient, version: VersionInfo) -> VersionInfo | None:
    """Make `version` the champion and keep the old champion as `previous`; returns the old champion.

    `previous` moves first: a crash between the two calls leaves the champion where it was.
    """
    old = get_alias(client, version.name, CHAMPION)
    if old is not None and old.version == version.version:
        return None
    if old is not None:
        client.set_registered_model_alias(version.name, PREVIOUS, old.version)
    client.set_registered_model_alias(version.name, CHAMPION, version.version)
    return old


def rollback(client: MlflowClient, name: str) -> tuple[VersionInfo, VersionInfo | None]:
    """Point `champion` back at `previous` and clear `previous`; returns (restored, demoted)."""
    previous = get_alias(client, name, PREVIOUS)
    if previous is None:
        raise NoPreviousModel(
            f"model {name!r} has no version with alias {PREVIOUS!r}: nothing to roll back to "
            "(a rollback needs a champion that replaced another)"
        )
    demoted = get_alias(client, name, CHAMPION)
    client.set_registered_model_alias(name, CHAMPION, previous.version)
    client.delete_registered_model_alias(name, PREVIOUS)
    if demoted is not None:
        client.set_model_version_tag(name, demoted.version, "rolled_back", "true")
    return previous, demoted


def creator_tags() -> dict[str, str]:
    """Run tags that name this process (host and pid)."""
    return {RUN_HOST: socket.gethostname(), RUN_PID: str(os.getpid())}


@dataclass(frozen=True)
class HalfMade:
    """A version a train registered but did not finish tagging, and what is known of that train."""

    name: str
    version: str
    run_id: str
    created: datetime
    missing: tuple[str, ...]
    left_by: str

    def describe(self) -> str:
        return (
            f"model {self.name} version {self.version} (registered {self.created:%Y-%m-%d %H:%M:%S} UTC, "
            f"run {self.run_id or 'none'}) was left half-made by {self.left_by}; it has no alias and lacks "
            f"tags a finished train writes ({', '.join(self.missing)}), so nothing serves or compares it. "
            f"It is kept for you to look at; delete it in the MLflow UI or with "
            f"MlflowClient().delete_model_version({self.name!r}, {self.version!r})"
        )


def _left_by(client: MlflowClient, run_id: str) -> str | None:
    """Which train left a half-tagged version, or None while its process may still be tagging it."""
    from mlflow.exceptions import MlflowException

    if not run_id:
        return "a train that recorded no run"
    try:
        run = client.get_run(run_id)
    except MlflowException:
        return "a train whose run no longer exists"
    if run.info.status != "RUNNING":
        return f"a train whose run ended {run.info.status} before tagging it"
    host, pid = run.data.tags.get(RUN_HOST), run.data.tags.get(RUN_PID)
    if host is None or pid is None or not pid.isdigit():
        return "a train killed midway (its run never ended and names no process)"
    if host != socket.gethostname():
        return f"a train on {host} (pid {pid}) that was killed, or still runs there: this host cannot check"
    from featureloop.dataset_versions import process_alive

    if process_alive(int(pid)):
        return None
    return f"a train killed midway (its run never ended and its process, pid {pid}, is gone)"


def find_half_made(client: MlflowClient, name: str) -> list[HalfMade]:
    """Versions of `name` without alias and without the tags training writes after registering,
    except those whose training process is still running on this host (it may be tagging them).

    They are named, never deleted: a deletion cannot be undone, another host's train cannot be
    checked from here, and such a version is inert (only an alias makes a version served or compared)."""
    found = []
    for version in client.search_model_versions(f"name = '{name}'"):
        missing = tuple(tag for tag in LINEAGE_TAGS if tag not in version.tags)
        if not missing or version.aliases:
            continue
        left_by = _left_by(client, version.run_id or "")
        if left_by is None:
            continue
        created = datetime.fromtimestamp(version.creation_timestamp / 1000, tz=UTC)
        found.append(HalfMade(name, str(version.version), version.run_id or "", created, missing, left_by))
    return sorted(found, key=lambda h: int(h.version))
