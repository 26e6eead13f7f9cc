"""The prediction log: every served row, appended in batches to parquet partitions, never blocking.

Requests put rows on a bounded in-memory queue and return; one writer thread drains it every
`flush_seconds` into `<dir>/date=YYYY-MM-DD/part-<ms>-<uuid>.parquet` (written to a hidden temporary
name, then renamed, so readers never see a partial file). What a crash can lose is bounded: the rows
of at most `flush_seconds` plus what sits in the queue. When the destination is unwritable, rows wait
in a bounded spill buffer and are retried; anything that cannot be kept is counted, never silent.
DuckDB reads the log with `read_parquet('<dir>/**/*.parquet', union_by_name = true)`.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

logger = logging.getLogger(__name__)
_STOP = object()


class _Flush:
    """A request to write everything queued before it now, and to say when that is done."""

    def __init__(self) -> None:
        self.done = threading.Event()


CONVERT_ROWS = 256
# ...or this many chunks, whichever comes first: chunks waiting are container objects that every
# young garbage collection scans (256 one-row chunks made those collections the p99 at one connection).
CONVERT_CHUNKS = 64


Chunk = dict[str, list[Any]]


class PredictionLog:
    """A non-blocking, batched, crash-bounded writer of served rows (appended as column chunks)."""

    def __init__(
        self,
        folder: Path,
        *,
        flush_seconds: float = 1.0,
        max_queue: int = 100_000,
        on_written: Callable[[int], None] = lambda _n: None,
        on_dropped: Callable[[str, int], None] = lambda _reason, _n: None,
        on_spilled: Callable[[int], None] = lambda _n: None,
    ) -> None:
        self.folder = folder
        self.flush_seconds = flush_seconds
        self.max_queue = max_queue
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._queued_rows = 0
        self._lock = threading.Lock()
        self._spill: list[pa.Table] = []
        self._on_written = on_written
        self._on_dropped = on_dropped
        self._on_spilled = on_spilled
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self.last_error: str | None = None
        self._types: dict[str, pa.DataType] = {}  # column -> the Arrow type its values had

    def start(self) -> None:
        self._thread.start()

    def append(self, columns: Chunk) -> None:
        """Queue a chunk of rows (equal-length columns) for writing; never blocks. When `max_queue`
        rows already wait, the chunk is dropped and counted."""
        n = len(next(iter(columns.values()), []))
        with self._lock:
            if self._queued_rows + n > self.max_queue:
                full = True
            else:
                full = False
                self._queued_rows += n
        if full:
            self._on_dropped("queue_full", n)
            return
        self._queue.put((columns, n))

    def flush(self, timeout: float = 30.0) -> bool:
        """Write every row appended before this call now (not at the next `flush_seconds`); True
        once they are written (or held in the spill, if the destination is unwritable)."""
        if not self._thread.is_alive():
            return False
        request = _Flush()
        self._queue.put(request)
        return request.done.wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Flush everything queued and stop the writer."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    def _run(self) -> None:
        pending: list[Chunk] = []  # Python chunks not yet converted
        pending_rows = 0
        tables: list[pa.Table] = []  # converted, waiting for the next file
        deadline = time.monotonic() + self.flush_seconds
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                item = None
            if isinstance(item, _Flush):
                if pending:
                    tables.extend(self._convert(pending))
                pending, pending_rows = [], 0
                self._flush(tables)
                tables = []
                item.done.set()
                continue
            if item is not None and item is not _STOP:
                chunk, n = item
                pending.append(chunk)
                pending_rows += n
                with self._lock:
                    self._queued_rows -= n
            # Convert to Arrow in small steps: one conversion holds the GIL, and a whole second of
            # traffic at once paused requests for tens of milliseconds; a few hundred rows do not.
            if pending and (
                pending_rows >= CONVERT_ROWS
                or len(pending) >= CONVERT_CHUNKS
                or item is None
                or item is _STOP
            ):
                tables.extend(self._convert(pending))
                pending, pending_rows = [], 0
            if item is _STOP:
                self._flush(tables)
                lost = sum(t.num_rows for t in self._spill)
                if lost:  # still unwritable at shutdown: say so, and count them
                    logger.error("prediction log: %d rows could not be written before shutdown", lost)
                    self._on_dropped("unwritable_at_close", lost)
                    self._spill = []
                    self._on_spilled(0)
                return
            if time.monotonic() >= deadline:
                self._flush(tables)
                tables = []
                deadline = time.monotonic() + self.flush_seconds

    def _convert(self, chunks: list[Chunk]) -> list[pa.Table]:
        """Chunks as one Arrow table; if Arrow cannot type them together, chunk by chunk, and a chunk
        it cannot type at all is dropped and counted (the writer lives on)."""
        try:
            return [_to_table(chunks, self._types)]
        except (pa.ArrowException, TypeError, ValueError):
            tables = []
            for chunk in chunks:
                try:
                    tables.append(_to_table([chunk], self._types))
                except (pa.ArrowException, TypeError, ValueError) as exc:
                    logger.warning(
                        "prediction log: dropping %d rows: %s: %s", _length(chunk), type(exc).__name__, exc
                    )
                    self._on_dropped("unconvertible", _length(chunk))
            return tables

    def _flush(self, tables: list[pa.Table]) -> None:
        tables = self._spill + tables
        if not tables:
            return
        rows = sum(t.num_rows for t in tables)
        try:
            self._write(tables)
        except Exception as exc:  # unwritable, or data Arrow cannot combine: keep, retry, count
            self.last_error = f"{type(exc).__name__}: {exc}"
            logger.warning("prediction log unwritable (%s); keeping %d rows to retry", self.last_error, rows)
            # Keep the newest rows up to `max_queue`; count what cannot be kept.
            while rows > self.max_queue and tables:
                dropped = tables.pop(0).num_rows
                rows -= dropped
                self._on_dropped("spill_full", dropped)
            self._spill = tables
            self._on_spilled(rows)
            return
        if self._spill:
            self._on_spilled(0)
        self._spill = []
        self.last_error = None
        self._on_written(rows)

    def _write(self, tables: list[pa.Table]) -> None:
        # An all-null column of one table widens to the others' type.
        table = pa.concat_tables(tables, promote_options="permissive")
        now = datetime.now(UTC)
        partition = self.folder / f"date={now:%Y-%m-%d}"
        partition.mkdir(parents=True, exist_ok=True)
        name = f"part-{int(now.timestamp() * 1000)}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = partition / f".{name}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, partition / name)


def _to_table(chunks: list[Chunk], types: dict[str, pa.DataType]) -> pa.Table:
    """One Arrow table of several chunks; a column that some chunks lack (shadow scores) is null there.

    Each column is converted with the type its values had before (`types`, learned here): a fraction
    of the cost of letting Arrow infer it, and the conversion holds the GIL (a request arriving
    meanwhile waits; figures in bench/README.md, serving). Values that do not fit that type are
    inferred again. Integer types are never learned: Arrow would truncate a float into them, silently."""
    names = list(dict.fromkeys(name for chunk in chunks for name in chunk))
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for chunk in chunks:
        n = _length(chunk)
        for name, column in columns.items():
            column.extend(chunk.get(name) or [None] * n)
    arrays = []
    for name, column in columns.items():
        known = types.get(name)
        array = None
        if known is not None:
            try:
                array = pa.array(column, type=known)
            except (pa.ArrowException, TypeError, ValueError):
                array = None
        if array is None:
            array = pa.array(column)
            if not (pa.types.is_null(array.type) or pa.types.is_integer(array.type)):
                types[name] = array.type
        arrays.append(array)
    return pa.Table.from_arrays(arrays, names=names)


def _length(chunk: Chunk) -> int:
    return len(next(iter(chunk.values()), []))
