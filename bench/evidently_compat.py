"""Our Evidently-compatible statistics beside Evidently 0.7.23's own stat tests, column by column.

Usage:
    uv sync --frozen --group dev --group bench    # Evidently is a benchmark-only dependency
    .venv/bin/python bench/evidently_compat.py [--offline data/offline] [--no-real]
    .venv/bin/python bench/evidently_compat.py --no-real \
        --write-golden tests/unit/golden/evidently_compat_cases.json

Frames: the generated cases of `tests/unit/evidently_cases.py` (low-cardinality numerics, unseen
categories, empty bins, small windows, nulls and infinities), and real ones from the prepared
offline data (`featureloop prepare`): every feature column of the flights, weather and rolling-
statistics tables, two months (2013-01-01 to 2013-03-01) as reference against a later week
(2013-06-03 to 2013-06-10) and against that week's first 60 rows. Each pair is cleaned as Evidently's
column drift cleans it (NaN and +-inf dropped); then Evidently's registered stat test and ours score
it. Prints the largest absolute difference per statistic and where it occurs. `--write-golden`
stores Evidently's scores on the generated cases for the unit tests, which run without Evidently.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.unit.evidently_cases import (  # noqa: E402  (the cases the unit tests pin)
    Case,
    evidently_score,
    generated_cases,
    our_score,
)

REFERENCE = ("2013-01-01", "2013-03-01")
CURRENT = ("2013-06-03", "2013-06-10")
SMALL_WINDOW = 60
TABLES = {  # table: (time column, categorical columns); every other non-key column is numeric
    "flights": ("sched_dep_ts", ["carrier", "origin", "dest", "route", "tailnum", "cancelled"]),
    "weather": ("event_timestamp", ["origin"]),
    "origin_stats": ("event_timestamp", ["origin"]),
    "carrier_stats": ("event_timestamp", ["carrier"]),
    "route_stats": ("event_timestamp", ["route"]),
    "aircraft_stats": ("event_timestamp", ["tailnum"]),
}
NOT_FEATURES = {"flight_id", "outcome_known_ts"}


def real_cases(offline: Path) -> list[Case]:
    """Reference months against a later week and against its first rows, per feature column."""
    cases = []
    for table, (time_column, categorical) in TABLES.items():
        frame = pd.read_parquet(offline / f"{table}.parquet").sort_values(time_column, kind="stable")
        times = frame[time_column]
        ref = frame[
            (times >= pd.Timestamp(REFERENCE[0], tz="UTC")) & (times < pd.Timestamp(REFERENCE[1], tz="UTC"))
        ]
        cur = frame[
            (times >= pd.Timestamp(CURRENT[0], tz="UTC")) & (times < pd.Timestamp(CURRENT[1], tz="UTC"))
        ]
        for column in frame.columns:
            if column in NOT_FEATURES or column == time_column:
                continue
            kind = "categorical" if column in categorical else "numeric"
            for label, window in (("week", cur), (f"first {SMALL_WINDOW}", cur.head(SMALL_WINDOW))):
                name = f"{table}.{column} ({label})"
                pair = ref[column].reset_index(drop=True), window[column].reset_index(drop=True)
                if pair[0].dropna().empty or pair[1].dropna().empty:
                    continue  # Evidently refuses an empty column
                cases.append(Case(name, kind, *pair))  # type: ignore[arg-type]
    return cases


def differences(cases: list[Case]) -> dict[str, list[Any]]:
    """Per kind and statistic: the largest absolute difference between ours and Evidently's, where,
    how many pairs agree bit for bit, and how many there are."""
    found: dict[str, list[Any]] = {}
    for case in cases:
        for name in case.stats:
            ours, theirs = our_score(case, name), evidently_score(case, name)
            diff = abs(ours - theirs) if ours != theirs else 0.0  # inf == inf
            worst = found.setdefault(f"{case.kind} {name}", [0.0, "", 0, 0])
            if not diff <= worst[0]:  # NaN counts as the worst
                worst[:2] = diff, case.name
            worst[2] += ours == theirs
            worst[3] += 1
    return found


def _print(title: str, found: dict[str, list[Any]]) -> None:
    print(title)
    for key, (diff, where, same, pairs) in found.items():
        at = f" at {where}" if diff else ""
        print(f"  {key:<25} max |ours - Evidently| = {diff:<9.3g} identical in {same}/{pairs}{at}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--offline", type=Path, default=ROOT / "data" / "offline")
    parser.add_argument("--no-real", action="store_true", help="only the generated cases")
    parser.add_argument("--write-golden", type=Path, help="write Evidently's scores on the generated cases")
    args = parser.parse_args()
    import evidently

    generated = generated_cases()
    if args.write_golden:
        golden = {
            "produced_by": "bench/evidently_compat.py --write-golden, cases of tests/unit/evidently_cases.py",
            "evidently": evidently.__version__,
            "cases": {c.name: {s: evidently_score(c, s) for s in c.stats} for c in generated},
        }
        args.write_golden.write_text(json.dumps(golden, indent=1) + "\n")
        print(f"wrote {args.write_golden}")
    _print(f"generated cases ({len(generated)}), Evidently {evidently.__version__}", differences(generated))
    if not args.no_real:
        real = real_cases(args.offline)
        _print(f"real columns ({len(real)} pairs from {args.offline})", differences(real))


if __name__ == "__main__":
    main()
