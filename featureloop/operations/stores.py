"""The scale-out profile's own servers, when `make up` is to start them: Redis and PostgreSQL on this
machine (Debian's `redis-server` and `postgresql`), so that one command brings the whole stack up.

Each is started only when its setting names this machine (127.0.0.1 / localhost) and nothing
answers on its port yet; a server already there (a team's own, or one started by hand) is used as it
is. Both ask who is calling: Redis with `requirepass` (FEATURELOOP_REDIS_PASSWORD), PostgreSQL with
password authentication (FEATURELOOP_POSTGRES_PASSWORD; its cluster is created on first start under
`.run/postgres` with that password); both listen on loopback only and keep their data under `.run/`.
The passwords reach them through a file readable by the server alone, never a command line.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from featureloop.operations.base import Service
from featureloop.settings import Settings

LOCAL = {"127.0.0.1", "localhost"}


def _address(settings: Settings, name: str) -> tuple[str, int]:
    if name == "redis":
        host, _, port = settings.redis_url.split(",")[0].rpartition(":")
        return host, int(port)
    parts = urlsplit(settings.postgres_url)
    return parts.hostname or "127.0.0.1", parts.port or 5432


def _as_server_user(home: Path) -> list[str]:
    """PostgreSQL refuses to run as root: as root, its files belong to Debian's `postgres` user and
    it runs as that user."""
    if os.geteuid() != 0:
        return []
    for path in [home, *home.rglob("*")]:
        shutil.chown(path, "postgres", "postgres")
    return ["runuser", "-u", "postgres", "--"]


def postgres_home(run_dir: Path, create: bool = False) -> Path:
    """Where the cluster lives: `run_dir/postgres`; as root, when Debian's `postgres` user cannot reach
    that folder (a checkout under a private home), a folder of that user's own
    (/var/lib/postgresql/featureloop-<hash of run_dir>) that `run_dir/postgres` links to (made by
    `create`; otherwise only named)."""
    home = run_dir / "postgres"
    if os.geteuid() != 0 or home.is_symlink():
        return home.resolve()
    reachable = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(run_dir)], check=False)
    if reachable.returncode == 0:
        return home
    digest = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:10]
    own = Path("/var/lib/postgresql") / f"featureloop-{digest}"
    if create:
        own.mkdir(parents=True, exist_ok=True)
        if home.exists():  # (an empty folder from an earlier attempt)
            home.rmdir()
        home.parent.mkdir(parents=True, exist_ok=True)
        home.symlink_to(own, target_is_directory=True)
    return own


def postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if not found:
        raise RuntimeError(
            "the scale-out stack's PostgreSQL is Debian's: `apt-get install postgresql` (`make up` installs it), "
            "or point FEATURELOOP_POSTGRES_URL at a server of yours"
        )
    return found[-1].parent


def _secret(settings: Settings, name: str) -> str:
    value = settings.redis_password if name == "redis" else settings.postgres_password
    if value is None:
        variable = f"FEATURELOOP_{name.upper()}_PASSWORD"
        raise ValueError(
            f"the {name} server `make up` starts asks every caller for a password: set {variable} "
            "in the environment or the project's .env (never in the repository)"
        )
    return value.get_secret_value()


def prepare_postgres(settings: Settings, home: Path) -> None:
    """The cluster under `home/data` (created once, with the user and password of the settings)."""
    data = home / "data"
    if (data / "PG_VERSION").exists():
        return
    password = _secret(settings, "postgres")
    user = urlsplit(settings.postgres_url).username or "featureloop"
    home.mkdir(parents=True, exist_ok=True)
    (home / "sockets").mkdir(exist_ok=True)
    secret_file = home / "password"
    secret_file.touch(mode=0o600)
    secret_file.write_text(password + "\n")
    try:
        as_user = _as_server_user(home)
        subprocess.run(
            [*as_user, str(postgres_bin() / "initdb"), "-D", str(data), "-U", user, "-A", "scram-sha-256",
             f"--pwfile={secret_file}", "-E", "UTF8"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"initdb failed: {exc.stderr.strip()[-500:]}") from exc
    finally:
        secret_file.unlink(missing_ok=True)


def prepare_store(settings: Settings, service: Service, run_dir: Path) -> None:
    """What a store needs before its first start: Redis its configuration (with the password), PostgreSQL
    its cluster."""
    if service.name == "postgres":
        prepare_postgres(settings, postgres_home(run_dir, create=True))
        return
    home = run_dir / "redis"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "redis.conf"  # the password in a file only this user reads
    config.touch(mode=0o600)
    port = _address(settings, "redis")[1]
    config.write_text(
        f'port {port}\nbind 127.0.0.1\ndir {home}\nappendonly yes\nsave ""\n'
        # Its process title keeps naming its configuration: `make down` recognises the process by it.
        'proc-title-template "{title} {config-file}"\n'
        f"requirepass {_secret(settings, 'redis')}\n"
    )


def store_services(settings: Settings, run_dir: Path, env: dict[str, str]) -> list[Service]:
    """Redis and PostgreSQL as `make up` would start them: on the scale-out profile, each whose setting
    names this machine (`up` starts one only when nothing answers on its port: `prepare_store` first)."""
    if settings.profile != "scaleout":
        return []
    found = []
    host, port = _address(settings, "redis")
    if host in LOCAL:
        command = [shutil.which("redis-server") or "redis-server", str(run_dir / "redis" / "redis.conf")]
        found.append(Service("redis", f"redis://{host}:{port}", f"tcp://{host}:{port}", command, env))
    host, port = _address(settings, "postgres")
    if host in LOCAL:
        home = postgres_home(run_dir)
        command = [str(postgres_bin() / "postgres"), "-D", str(home / "data"), "-p", str(port),
                   "-k", str(home / "sockets"), "-c", "listen_addresses=127.0.0.1"]  # fmt: skip
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        found.append(Service("postgres", f"postgresql://{host}:{port}", f"tcp://{host}:{port}", command, env))
    return found
