"""Feast's online-store bytes, written and read by us exactly as Feast writes and reads them.

- Values: a feature value is stored as a serialised `ValueProto`. `encode_values` writes a whole
  column of them (and the `value_text` Feast stores beside each) for the materialisation engine and
  the replay's feed; `decode_value` reads one back to the Python value `get_online_features` gives,
  and `json_value` to what Feast's feature server writes in its JSON.
- Entity keys: Feast's serialisation version 3 (the number of join keys, each key's name, sorted,
  then each value with its type and length), for a column of keys (`encode_entity_keys`, the
  writers) and one key at a time (`entity_key_encoder`, serving's reads). String and int64 join keys;
  anything else is left to Feast.
- Names: a view's table in the SQLite store, and its fields in a Redis hash.

Feast itself is imported only where a function needs it (whoever holds a Feast `ValueType` has it
loaded already), so serving can import this module without paying for Feast's import.
Tested byte for byte against Feast (tests/integration/test_feast_engine.py, test_serving.py).
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa
    from feast.value_type import ValueType

Encoded = tuple[list[bytes], list[str | None]]

# Feast's ValueType numbers, written into every serialised entity key.
STRING_TYPE, INT64_TYPE = 2, 4


def varint(value: int) -> bytes:
    """Protobuf varint of a signed 64-bit integer (negative numbers as their two's complement)."""
    value &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    """The protobuf varint starting at `at`, and where the next field starts."""
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


# Values: written a column at a time.


def _fixed(tag: int, values: np.ndarray, fmt: str) -> list[bytes]:
    """`tag` + little-endian fixed-width value, for every element (one buffer, then sliced)."""
    width = np.dtype(fmt).itemsize + 1
    buffer = np.empty(len(values), dtype=[("tag", "u1"), ("value", fmt)])
    buffer["tag"], buffer["value"] = tag, values
    raw = buffer.tobytes()
    return [raw[i : i + width] for i in range(0, len(raw), width)]


def _encode_double(column: pa.Array, fmt: str, tag: int) -> Encoded:
    values = column.to_numpy(zero_copy_only=False).astype(float)
    missing = np.isnan(values)  # nulls arrive as NaN; Feast writes NaN as an empty value too
    stored = values.astype(np.dtype(fmt))
    encoded = _fixed(tag, stored, fmt)
    texts: list[str | None] = [str(x) for x in stored.astype(float).tolist()]
    for i in np.flatnonzero(missing).tolist():
        encoded[i], texts[i] = b"", None
    return encoded, texts


def _encode_int(column: pa.Array, tag: int) -> Encoded:
    values = column.to_numpy(zero_copy_only=False).tolist()
    memo: dict[Any, tuple[bytes, str | None]] = {}  # feature values repeat (counts, codes): encode each once
    encoded: list[bytes] = []
    texts: list[str | None] = []
    for x in values:
        found = memo.get(x)
        if found is None:
            if x is None or (isinstance(x, float) and x != x):
                found = (b"", None)
            else:
                found = (bytes((tag,)) + varint(int(x)), str(int(x)))
            if x == x:  # NaN is never equal to itself: do not memoise it under a key that never matches
                memo[x] = found
        encoded.append(found[0])
        texts.append(found[1])
    return encoded, texts


def _encode_string(column: pa.Array) -> Encoded:
    memo: dict[str | None, bytes] = {None: b""}
    encoded: list[bytes] = []
    texts: list[str | None] = column.to_pylist()
    for x in texts:
        found = memo.get(x)
        if found is None:
            data = x.encode("utf8")  # type: ignore[union-attr]
            found = memo[x] = b"\x12" + varint(len(data)) + data
        encoded.append(found)
    return encoded, texts


def _encode_bool(column: pa.Array) -> Encoded:
    encoded: list[bytes] = []
    texts: list[str | None] = []
    for x in column.to_pylist():
        if x is None:
            encoded.append(b"")
            texts.append(None)
        else:
            encoded.append(b"\x38\x01" if x else b"\x38\x00")
            texts.append(str(bool(x)))
    return encoded, texts


@functools.cache
def _encoders() -> dict[ValueType, Callable[[pa.Array], Encoded]]:
    from feast.value_type import ValueType

    return {
        ValueType.DOUBLE: lambda c: _encode_double(c, "<f8", 0x29),
        ValueType.FLOAT: lambda c: _encode_double(c, "<f4", 0x35),
        ValueType.INT64: lambda c: _encode_int(c, 0x20),
        ValueType.INT32: lambda c: _encode_int(c, 0x18),
        ValueType.STRING: _encode_string,
        ValueType.BOOL: _encode_bool,
    }


def can_encode_values(value_type: ValueType) -> bool:
    """Whether `encode_values` writes this type (others are left to Feast's own engine)."""
    return value_type in _encoders()


def encode_values(column: pa.Array, value_type: ValueType) -> Encoded:
    """The `value` bytes (a serialised ValueProto) and `value_text` Feast writes for each element."""
    return _encoders()[value_type](column)


# Values: read one at a time.

_NOT_COMMON = object()


def _common_scalar(data: bytes) -> Any:
    """The value of a double, int64, int32, string or bool ValueProto, or _NOT_COMMON."""
    tag = data[0]
    if tag == 0x29 and len(data) == 9:  # double_val
        return struct.unpack_from("<d", data, 1)[0]
    if tag in (0x20, 0x18):  # int64_val, int32_val (negative: 64-bit two's complement)
        value, end = _read_varint(data, 1)
        if end == len(data):
            return value - (1 << 64) if value >= 1 << 63 else value
    elif tag == 0x12:  # string_val
        length, start = _read_varint(data, 1)
        if start + length == len(data):
            return data[start:].decode("utf8")
    elif tag == 0x38 and len(data) == 2:  # bool_val
        return bool(data[1])
    return _NOT_COMMON


def decode_value(data: bytes | None) -> Any:
    """The Python value of a serialised ValueProto, as `feast_value_type_to_python_type` gives it
    (None for an empty one), for the scalar types; anything else through protobuf."""
    if not data:
        return None
    value = _common_scalar(data)
    if value is not _NOT_COMMON:
        return value
    if data[0] == 0x35 and len(data) == 5:  # float_val
        return struct.unpack_from("<f", data, 1)[0]
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import feast_value_type_to_python_type

    proto = Value()
    proto.ParseFromString(data)
    return feast_value_type_to_python_type(proto)


def json_value(data: bytes | None) -> Any:
    """What Feast's feature server writes for a stored ValueProto (`_value_to_native`): None for an
    empty one, the scalar itself, a non-finite double as "NaN"/"Infinity"/"-Infinity"; the
    common scalars decoded here, the rest through protobuf and Feast's own conversion."""
    if not data:
        return None
    value = _common_scalar(data)
    if value is not _NOT_COMMON and not (type(value) is float and not math.isfinite(value)):
        return value
    from feast.feature_server_utils import _value_to_native
    from feast.protos.feast.types.Value_pb2 import Value

    proto = Value()
    proto.ParseFromString(data)
    return _value_to_native(proto)


# Entity keys.


def can_encode_key(value_type: ValueType) -> bool:
    """Whether entity keys of this join-key type are serialised here (string and int64)."""
    return value_type.value in (STRING_TYPE, INT64_TYPE)


def _key_head(names: list[str]) -> bytes:
    """What every serialised key of these join keys (sorted) starts with: their number and names."""
    return struct.pack("<I", len(names)) + b"".join(
        struct.pack("<II", STRING_TYPE, len(n.encode())) + n.encode() for n in names
    )


_INT64_HEAD = struct.pack("<II", INT64_TYPE, 8)  # an int64 value's type and length


def entity_key_encoder(names: list[str], value_types: list[Any]) -> Callable[[tuple[Any, ...]], bytes] | None:
    """Feast's serialised entity key of one tuple of join-key values, for string and int64 join keys
    given in Feast's (sorted) order (what `encode_entity_keys` writes for a column); None for other
    types."""
    if not all(can_encode_key(t) for t in value_types):
        return None
    head = _key_head(names)
    strings = [t.value == STRING_TYPE for t in value_types]
    if strings == [True]:

        def one_string(key: tuple[Any, ...]) -> bytes:
            raw = key[0].encode("utf8")
            return head + struct.pack("<II", STRING_TYPE, len(raw)) + raw

        return one_string

    def encode(key: tuple[Any, ...]) -> bytes:
        parts = [head]
        for value, is_string in zip(key, strings, strict=True):
            if is_string:
                raw = value.encode("utf8")
                parts.append(struct.pack("<II", STRING_TYPE, len(raw)) + raw)
            else:
                parts.append(_INT64_HEAD + struct.pack("<q", value))
        return b"".join(parts)

    return encode


def encode_entity_keys(columns: list[tuple[str, pa.Array, ValueType]]) -> list[bytes]:
    """Feast's serialised entity key of each row of (join key, column, type) columns, given in any
    order, built a column at a time."""
    columns = sorted(columns, key=lambda c: c[0])
    head = _key_head([name for name, _, _ in columns])
    parts: list[list[bytes]] = []
    for name, column, value_type in columns:
        if column.null_count:
            raise ValueError(f"join key {name!r} is null in {column.null_count} rows: an entity needs a key")
        if not can_encode_key(value_type):
            raise ValueError(f"join key {name!r} is a {value_type.name}: only strings and int64 are encoded")
        if value_type.value == STRING_TYPE:
            raw = [str(x).encode("utf8") for x in column.to_pylist()]
            parts.append([struct.pack("<II", STRING_TYPE, len(b)) + b for b in raw])
        else:
            parts.append([_INT64_HEAD + struct.pack("<q", int(x)) for x in column.to_pylist()])
    return [head + b"".join(row) for row in zip(*parts, strict=True)]


# Names.


def sqlite_table(project: str, view: Any) -> str:
    """The quoted name of a view's table in Feast's SQLite online store (Feast's own naming)."""
    from feast.infra.online_stores.sqlite import _quote_id, _table_id

    return str(_quote_id(_table_id(project, view, False)))


def redis_feature_field(view_name: str, feature: str) -> bytes:
    """A feature's field in an entity's Redis hash (Feast's murmur3 of `view:feature`)."""
    from feast.infra.online_stores.helpers import _mmh3

    return bytes(_mmh3(f"{view_name}:{feature}"))


def redis_time_field(view_name: str) -> bytes:
    """The field of a view's event time (a serialised Timestamp) in an entity's Redis hash."""
    return f"_ts:{view_name}".encode()
