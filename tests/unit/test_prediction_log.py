"""The prediction log writer: column chunks in, parquet partitions out, nothing lost silently."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb

from serving.prediction_log import PredictionLog
from tests.waiting import until


def _chunk(start: int, n: int, **extra: list[object]) -> dict[str, list[object]]:
    return {
        "request_id": [f"r{start + i}" for i in range(n)],
        "served_at": [datetime(2026, 1, 1, tzinfo=UTC)] * n,
        "temp": [None] * n if start == 0 else [float(start + i) for i in range(n)],
        **extra,
    }


def _read(folder: Path, columns: str = "request_id, temp") -> list[tuple[object, ...]]:
    return duckdb.sql(
        f"SELECT {columns} FROM read_parquet('{folder}/**/*.parquet', "
        "union_by_name = true) ORDER BY request_id"
    ).fetchall()


def test_chunks_with_different_columns_and_all_null_columns_land_in_one_table(tmp_path: Path) -> None:
    written: list[int] = []
    log = PredictionLog(tmp_path, flush_seconds=60, on_written=written.append)
    log.start()
    log.append(_chunk(0, 2))  # temp all null: widens to the other chunks' float
    for start in range(2, 602, 3):  # more than one conversion step
        log.append(_chunk(start, 3, shadow_prediction=[0.5] * 3))
    log.close()
    rows = _read(tmp_path, "request_id, temp, shadow_prediction")
    assert len(rows) == 2 + 600 and sum(written) == 602
    assert rows[0] == ("r0", None, None) and ("r2", 2.0, 0.5) in rows
    assert len(list(tmp_path.rglob("*.parquet"))) == 1  # closed before the 60 s flush: one file
    assert not list(tmp_path.rglob(".*.tmp"))


def test_a_full_queue_drops_whole_chunks_and_counts_them(tmp_path: Path) -> None:
    dropped: list[tuple[str, int]] = []
    log = PredictionLog(tmp_path, max_queue=5, on_dropped=lambda reason, n: dropped.append((reason, n)))
    log.append(_chunk(1, 4))  # the writer is not started: rows wait in the queue
    log.append(_chunk(5, 4))
    assert dropped == [("queue_full", 4)]
    log.start()
    log.close()
    assert [r[0] for r in _read(tmp_path)] == ["r1", "r2", "r3", "r4"]


def test_an_unwritable_destination_spills_then_writes_when_it_is_back(tmp_path: Path) -> None:
    target = tmp_path / "log"
    target.write_text("a file where the log folder should be")  # mkdir fails: OSError
    dropped: list[tuple[str, int]] = []
    spilled: list[int] = []
    log = PredictionLog(
        target,
        flush_seconds=0.05,
        max_queue=6,
        on_dropped=lambda r, n: dropped.append((r, n)),
        on_spilled=spilled.append,
    )
    log.start()
    log.append(_chunk(1, 4))
    until(lambda: log.last_error is not None, timeout=10, what="the log's write error", interval=0.01)
    assert log.last_error is not None and "log" in log.last_error
    log.append(_chunk(5, 4))  # spilled 4 + 4 new > max_queue 6: the oldest chunk is dropped, counted
    until(lambda: dropped, timeout=10, what="the dropped chunk counted", interval=0.01)
    target.unlink()  # the destination is back
    log.close()
    assert [r[0] for r in _read(target)] == ["r5", "r6", "r7", "r8"]
    assert dropped == [("spill_full", 4)]  # every row written or counted
    assert spilled[0] == 4 and max(spilled) <= 6 and spilled[-1] == 0  # bounded, and emptied


def test_rows_still_unwritable_at_shutdown_are_counted(tmp_path: Path) -> None:
    target = tmp_path / "log"
    target.write_text("a file where the log folder should be")
    dropped: list[tuple[str, int]] = []
    log = PredictionLog(target, flush_seconds=60, on_dropped=lambda r, n: dropped.append((r, n)))
    log.start()
    log.append(_chunk(1, 3))
    log.close()
    assert dropped == [("unwritable_at_close", 3)] and log.last_error is not None


def test_rows_arrow_cannot_type_are_counted_and_the_writer_lives_on(tmp_path: Path) -> None:
    dropped: list[tuple[str, int]] = []
    log = PredictionLog(tmp_path, flush_seconds=60, on_dropped=lambda r, n: dropped.append((r, n)))
    log.start()
    log.append({"request_id": ["a", "b"], "temp": [1.0, "warm"]})  # mixed types in one column
    log.append(_chunk(1, 300))  # then enough good rows for a conversion step of their own
    log.close()
    assert ("unconvertible", 2) in dropped
    assert len(_read(tmp_path)) == 300


def test_values_that_do_not_fit_the_types_learned_earlier_are_kept_as_they_are() -> None:
    """Types are learned from earlier chunks to save inference; a later value that does not fit is
    inferred again, and a float is never truncated into an integer column."""
    from serving.prediction_log import _to_table

    types: dict[str, object] = {}
    first = _to_table([{"x": [1.5], "n": [1], "s": ["a"], "b": [True]}], types)  # type: ignore[arg-type]
    assert {"x", "s", "b"} <= set(types) and "n" not in types
    later = _to_table([{"x": ["text"], "n": [2.5], "s": [None], "b": [0.5]}], types)  # type: ignore[arg-type]
    assert later.to_pylist() == [{"x": "text", "n": 2.5, "s": None, "b": 0.5}]
    assert first.schema.field("x").type == "double" and later.schema.field("x").type == "string"


def test_flush_writes_what_was_appended_before_it_without_waiting_for_the_interval(tmp_path: Path) -> None:
    written: list[int] = []
    log = PredictionLog(tmp_path, flush_seconds=3600, on_written=written.append)
    log.start()
    assert log.flush()  # nothing queued: nothing written, no empty file
    assert not list(tmp_path.rglob("*.parquet"))
    log.append(_chunk(1, 3))
    assert log.flush(timeout=10)
    assert sum(written) == 3 and len(_read(tmp_path)) == 3
    log.close()
