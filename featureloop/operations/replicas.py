"""Serving replicas behind HAProxy (FEATURELOOP_SERVING_REPLICAS=N): their ports, the balancer's
configuration, and the processes `make up` starts for serving."""

from __future__ import annotations

import sys
from pathlib import Path

from featureloop.operations.base import Service, ports
from featureloop.settings import Settings


def replica_ports(settings: Settings) -> list[int]:
    """The serving processes' ports: the serving port itself for one; else the ports above it (the
    balancer listens on the serving port)."""
    port = ports()["serving"]
    n = settings.serving_replicas
    return [port] if n == 1 else [port + i for i in range(1, n + 1)]


def haproxy_config(port: int, replicas: list[int], check_ms: int = 500) -> str:
    """HAProxy in front of the serving replicas: round robin; a replica whose /health fails twice
    (`check_ms` apart) is taken out, and back after two good ones; a request a replica failed to
    answer (refused, reset, no response) is retried once on another (the body is buffered for it:
    `tune.bufsize`, so a batch of 1,000 rows still can be); headers, the serving token among them,
    pass through."""
    servers = "".join(f"  server replica{i} 127.0.0.1:{p} check\n" for i, p in enumerate(replicas, start=1))
    return (
        "global\n  maxconn 2048\n  tune.bufsize 1048576\n"
        "defaults\n  mode http\n  timeout connect 1s\n  timeout client 60s\n  timeout server 60s\n"
        "  retries 2\n  option redispatch 1\n"
        "  retry-on conn-failure empty-response response-timeout 502 503 504\n"
        "  option http-buffer-request\n"
        f"frontend serving\n  bind 127.0.0.1:{port}\n  default_backend replicas\n"
        "backend replicas\n  balance roundrobin\n  option httpchk GET /health\n"
        "  http-check expect status 200\n"
        f"  default-server inter {check_ms}ms fall 2 rise 2\n{servers}"
    )


def serving_services(settings: Settings, run_dir: Path, env: dict[str, str]) -> list[Service]:
    """The serving app: one process on the serving port; or `serving_replicas` processes, each on
    its own port (`replica_ports`), all with the same data folder (their prediction-log files have
    unique names, and the drift run reads them together), and HAProxy on the serving port
    (`haproxy_config`, written by the caller to `run_dir/haproxy.cfg`)."""
    uvicorn = str(Path(sys.executable).parent / "uvicorn")
    replicas = replica_ports(settings)
    found = [
        Service(
            "serving" if len(replicas) == 1 else f"serving-{i}",
            f"http://127.0.0.1:{p}",
            f"http://127.0.0.1:{p}/health",
            [
                uvicorn,
                "serving.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(p),
                "--workers",
                "1",
            ],
            env,
        )
        for i, p in enumerate(replicas, start=1)
    ]
    if len(replicas) > 1:
        port = ports()["serving"]
        found.append(
            Service(
                "balancer",
                f"http://127.0.0.1:{port}",
                f"http://127.0.0.1:{port}/health",
                ["haproxy", "-db", "-f", str(run_dir / "haproxy.cfg")],
                env,
            )
        )
    return found
