"""What every service of the local stack is, and where it listens (FEATURELOOP_<NAME>_PORT)."""

from __future__ import annotations

import os
import socket
import urllib.request
from dataclasses import dataclass


@dataclass(frozen=True)
class Service:
    name: str
    url: str
    health: str
    command: list[str]
    env: dict[str, str]
    oneshot: bool = False  # a step that runs to its end (no health URL), not a server


def ports() -> dict[str, int]:
    """Each service's port: FEATURELOOP_<NAME>_PORT, or its usual one."""
    return {
        name: int(os.environ.get(f"FEATURELOOP_{name.upper()}_PORT", default))
        for name, default in (
            ("prefect", 4200),
            ("serving", 8000),
            ("mlflow", 5000),
            ("prometheus", 9090),
            ("dashboard", 8050),
        )
    }


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(host: str, port: int) -> bool:
    """Whether something accepts TCP connections there (within 1 s)."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def healthy(url: str) -> bool:
    """Whether a health URL answers 200 (within 2 s); `tcp://host:port`: whether it accepts a connection."""
    if url.startswith("tcp://"):
        host, _, port = url.removeprefix("tcp://").rpartition(":")
        return listening(host, int(port))
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False
