"""Benchmark: our serving app beside `feast serve` and the machine's floor, one worker each, on loopback.

Usage (after `make demo`; needs Debian's wrk, hey and redis-server):
    .venv/bin/python bench/serving.py [--seconds 5] [--redis]

Every server runs in the same run, one worker each:
- floor: a trivial ASGI app on the same server stack (uvicorn, bench/floor_app.py);
- ours: the serving app on the demo's data (SQLite online store), and a second copy with its
  answer cache off (`FEATURELOOP_ONLINE_CACHE_ENTRIES=0`: every entity read from SQLite, the
  worst case; with the cache on, wrk's rotation of 200 flights is answered from it once warm, and
  the script prints the share of entity views each server answered from its cache);
- `feast serve` on the same repo and store, started as a user starts it, but with worker recycling
  off (`--max-requests 0`: its default restarts the worker every ~1,000 requests, which is its p99);
- `feast serve` on a copy of the repo whose service has a twin with Feast 0.67's
  `precompute_online=True`, on a Redis of its own (Feast precomputes only where it can scan entity
  keys: Redis), loaded to the same time; it answers the plain service from Redis too.
With `--redis`, ours also runs on that Redis copy. With `--release`, two more copies of ours serve
with a challenger (another registered version, under the `challenger` alias for the run): one in
the shadow stage (both models score every request), one in the canary stage (10% of requests
answered by the challenger, whose rows the champion also scores): what a release costs /predict.

Bodies name DISTINCT entities: 1 or 100 distinct aircraft (tail numbers) per request, and for the
service and /predict 1 or 100 distinct late-December flights. wrk rotates through many such bodies
(a Lua script); hey repeats the first. Each figure is also given as a share of the floor's requests
per second (same tool, entities and connections).

Targets: /get-online-features for 3 aircraft_stats features (ours, feast serve); the whole
`flight_delay_v1` service through /get-online-features (ours, feast serve, feast serve Redis,
feast serve Redis with precomputed vectors); ours /predict (the service plus the model).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
AS_OF = datetime(2014, 1, 1, 5, tzinfo=UTC)  # the online store holds the values as of the end of 2013
EVENT_TIME = "2014-01-01T04:00:00+00:00"
FEATURES = [
    "aircraft_stats:aircraft_flights_24h",
    "aircraft_stats:aircraft_dep_delay_mean_24h",
    "aircraft_stats:aircraft_delayed_share_24h",
]
SERVICE, PRECOMPUTED = "flight_delay_v1", "flight_delay_v1_precomputed"
FLOOR = "floor (trivial ASGI app)"
COLD = "ours /predict, answer cache off"
SHADOW = "ours /predict, shadow stage (two models)"
TWIN = f"""

# Added by bench/serving.py in its copy of the repo: the same features, with Feast's precomputed vectors.
{PRECOMPUTED} = FeatureService(
    name="{PRECOMPUTED}", features={SERVICE}._features, precompute_online=True
)
"""


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes], path: str = "/health") -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}{path}", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not start")


def _flight_sets(size: int, count: int) -> list[list[dict[str, Any]]]:
    """`count` sets of `size` late-December flights, the aircraft distinct within each set."""
    import pandas as pd

    flights = pd.read_parquet(ROOT / "data/offline/flights.parquet").dropna(subset=["tailnum"])
    recent = flights[flights["sched_dep_ts"] >= "2013-12-25"]
    sets = []
    for i in range(count):
        sample = recent.sample(frac=1.0, random_state=i).drop_duplicates("tailnum").head(size)
        sets.append([
            {"flight_id": r.flight_id, "tailnum": r.tailnum, "origin": r.origin, "dest": r.dest,
             "carrier": r.carrier, "distance": float(r.distance), "sched_hour": int(r.sched_hour),
             "day_of_week": int(r.day_of_week), "event_timestamp": EVENT_TIME}
            for r in sample.itertuples()
        ])  # fmt: skip
    return sets


def _bodies(kind: str, sets: list[list[dict[str, Any]]]) -> list[str]:
    out = []
    for flights in sets:
        if kind == "features":
            body: dict[str, Any] = {
                "entities": {"tailnum": [f["tailnum"] for f in flights]},
                "features": FEATURES,
            }
        elif kind in (SERVICE, PRECOMPUTED):
            body = {
                "feature_service": kind,
                "full_feature_names": True,  # Feast 0.67 reads its precomputed vectors only so
                "entities": {
                    "tailnum": [f["tailnum"] for f in flights],
                    "origin": [f["origin"] for f in flights],
                    "carrier": [f["carrier"] for f in flights],
                    "route": [f"{f['origin']}-{f['dest']}" for f in flights],
                },
            }
        else:
            body = {"flights": flights}
        out.append(json.dumps(body, separators=(",", ":")))
    return out


def _scripts(folder: Path, name: str, path: str, bodies: list[str]) -> tuple[Path, Path]:
    """A wrk Lua script rotating through the bodies, and the first body for hey."""
    quoted = ",\n".join("[==[" + b + "]==]" for b in bodies)
    lua = folder / f"{name}.lua"
    lua.write_text(
        f"local bodies = {{\n{quoted}\n}}\nlocal i = 0\n"
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        "request = function()\n  i = i % #bodies + 1\n"
        f'  return wrk.format("POST", "{path}", nil, bodies[i])\nend\n'
    )
    first = folder / f"{name}.json"
    first.write_text(bodies[0])
    return lua, first


def _wrk(url: str, lua: Path, connections: int, seconds: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t", str(min(connections, 2)), "-c", str(connections), "-d", f"{seconds}s", "--latency",
         "--timeout", "10s", "-s", str(lua), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip

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


def _hey(url: str, body: Path, connections: int, seconds: int) -> dict[str, float]:
    out = subprocess.run(
        ["hey", "-z", f"{seconds}s", "-c", str(connections), "-m", "POST", "-T", "application/json",
         "-D", str(body), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    codes = {int(c): int(n) for c, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)}
    failed = re.search(r"Error distribution:(.*)", out, re.S)
    socket_errors = sum(int(n) for n in re.findall(r"\[(\d+)\]\s", failed.group(1))) if failed else 0

    def latency(pct: str) -> float:
        # hey prints a percentile only when it has more samples than that (a slow cell may have fewer
        # than 100): then its slowest request stands for the p99.
        found = re.search(rf"{pct}% in ([\d.]+) secs", out) or re.search(r"Slowest:\s+([\d.]+) secs", out)
        return 1000 * float(found.group(1))  # type: ignore[union-attr]

    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "errors": sum(n for c, n in codes.items() if c != 200) + socket_errors,
    }


def _redis_copy(folder: Path, redis: str) -> tuple[Path, Path]:
    """A copy of the repo (its service's precomputed twin added, online store: `redis`) with a data
    folder of its own (the offline tables and MLflow linked), applied and loaded as of AS_OF."""
    from featureloop.featurestore.materialization import materialize_window
    from featureloop.featurestore.store import apply_repo, open_store
    from featureloop.settings import Settings

    repo, data = folder / "feature_repo", folder / "data"
    shutil.copytree(ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("__pycache__", "data"))
    with (repo / "feature_services.py").open("a") as services:
        services.write(TWIN)
    config = (repo / "feature_store.yaml").read_text()
    config = re.sub(
        r"online_store:\n(  .*\n)+", f"online_store:\n  type: redis\n  connection_string: {redis}\n", config
    )
    (repo / "feature_store.yaml").write_text(config)
    (data / "feast").mkdir(parents=True)
    for name in ("offline", "mlflow"):
        (data / name).symlink_to((ROOT / "data" / name).resolve(), target_is_directory=True)
    settings = Settings(data_dir=data, feature_repo=repo)
    apply_repo(settings)
    store = open_store(settings)
    materialize_window(store, AS_OF)  # Feast precomputes the twin's vectors after each view
    written = store.precompute_feature_service(PRECOMPUTED)
    print(
        f"Feast precomputed {written} vectors for {PRECOMPUTED} (keyed by its first view's entity)",
        flush=True,
    )
    return repo, data


def _compare_precomputed(url: str, flights: list[dict[str, Any]]) -> None:
    """How Feast's precomputed answer for one flight compares with its plain answer (same store)."""
    answers = {}
    for kind in (SERVICE, PRECOMPUTED):
        body = json.loads(_bodies(kind, [flights[:1]])[0])
        answer = httpx.post(f"{url}/get-online-features", json=body, timeout=30).json()
        names = answer["metadata"]["feature_names"]
        answers[kind] = {
            n: (r["values"][0], r["statuses"][0]) for n, r in zip(names, answer["results"], strict=True)
        }
    plain, pre = answers[SERVICE], answers[PRECOMPUTED]
    differ = sorted(n for n in plain if plain[n] != pre.get(n))
    nulls = sum(1 for n in differ if pre[n][0] is None)
    print(
        f"precompute_online vs plain service, flight {flights[0]['flight_id']}: {len(differ)} of {len(plain)} "
        f"columns differ ({nulls} come back null; statuses {sorted({pre[n][1] for n in differ})})",
        flush=True,
    )


def _cache_lookups(url: str) -> str:
    """The server's online answer cache: the share of entity views it answered."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    counts = {
        result: float(n)
        for result, n in re.findall(r'featureloop_online_cache_lookups_total\{result="(\w+)"\} (\S+)', text)
    }
    total = counts.get("hit", 0) + counts.get("miss", 0)
    if not total:
        return "answer cache not used"
    return f"answer cache: {counts.get('hit', 0) / total:.1%} of {total:,.0f} entity views answered from it"


def _start(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _uvicorn(app: str, port: int, *extra: str) -> list[str]:
    return [str(BIN / "uvicorn"), app, *extra, "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--log-level", "warning", "--no-access-log"]  # fmt: skip


def _feast_serve(port: int) -> list[str]:
    return [str(BIN / "feast"), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--no-access-log", "--max-requests", "0"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seconds", type=int, default=5, help="load per cell (each tool, target, size, conns)"
    )
    parser.add_argument("--redis", action="store_true", help="ours on the Redis copy too")
    parser.add_argument("--sizes", default="1,100", help="entities per request")
    parser.add_argument("--connections", default="1,16")
    parser.add_argument("--tools", default="wrk,hey")
    parser.add_argument("--only", default="", help="comma-separated target labels to run (default: all)")
    parser.add_argument("--release", action="store_true", help="ours in the shadow and canary stages too")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    connection_counts = [int(x) for x in args.connections.split(",")]
    tools = args.tools.split(",")
    env = {
        **os.environ,
        "FEATURELOOP_DATA_DIR": str(ROOT / "data"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    folder = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    procs: list[subprocess.Popen[bytes]] = []
    restore = _challenger_for_the_run() if args.release else None
    try:
        redis_port = _port()
        procs.append(_start(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], folder, env))  # fmt: skip
        time.sleep(1)
        repo, data = _redis_copy(folder, f"127.0.0.1:{redis_port}")
        redis_env = {**env, "FEATURELOOP_DATA_DIR": str(data), "FEATURELOOP_FEATURE_REPO": str(repo)}
        ports = {
            name: _port()
            for name in (
                "floor", "ours", "ours_cold", "feast", "feast_redis", "ours_redis", "ours_shadow", "ours_canary"
            )
        }  # fmt: skip
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        servers = [
            ("floor", _start(_uvicorn("bench.floor_app:app", ports["floor"]), ROOT, env), "/health"),
            (
                "ours",
                _start(_uvicorn("serving.app:create_app", ports["ours"], "--factory"), ROOT, env),
                "/ready",
            ),
            (
                "ours_cold",
                _start(
                    _uvicorn("serving.app:create_app", ports["ours_cold"], "--factory"),
                    ROOT,
                    {**env, "FEATURELOOP_ONLINE_CACHE_ENTRIES": "0"},
                ),
                "/ready",
            ),
            ("feast", _start(_feast_serve(ports["feast"]), ROOT / "feature_repo", env), "/health"),
            ("feast_redis", _start(_feast_serve(ports["feast_redis"]), repo, redis_env), "/health"),
        ]
        if args.redis:
            command = _uvicorn("serving.app:create_app", ports["ours_redis"], "--factory")
            servers.append(("ours_redis", _start(command, ROOT, redis_env), "/ready"))
        if args.release:
            for stage in ("shadow", "canary"):
                command = _uvicorn("serving.app:create_app", ports[f"ours_{stage}"], "--factory")
                stage_env = {**env, "FEATURELOOP_SERVING_MODE": stage, "FEATURELOOP_CANARY_SHARE": "0.1"}
                servers.append((f"ours_{stage}", _start(command, ROOT, stage_env), "/ready"))
        procs += [proc for _, proc, _ in servers]
        for name, proc, path in servers:
            _wait(urls[name], proc, path)

        # (label, server, path, body kind)
        targets = [
            (FLOOR, "floor", "/", "features"),
            ("feast serve /get-online-features, 3 features", "feast", "/get-online-features", "features"),
            ("ours /get-online-features, 3 features", "ours", "/get-online-features", "features"),
            ("feast serve, whole service", "feast", "/get-online-features", SERVICE),
            ("feast serve Redis, whole service", "feast_redis", "/get-online-features", SERVICE),
            ("feast serve Redis, precompute_online", "feast_redis", "/get-online-features", PRECOMPUTED),
            ("ours /get-online-features, whole service", "ours", "/get-online-features", SERVICE),
            ("ours /predict (service + model)", "ours", "/predict", "predict"),
            (COLD, "ours_cold", "/predict", "predict"),
        ]
        if args.redis:
            targets += [
                (
                    "ours Redis /get-online-features, 3 features",
                    "ours_redis",
                    "/get-online-features",
                    "features",
                ),
                (
                    "ours Redis /get-online-features, whole service",
                    "ours_redis",
                    "/get-online-features",
                    SERVICE,
                ),
                ("ours Redis /predict (service + model)", "ours_redis", "/predict", "predict"),
            ]
        if args.release:
            targets += [
                (SHADOW, "ours_shadow", "/predict", "predict"),
                ("ours /predict, canary stage (10%)", "ours_canary", "/predict", "predict"),
            ]
        if args.only:
            wanted = {x.strip() for x in args.only.split(",")}
            targets = [t for t in targets if t[1] in wanted or t[0] in wanted or t[0] == FLOOR]
        started = datetime.now(UTC)
        load_before = _uptime()
        print(f"\n{started:%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores, {_memory_gib()} GiB; Python "
              f"{platform.python_version()}; {args.seconds} s a cell; load before: {load_before}\n", flush=True)  # fmt: skip
        print("| target | entities | conns | tool | req/s | share of floor | p50 ms | p99 ms | errors |")
        print("|---|---|---|---|---|---|---|---|---|", flush=True)
        results: dict[tuple[str, int, int, str], dict[str, float]] = {}
        for size in sizes:
            sets = _flight_sets(size, 200 if size == 1 else 10)
            if size == sizes[0]:
                _compare_precomputed(urls["feast_redis"], sets[0])
            scripts = {}
            for label, server, path, kind in targets:
                scripts[label] = _scripts(folder, f"{server}-{kind}-{size}", path, _bodies(kind, sets))
                for check in (json.loads(b) for b in _bodies(kind, sets[:1])):  # every target answers 200
                    answer = httpx.post(f"{urls[server]}{path}", json=check, timeout=60)
                    if answer.status_code != 200:
                        raise RuntimeError(f"{label}: {answer.status_code} {answer.text[:300]}")
                _wrk(f"{urls[server]}{path}", scripts[label][0], 2, 1)  # warm
            for connections in connection_counts:
                for tool in tools:
                    for label, server, path, _ in targets:
                        lua, first = scripts[label]
                        url = f"{urls[server]}{path}"
                        r = (
                            _wrk(url, lua, connections, args.seconds)
                            if tool == "wrk"
                            else _hey(url, first, connections, args.seconds)
                        )
                        results[(label, size, connections, tool)] = r
                        floor = results[(FLOOR, size, connections, tool)]["rps"]
                        print(
                            f"| {label} | {size} | {connections} | {tool} | {r['rps']:,.0f} | {r['rps'] / floor:.1%} "
                            f"| {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']:.0f} |",
                            flush=True,
                        )
        print(f"\nload after: {_uptime()}; {(datetime.now(UTC) - started).total_seconds():.0f} s")
        for server in ("ours", "ours_cold", "ours_redis"):
            if server in {t[1] for t in targets}:
                print(f"{server}: {_cache_lookups(urls[server])}")
        print()
        _summary(results, sizes, connection_counts, tools)
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(folder, ignore_errors=True)
        if restore is not None:
            restore()


def _challenger_for_the_run() -> Any:
    """Point the demo registry's `challenger` alias at a version without release tags (serving then
    uses it only where FEATURELOOP_SERVING_MODE says so: the plain `ours` stays champion-only); the
    call that puts the alias back as it was."""
    sys.path.insert(0, str(ROOT))
    from featureloop.settings import Settings
    from featureloop.training.registry import CHALLENGER, CHAMPION, get_alias, open_tracking

    settings = Settings(data_dir=ROOT / "data")
    client, _ = open_tracking(settings)
    name = settings.model_name
    champion, before = get_alias(client, name, CHAMPION), get_alias(client, name, CHALLENGER)
    candidates = [
        v for v in client.search_model_versions(f"name = '{name}'")
        if champion is not None and str(v.version) != champion.version and "release.stage" not in v.tags
        and "holdout.n" in v.tags
    ]  # fmt: skip
    if not candidates:
        raise SystemExit("--release needs a second finished version without release tags: run make demo")
    chosen = max(candidates, key=lambda v: int(v.version))
    client.set_registered_model_alias(name, CHALLENGER, str(chosen.version))
    print(
        f"release stages: challenger version {chosen.version} beside champion {champion.version if champion else '?'}"
    )

    def restore() -> None:
        if before is None:
            client.delete_registered_model_alias(name, CHALLENGER)
        else:
            client.set_registered_model_alias(name, CHALLENGER, before.version)

    return restore


def _summary(
    results: dict[tuple[str, int, int, str], dict[str, float]],
    sizes: list[int],
    connection_counts: list[int],
    tools: list[str],
) -> None:
    """The issue's targets, each against its anchor in the same run."""
    pairs = [
        (
            "ours /get-online-features, 3 features",
            "feast serve /get-online-features, 3 features",
            "x feast serve",
        ),
        ("ours /predict (service + model)", "feast serve, whole service", "x feast serve's whole service"),
        (COLD, "feast serve, whole service", "x (cache off) feast serve's whole service"),
        (
            "ours /predict (service + model)",
            "feast serve Redis, precompute_online",
            "x precompute_online (Redis)",
        ),
    ]
    for size in sizes:
        for connections in connection_counts:
            for tool in tools:
                parts = []
                for ours, anchor, text in pairs:
                    a, b = (
                        results.get((ours, size, connections, tool)),
                        results.get((anchor, size, connections, tool)),
                    )
                    if a and b:
                        parts.append(f"{a['rps'] / b['rps']:.1f}{text}")
                predict = results.get(("ours /predict (service + model)", size, connections, tool))
                features = results.get(
                    ("feast serve /get-online-features, 3 features", size, connections, tool)
                )
                floor = results.get((FLOOR, size, connections, tool))
                cold = results.get((COLD, size, connections, tool))
                if predict and floor:
                    parts.append(f"/predict {predict['rps'] / floor['rps']:.1%} of the floor")
                shadow = results.get((SHADOW, size, connections, tool))
                if predict and shadow:
                    parts.append(
                        f"shadow stage {shadow['rps'] / predict['rps']:.0%} of champion-only /predict, "
                        f"p99 {shadow['p99_ms']:.2f} ms vs {predict['p99_ms']:.2f}"
                    )
                if cold and floor:
                    parts.append(f"cache off {cold['rps'] / floor['rps']:.1%}")
                if predict and features:
                    parts.append(
                        f"/predict p99 {predict['p99_ms']:.2f} ms vs feast serve's 3 features {features['p99_ms']:.2f}"
                    )
                if cold and features:
                    parts.append(f"cache off p99 {cold['p99_ms']:.2f} ms")
                print(f"{size:>3} entities, {connections:>2} conns, {tool}: " + "; ".join(parts))


def _uptime() -> str:
    return (
        subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip().split("load average: ")[-1]
    )


def _memory_gib() -> int:
    with open("/proc/meminfo") as meminfo:
        kib = int(meminfo.readline().split()[1])
    return round(kib / 2**20)


if __name__ == "__main__":
    main()
