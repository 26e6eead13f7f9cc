"""Serving while `materialize` writes: /predict at 16 connections during a full materialisation of the
SQLite online store, with the write-ahead log (featureloop's layout) and, as the anchor in the same run,
SQLite's default rollback journal.

Usage (after `make demo`; needs Debian's wrk and hey):
    .venv/bin/python bench/materialize_under_load.py [--seconds 40] [--connections 16] [--journal both]

For each journal mode: the store file is set to that mode, the serving app starts as `make serve` runs
it, and a load tool drives /predict (one real flight of late December per request: wrk cycling through
2,000 distinct flights, then hey repeating one) for `--seconds`; two seconds in, a full
`materialize` (every view's latest values as of the end of the data: what the 15-minute schedule
writes, all of it) runs in a child process. Printed per mode and tool: requests, non-2xx answers, socket
errors, p50/p99, and how long the materialisation took. Exits 1 if the write-ahead-log runs had any
error. The rollback-journal anchor runs the same engine with the switch to the write-ahead log
disabled in its child process (the engine turns it on otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from featureloop.operations.base import free_port
from featureloop.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

MATERIALIZE = """
import sys
from featureloop.featurestore import sqlite_writer
if sys.argv[1] == "delete":
    sqlite_writer.use_wal = lambda connection: None  # the anchor: SQLite's default journal
    sqlite_writer.checkpoint_wal = lambda connection: None
from featureloop.cli import app
sys.argv = ["featureloop", "materialize"]
app()
"""


def _bodies(settings: Settings, n: int) -> list[str]:
    import pandas as pd

    flights = pd.read_parquet(settings.offline_dir / "flights.parquet").dropna(subset=["tailnum"])
    recent = flights[flights["sched_dep_ts"] >= flights["sched_dep_ts"].max() - pd.Timedelta(days=7)]
    return [
        json.dumps({"flights": [{
            "flight_id": r.flight_id, "tailnum": r.tailnum, "origin": r.origin, "dest": r.dest,
            "carrier": r.carrier, "distance": float(r.distance), "sched_hour": int(r.sched_hour),
            "day_of_week": int(r.day_of_week), "event_timestamp": r.sched_dep_ts.isoformat(),
        }]})
        for r in recent.sample(n, random_state=0).itertuples()
    ]  # fmt: skip


def _wrk_script(bodies: list[str], folder: Path) -> Path:
    quoted = ",\n".join("[==[" + b + "]==]" for b in bodies)
    path = folder / "predict.lua"
    path.write_text(
        f"local bodies = {{\n{quoted}\n}}\nlocal i = 0\n"
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        "request = function()\n  i = i % #bodies + 1\n"
        '  return wrk.format("POST", "/predict", nil, bodies[i])\nend\n'
    )
    return path


def _wrk(url: str, seconds: int, connections: int, script: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency", "--timeout", "10s",
         "-s", str(script), f"{url}/predict"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip

    def latency(pct: str) -> float:
        value, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "requests": requests,
        "errors": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(g) for g in sockets.groups()) if sockets else 0,
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
    }


def _hey(url: str, seconds: int, connections: int, body: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["hey", "-z", f"{seconds}s", "-c", str(connections), "-m", "POST", "-T", "application/json",
         "-D", str(body), f"{url}/predict"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    codes = {int(c): int(n) for c, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)}
    errors = re.search(r"Error distribution:(.*)", out, re.S)

    def latency(pct: str) -> float:
        return 1000 * float(re.search(rf"{pct}% in ([\d.]+) secs", out).group(1))  # type: ignore[union-attr]

    return {
        "requests": sum(codes.values()),
        "errors": sum(n for c, n in codes.items() if c != 200),
        "socket_errors": len(re.findall(r"\[\d+\]\s+Post", errors.group(1))) if errors else 0,
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
    }


def _set_journal(store: Path, mode: str) -> None:
    with sqlite3.connect(store) as connection:
        (got,) = connection.execute(f"PRAGMA journal_mode = {mode}").fetchone()
    if got.lower() != mode:
        raise SystemExit(f"{store}: journal_mode {got}, wanted {mode}")


def _wait_ready(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("the serving app exited")
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("the serving app did not become ready")


def run_mode(mode: str, args: argparse.Namespace, settings: Settings, folder: Path) -> list[dict[str, Any]]:
    store = settings.feast_dir / "online.db"
    _set_journal(store, mode)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    command = [str(BIN / "uvicorn"), "serving.app:create_app", "--factory", "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1", "--log-level", "warning"]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    results = []
    try:
        _wait_ready(url, server)
        for tool in ("wrk", "hey"):
            _wrk(url, 2, args.connections, folder / "predict.lua")  # warm
            started = time.monotonic()
            measured: dict[str, Any] = {}
            load = (_wrk, folder / "predict.lua") if tool == "wrk" else (_hey, folder / "one.json")
            thread = threading.Thread(
                target=lambda run=load[0], file=load[1], into=measured: into.update(
                    run(url, args.seconds, args.connections, file)
                )
            )
            thread.start()
            time.sleep(2)  # the load first, then the write
            writer = subprocess.Popen(
                [sys.executable, "-c", MATERIALIZE, mode], cwd=ROOT, env=env,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
            err, _ = writer.communicate(timeout=600)
            if writer.returncode != 0:
                raise SystemExit(f"materialize failed ({mode}):\n{err[-2000:]}")
            written_by = time.monotonic() - started
            took = re.search(r"materialize done in ([\d.]+) s", err)
            thread.join()
            figures = {
                **measured,
                "mode": mode,
                "tool": tool,
                "materialize_s": float(took.group(1)) if took else None,
            }
            if written_by > args.seconds:
                raise SystemExit(
                    f"the load ended before materialize did: raise --seconds over {written_by:.0f}"
                )
            results.append(figures)
            print(
                f"{mode:<7} {tool:<4} {figures['requests']:>8,} requests  {figures['errors']:>6,} non-2xx  "
                f"{figures['socket_errors']:>4} socket errors  p50 {figures['p50_ms']:6.2f} ms  "
                f"p99 {figures['p99_ms']:7.2f} ms  materialize {figures['materialize_s']} s",
                flush=True,
            )
    finally:
        server.terminate()
        server.wait(timeout=60)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=40, help="load per mode and tool (covers the write)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--journal", choices=["wal", "delete", "both"], default="both")
    args = parser.parse_args()
    settings = Settings()
    if not (settings.feast_dir / "online.db").exists():
        raise SystemExit("no online store: run `make demo` first")
    bodies = _bodies(settings, 2000)
    modes = ["delete", "wal"] if args.journal == "both" else [args.journal]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            _wrk_script(bodies, folder)
            (folder / "one.json").write_text(bodies[0])
            print(
                f"{args.connections} connections, {args.seconds} s per run; a full materialize starts 2 s in"
            )
            results = [r for mode in modes for r in run_mode(mode, args, settings, folder)]
    finally:
        _set_journal(settings.feast_dir / "online.db", "wal")  # leave the store as featureloop keeps it
    bad = [r for r in results if r["mode"] == "wal" and (r["errors"] or r["socket_errors"])]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
