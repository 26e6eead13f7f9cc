"""Benchmark: our serving app beside `feast serve`, one worker each, driven by wrk on loopback.

Usage (after `make demo`; needs Debian's `wrk`: `apt-get install wrk`):
    .venv/bin/python bench/serving.py [--seconds 10]           # ours beside `feast serve`
    .venv/bin/python bench/serving.py --redis [--seconds 10]   # ours on SQLite beside ours on Redis

For 1 and 100 entities and 1 and 16 connections it measures: `feast serve` /get-online-features
(3 carrier features: the anchor's request), ours /get-online-features (same body), and ours
/predict (the champion's whole feature service plus the model). wrk prints p50/p99 and req/s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not start")


def _flights(n: int) -> list[dict[str, object]]:
    import pandas as pd

    flights = pd.read_parquet(ROOT / "data/offline/flights.parquet").dropna(subset=["tailnum"])
    sample = flights[flights["sched_dep_ts"] >= "2013-12-25"].sample(n, random_state=0, replace=n > 1000)
    return [
        {"flight_id": r.flight_id, "tailnum": r.tailnum, "origin": r.origin, "dest": r.dest, "carrier": r.carrier,
         "distance": float(r.distance), "sched_hour": int(r.sched_hour), "day_of_week": int(r.day_of_week),
         "event_timestamp": "2014-01-01T04:00:00+00:00"}
        for r in sample.itertuples()
    ]  # fmt: skip


def _wrk(url: str, body: dict[str, object], connections: int, seconds: int) -> dict[str, object]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {json.dumps(json.dumps(body))}\n"
        )
    out = subprocess.run(
        ["wrk", "-t", str(min(connections, 2)), "-c", str(connections), "-d", f"{seconds}s", "--latency",
         "--timeout", "10s", "-s", script.name, url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    os.unlink(script.name)

    def latency(pct: str) -> float:
        value, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "errors": errors + (int(non2xx.group(1)) if non2xx else 0),
    }


def _load_redis(address: str) -> None:
    """The main data's latest values (as of the end of 2013) into Redis, through our engine."""
    from datetime import UTC, datetime

    from featureloop.feast_store import materialize_window, open_store
    from featureloop.settings import Settings

    settings = Settings(data_dir=ROOT / "data", profile="scaleout", redis_url=address)
    materialize_window(open_store(settings), datetime(2014, 1, 1, 5, tzinfo=UTC))


def _start_app(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(BIN / "uvicorn"), "serving.app:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1", "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument(
        "--redis", action="store_true",
        help="ours on the SQLite profile beside ours on the Redis profile (Debian's redis-server, started here)",
    )  # fmt: skip
    args = parser.parse_args()
    env = {
        **os.environ,
        "FEATURELOOP_DATA_DIR": str(ROOT / "data"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    procs: list[subprocess.Popen[bytes]] = []
    try:
        servers: list[tuple[str, str]] = []  # (label, url); the first is the reference
        if args.redis:
            redis_port = _port()
            procs.append(subprocess.Popen(
                ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL,
            ))  # fmt: skip
            time.sleep(1)
            _load_redis(f"127.0.0.1:{redis_port}")
            for label, extra in (("ours SQLite", {}), ("ours Redis", {"FEATURELOOP_PROFILE": "scaleout",
                                 "FEATURELOOP_REDIS_URL": f"127.0.0.1:{redis_port}"})):  # fmt: skip
                port = _port()
                procs.append(_start_app(port, {**env, **extra}))
                servers.append((label, f"http://127.0.0.1:{port}"))
        else:
            ours_port, feast_port = _port(), _port()
            procs.append(subprocess.Popen(
                [str(BIN / "feast"), "serve", "--host", "127.0.0.1", "--port", str(feast_port), "--workers", "1",
                 "--no-access-log"],
                cwd=ROOT / "feature_repo", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))  # fmt: skip
            procs.append(_start_app(ours_port, env))
            servers = [
                ("feast serve", f"http://127.0.0.1:{feast_port}"),
                ("ours", f"http://127.0.0.1:{ours_port}"),
            ]
        for (_, url), proc in zip(servers, procs[-len(servers) :], strict=True):
            _wait(url, proc)
        print(
            f"{'target':<38} {'entities':>8} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>9} {'errors':>6}"
        )
        for n in (1, 100):
            flights = _flights(n)
            features = {
                "entities": {"carrier": [f["carrier"] for f in flights]},
                "features": ["carrier_stats:carrier_flights_24h", "carrier_stats:carrier_dep_delay_mean_24h",
                             "carrier_stats:carrier_delayed_share_24h"],
            }  # fmt: skip
            targets = [
                (f"{label} /get-online-features", f"{url}/get-online-features", features)
                for label, url in servers
            ]
            targets += [
                (f"{label} /predict (service + model)", f"{url}/predict", {"flights": flights})
                for label, url in servers if label != "feast serve"
            ]  # fmt: skip
            for connections in (1, 16):
                for name, url, body in targets:
                    r = _wrk(url, body, connections, args.seconds)
                    print(
                        f"{name:<38} {n:>8} {connections:>5} {r['rps']:>9.1f} {r['p50_ms']:>8.2f} "
                        f"{r['p99_ms']:>9.2f} {r['errors']:>6}",
                        flush=True,
                    )
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
