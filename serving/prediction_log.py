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

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

logger = logging.getLogger(__name__)
_STOP = object()


class PredictionLog:
    """A non-blocking, batched, crash-bounded writer of served rows."""

    def __init__(
        self,
        folder: Path,
        *,
        flush_seconds: float = 1.0,
        max_queue: int = 100_000,
        on_written: Callable[[int], None] = lambda _n: None,
        on_dropped: Callable[[str, int], None] = lambda _reason, _n: None,
    ) -> None:
        self.folder = folder
        self.flush_seconds = flush_seconds
        self.max_queue = max_queue
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._spill: list[dict[str, Any]] = []
        self._on_written = on_written
        self._on_dropped = on_dropped
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def append(self, rows: list[dict[str, Any]]) -> None:
        """Queue rows for writing; never blocks (a full queue drops and counts)."""
        for row in rows:
            try:
                self._queue.put_nowait(row)
            except queue.Full:
                self._on_dropped("queue_full", 1)

    def close(self, timeout: float = 30.0) -> None:
        """Flush everything queued and stop the writer."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    def _run(self) -> None:
        batch: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.flush_seconds
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                item = None
            if item is _STOP:
                self._flush(batch)
                return
            if item is not None:
                batch.append(item)
            if time.monotonic() >= deadline:
                self._flush(batch)
                batch = []
                deadline = time.monotonic() + self.flush_seconds

    def _flush(self, batch: list[dict[str, Any]]) -> None:
        rows = self._spill + batch
        if not rows:
            return
        try:
            self._write(rows)
        except OSError as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            logger.warning(
                "prediction log unwritable (%s); keeping %d rows to retry", self.last_error, len(rows)
            )
            overflow = len(rows) - self.max_queue
            if overflow > 0:
                self._on_dropped("spill_full", overflow)
                rows = rows[overflow:]
            self._spill = rows
            return
        self._spill = []
        self.last_error = None
        self._on_written(len(rows))

    def _write(self, rows: list[dict[str, Any]]) -> None:
        frame = pd.DataFrame(rows)
        now = datetime.now(UTC)
        partition = self.folder / f"date={now:%Y-%m-%d}"
        partition.mkdir(parents=True, exist_ok=True)
        name = f"part-{int(now.timestamp() * 1000)}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = partition / f".{name}.tmp"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp)
        os.replace(tmp, partition / name)
