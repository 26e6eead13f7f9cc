"""Load: /predict under concurrent connections, a model promotion in the middle, zero errors allowed.

Usage (after `make demo`, or with FEATURELOOP_DATA_DIR / FEATURELOOP_MLFLOW_TRACKING_URI pointing at
another loop):
    .venv/bin/python bench/load.py [--requests 50000] [--users 32] [--flights 1] [--promote VERSION]

Starts the serving app as `make serve` does (uvicorn, one worker) on a free loopback port and drives
it with Locust (library mode, `FastHttpUser`s without waits): each request one real flight of late
December from the offline store. After a warm-up it reads the server's resident memory; half-way
through it promotes another model version (default: the newest that is not the champion) in a child
process, as the gate would. `--requests` is a least: when the count is reached before the new version
has answered (a fast machine sends the second half within the reload interval), the users go on
until it answers, for at most SWAP_DEADLINE_S. At the end it reads the memory again, restores the
champion it found and prints the figures. Exits 1 on any failed request, on an answer from a
version other than the two, on no answer from the new one, or on memory growth beyond 10%.
"""

from __future__ import annotations

# Locust patches the standard library for gevent when it is imported: before anything else.
from locust import FastHttpUser, task  # isort: skip
from locust.env import Environment  # isort: skip
from locust.exception import StopUser  # isort: skip

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import gevent

from featureloop.operations.base import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SWAP_DEADLINE_S = 15.0  # 15 times the reload interval the server is started with
VERSION_FIELD = re.compile(rb'"model_version":"([^"]+)"')


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


PRELUDE = (
    "from featureloop.settings import Settings\n"
    "from featureloop.training.registry import connect, get_alias, get_version, promote, CHAMPION\n"
    "s = Settings()\nclient, _ = connect(s.tracking_uri, s.artifact_location, s.experiment)\n"
)


def _registry(code: str) -> str:
    """Run MLflow registry code in a child process (MLflow's SQLite calls would block the event loop)."""
    done = subprocess.run(
        [sys.executable, "-c", PRELUDE + code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"registry call failed: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout.strip()


def _promoter(version: str) -> subprocess.Popen[bytes]:
    """A child with MLflow imported and connected that promotes `version` when told (a line on stdin):
    the promotion then takes milliseconds, not an interpreter's start-up."""
    code = (
        f"import sys\nsys.stdin.readline()\npromote(client, get_version(client, s.model_name, '{version}'))\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", PRELUDE + code], cwd=ROOT, stdin=subprocess.PIPE, stderr=subprocess.DEVNULL
    )


def _bodies(n: int, flights_per_request: int) -> list[bytes]:
    import pandas as pd

    from featureloop.settings import Settings

    path = Settings().offline_dir / "flights.parquet"
    if not path.exists():
        raise SystemExit(f"{path} does not exist: run `make demo` first (or set FEATURELOOP_DATA_DIR)")
    flights = pd.read_parquet(path).dropna(subset=["tailnum"])
    last = flights["sched_dep_ts"].max()
    recent = flights[flights["sched_dep_ts"] >= last - pd.Timedelta(days=7)]
    sample = recent.sample(n * flights_per_request, random_state=0, replace=True)
    rows = [
        {"flight_id": r.flight_id, "tailnum": r.tailnum, "origin": r.origin, "dest": r.dest, "carrier": r.carrier,
         "distance": float(r.distance), "sched_hour": int(r.sched_hour), "day_of_week": int(r.day_of_week),
         "event_timestamp": r.sched_dep_ts.isoformat()}
        for r in sample.itertuples()
    ]  # fmt: skip
    return [
        json.dumps({"flights": rows[i : i + flights_per_request]}).encode()
        for i in range(0, len(rows), flights_per_request)
    ]


def run(requests: int, users: int, flights_per_request: int, promote_to: str | None) -> dict[str, Any]:
    # One child for both answers: the champion, and the newest other version.
    champion, newest_other = _registry(
        "versions = client.search_model_versions(f\"name='{s.model_name}'\")\n"
        "champion = get_alias(client, s.model_name, CHAMPION).version\n"
        "print(champion, max((int(v.version) for v in versions if str(v.version) != champion), default=''))"
    ).split(" ")
    promote_to = promote_to or newest_other
    if not promote_to:
        raise SystemExit("only one model version is registered: nothing to promote (train another first)")
    if promote_to == champion:
        raise SystemExit(f"version {promote_to} is the champion already: name another with --promote")
    bodies = _bodies(min(requests, 5000), flights_per_request)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "FEATURELOOP_MODEL_RELOAD_SECONDS": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    command = [str(BIN / "uvicorn"), "serving.app:create_app", "--factory", "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1", "--log-level", "warning"]  # fmt: skip
    promoter, restorer = _promoter(promote_to), _promoter(champion)  # both import while serving boots
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    state: dict[str, Any] = {
        "sent": 0, "done": 0, "versions": Counter(), "failures": Counter(), "promoted_at": None
    }  # fmt: skip

    def swap_pending() -> bool:
        """The new version has not answered yet, and the deadline after the promotion has not passed."""
        promoted = state.get("promoted_time")
        return "first_new" not in state and (
            promoted is None or time.perf_counter() - promoted < SWAP_DEADLINE_S
        )

    try:
        _wait_ready(url, server)
        print(
            f"serving v{champion} at {url}; {requests:,} requests from {users} users, promotion to v{promote_to} half-way"
        )

        class Predict(FastHttpUser):
            host = url

            @task
            def predict(self) -> None:
                i = state["sent"]
                if i >= requests and not swap_pending():
                    raise StopUser()
                state["sent"] += 1
                with self.client.post(
                    "/predict", data=bodies[i % len(bodies)], headers={"content-type": "application/json"},
                    catch_response=True,
                ) as response:  # fmt: skip
                    state["done"] += 1
                    if response.status_code != 200:
                        state["failures"][f"{response.status_code}: {(response.text or '')[:120]}"] += 1
                        response.failure(f"status {response.status_code}")
                        return
                    found = VERSION_FIELD.search(response.content or b"")
                    version = found.group(1).decode() if found else "?"
                    state["versions"][version] += 1
                    if version == promote_to and "first_new" not in state:
                        state["first_new"] = time.perf_counter()

        environment = Environment(user_classes=[Predict])
        runner = environment.create_local_runner()
        _warm(url, bodies)
        rss_before = _rss_mib(server.pid)
        started = time.perf_counter()
        runner.start(users, spawn_rate=users)

        def promote_half_way() -> None:
            while state["sent"] < requests // 2:
                gevent.sleep(0.01)
            state["promoted_at"], state["promoted_time"] = state["sent"], time.perf_counter()
            assert promoter.stdin is not None
            promoter.stdin.write(b"go\n")
            promoter.stdin.close()
            promoter.wait()

        def progress() -> None:
            while True:
                gevent.sleep(10)
                print(f"  {state['done']:,} answered, {sum(state['failures'].values())} failed")

        def stop_when_done() -> None:  # not from a user's greenlet: quit() stops those
            while state["done"] < max(requests, state["sent"]) or swap_pending():
                gevent.sleep(0.05)
            runner.quit()

        gevent.spawn(promote_half_way)
        reporter = gevent.spawn(progress)
        gevent.spawn(stop_when_done)
        runner.greenlet.join()
        elapsed = time.perf_counter() - started
        reporter.kill()
        promoter.wait(timeout=60)
        rss_after = _rss_mib(server.pid)
        total = environment.stats.total
        result = {
            "requests": total.num_requests,
            "failures": total.num_failures,
            "failure_kinds": dict(state["failures"]),
            "users": users,
            "flights_per_request": flights_per_request,
            "seconds": round(elapsed, 1),
            "requests_per_second": round(total.num_requests / elapsed, 1),
            "p50_ms": total.get_response_time_percentile(0.5),
            "p99_ms": total.get_response_time_percentile(0.99),
            "max_ms": round(total.max_response_time, 1),
            "rss_before_mib": round(rss_before, 1),
            "rss_after_mib": round(rss_after, 1),
            "rss_growth_percent": round(100 * (rss_after - rss_before) / rss_before, 1),
            "versions": dict(state["versions"]),
            "promoted": f"v{champion} -> v{promote_to} after {state['promoted_at']:,} requests",
            "swap_seconds": round(state["first_new"] - state["promoted_time"], 2)
            if "first_new" in state
            else None,
        }
    finally:
        server.terminate()
        server.wait(timeout=60)
        if promoter.poll() is None and promoter.stdin is not None and not promoter.stdin.closed:
            promoter.kill()  # never told: the run ended before half-way
    # The champion as we found it.
    assert restorer.stdin is not None
    restorer.stdin.write(b"go\n")
    restorer.stdin.close()
    if restorer.wait(timeout=120) != 0:
        raise SystemExit(f"could not restore the champion (version {champion}): promote it by hand")
    result["ok"] = (
        result["failures"] == 0
        and set(result["versions"]) <= {champion, promote_to}
        and result["versions"].get(promote_to, 0) > 0
        and result["rss_growth_percent"] <= 10
    )
    return result


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the serving app exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not become ready in 180 s")


def _warm(url: str, bodies: list[bytes]) -> None:
    """500 requests before the first memory reading: caches, the batcher and the log are warm."""
    import httpx

    with httpx.Client(base_url=url, timeout=30) as client:
        for body in bodies[:500]:
            client.post("/predict", content=body, headers={"content-type": "application/json"})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--users", type=int, default=32, help="concurrent connections")
    parser.add_argument("--flights", type=int, default=1, help="flights per request")
    parser.add_argument("--promote", default=None, help="the version to promote half-way")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    args = parser.parse_args()
    result = run(args.requests, args.users, args.flights, args.promote)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['requests']:,} requests ({result['flights_per_request']} flight each) from {result['users']} "
            f"users in {result['seconds']} s: {result['requests_per_second']:,} req/s, p50 {result['p50_ms']} ms, "
            f"p99 {result['p99_ms']} ms, max {result['max_ms']} ms; failures {result['failures']}\n"
            f"memory {result['rss_before_mib']} -> {result['rss_after_mib']} MiB ({result['rss_growth_percent']:+}%); "
            f"{result['promoted']}, first answer by the new one {result['swap_seconds']} s later; "
            f"answered by {result['versions']}\n"
            f"{'OK' if result['ok'] else 'FAILED'}"
        )
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
