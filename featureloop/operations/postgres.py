"""The scale-out profile's PostgreSQL server: one database per part (Feast registry, MLflow, Prefect),
created on first use, so switching profile stays one variable."""

from __future__ import annotations

import contextlib
import time
from typing import Any

_READY: set[str] = set()


class PostgresUnavailable(RuntimeError):
    """The server cannot be reached, or refuses us."""


def _connect(options: dict[str, Any], starting_for: float = 60) -> Any:
    """A connection; a server that says it is starting up (as right after `make up` started it) is
    given up to `starting_for` seconds."""
    import psycopg

    deadline = time.monotonic() + starting_for
    while True:
        try:
            return psycopg.connect(**options, autocommit=True)
        except psycopg.OperationalError as exc:
            if "starting up" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def ensure_database(url: str) -> None:
    """Create the database a SQLAlchemy URL names unless the server has it (once per process)."""
    if url in _READY:
        return
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    target = make_url(url)
    where = f"{target.username or ''}@{target.host or '127.0.0.1'}:{target.port or 5432}"
    options: dict[str, Any] = {
        "host": target.host or "127.0.0.1",
        "port": target.port or 5432,
        "user": target.username,
        "password": target.password,
        "dbname": "postgres",
        "connect_timeout": 5,
    }
    try:
        con = _connect({k: v for k, v in options.items() if v is not None})
        with con:
            found = con.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target.database,)).fetchone()
            if found is None:  # (another process may create it meanwhile)
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                    con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(str(target.database))))
    except psycopg.Error as exc:
        raise PostgresUnavailable(
            f"PostgreSQL at {where} is unreachable or refused us ({type(exc).__name__}: {' '.join(str(exc).split())}): "
            "start it (docs/scaling.md), or point FEATURELOOP_POSTGRES_URL at yours and give its user's "
            "password as FEATURELOOP_POSTGRES_PASSWORD "
            "(or use FEATURELOOP_PROFILE=embedded)"
        ) from exc
    _READY.add(url)
