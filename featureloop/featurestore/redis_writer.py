"""Writes into Feast's Redis online store in Feast's layout (a hash per entity key and project, a
murmur3-named field per feature, `_ts:<view>` holding the event time as a serialised Timestamp),
with Feast's rule that a stored entity as new or newer is left alone; and the pipelined round trips,
packed and parsed by hiredis, that these writes and serving's reads (serving/online_store.py) use.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa

from featureloop.featurestore.codec import (
    encode_entity_keys,
    encode_values,
    redis_feature_field,
    redis_time_field,
    varint,
)


def write_window(online: Any, config: Any, view: Any, batches: Iterable[pa.RecordBatch | pa.Table]) -> int:
    """Write a view's latest rows of a window (`batches`) through Feast's Redis store `online` of
    repo `config`: one hash per entity key (+ project) holding `_ts:<view>` (a Timestamp) and one
    murmur3-named field per feature. As Feast's writer does, an entity whose stored time is the
    same or newer is left alone (unless `skip_dedup`). Returns the number of entities written."""
    settings: Any = config.online_store
    client = online._get_client(settings)
    project = config.project.encode("utf8")
    ts_key = redis_time_field(view.name)
    source: Any = view.batch_source
    features = [
        (redis_feature_field(view.name, f.name), f.name, f.dtype.to_value_type()) for f in view.features
    ]
    written = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        keys = [
            k + project
            for k in encode_entity_keys(
                [(c.name, batch.column(c.name), c.dtype.to_value_type()) for c in view.entity_columns]
            )
        ]
        stamps, nanos = timestamp_protos(batch.column(source.timestamp_field))
        keep: list[int] | range = range(len(keys))
        if not settings.skip_dedup:
            previous = round_trips(client, [("HGET", key, ts_key) for key in keys])
            keep = [i for i, old in enumerate(previous) if old is None or nanos[i] > _timestamp_nanos(old)]
        encoded = [(field, encode_values(batch.column(name), vt)[0]) for field, name, vt in features]
        commands: list[tuple[Any, ...]] = []
        for i in keep:
            command: list[Any] = ["HSET", keys[i], ts_key, stamps[i]]
            for field, values in encoded:
                command += (field, values[i])
            commands.append(tuple(command))
            if settings.key_ttl_seconds:
                commands.append(("EXPIRE", keys[i], settings.key_ttl_seconds))
        round_trips(client, commands)
        written += len(keep)
    return written


def round_trips(client: Any, commands: list[tuple[Any, ...]], batch: int = 20_000) -> list[Any]:
    """Send commands pipelined on one of the client's connections and read their replies, packed and
    parsed by hiredis in C (redis-py's pipeline costs ~8 us a command in Python here). Commands go in
    chunks of `batch`, two chunks in flight: Redis works on one while the next is packed. A Redis
    error reply raises. (Serving's reads use it too: serving/online_store.py.)"""
    import hiredis

    pool = client.connection_pool
    connection = pool.get_connection()
    reader = hiredis.Reader()
    replies: list[Any] = []

    def read_until(count: int) -> None:
        while len(replies) < count:
            reply = reader.gets()
            if reply is False:  # no complete reply buffered yet
                data = connection._sock.recv(1 << 20)
                if not data:
                    raise ConnectionError("Redis closed the connection before answering")
                reader.feed(data)
            elif isinstance(reply, hiredis.ReplyError):
                raise RuntimeError(f"Redis answered an error: {reply}")
            else:
                replies.append(reply)

    try:
        sent = 0
        for start in range(0, len(commands), batch):
            chunk = commands[start : start + batch]
            connection.send_packed_command(
                [b"".join(hiredis.pack_command(c) for c in chunk)], check_health=False
            )
            read_until(sent)  # the previous chunk's replies, while Redis works on this one
            sent += len(chunk)
        read_until(sent)
    except BaseException:
        connection.disconnect()  # its stream position is unknown: never reuse it
        raise
    finally:
        pool.release(connection)
    return replies


def timestamp_protos(column: pa.Array) -> tuple[list[bytes], list[int]]:
    """Serialised google.protobuf.Timestamp of each time (microsecond precision, as Feast's
    `FromDatetime`), and the time in nanoseconds for comparisons. Field 1 (seconds) is encoded for the
    whole column at once (times from 1978 to 3058 need five varint bytes or fewer); other times,
    and field 2 (nanos) where present, one by one."""
    micros = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)
    seconds = micros // 1_000_000
    rest = micros - seconds * 1_000_000
    fast = (seconds >= 0) & (seconds < 2**35)
    width = 1 + sum((seconds >= 2 ** (7 * k)).astype(np.int64) for k in range(1, 5))
    buffer = np.zeros((len(seconds), 6), dtype=np.uint8)
    buffer[:, 0] = 0x08
    for k in range(5):
        more = (width > k + 1).astype(np.uint8) * 0x80
        buffer[:, k + 1] = ((seconds >> (7 * k)) & 0x7F).astype(np.uint8) | more
    raw = buffer.tobytes()
    ends = (width + 1).tolist()
    protos = [raw[6 * i : 6 * i + end] for i, end in enumerate(ends)]
    for i in np.flatnonzero(~fast | (seconds == 0) | (rest != 0)).tolist():
        sec, nano = int(seconds[i]), int(rest[i]) * 1000
        protos[i] = (b"\x08" + varint(sec) if sec else b"") + (b"\x10" + varint(nano) if nano else b"")
    # In Python integers: nanoseconds past 2262 overflow int64.
    nanos = [sec * 1_000_000_000 + us * 1000 for sec, us in zip(seconds.tolist(), rest.tolist(), strict=True)]
    return protos, nanos


def _timestamp_nanos(data: bytes) -> int:
    """Nanoseconds of a serialised Timestamp (fields 1 and 2, varints)."""
    from google.protobuf.timestamp_pb2 import Timestamp

    stamp = Timestamp()
    stamp.ParseFromString(data)
    return int(stamp.seconds) * 1_000_000_000 + int(stamp.nanos)
