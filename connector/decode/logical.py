"""Avro logical types as the values Personalize takes, decided once per writer schema.

fastavro turns logical types into Python objects (UUID, Decimal, date, time, datetime) that neither
the id fields nor the JSON `properties` of PutEvents/PutItems/PutUsers accept. The writer schema's
annotation decides what fastavro returns (the reader's is ignored), so `api_logical_types` rewrites
the writer schema once, when it is fetched: each logical type that needs another value gets a
`pkc-` logical type of ours, read by a function registered through fastavro's documented extension
point (`fastavro.read.LOGICAL_READERS`, keyed "<avro type>-<logical type>"). The conversion then
happens inside fastavro's read, with no second pass over the record, and a schema without such
types (the canonical one) is decoded exactly as before.

| Avro logical type | value handed to the mapper |
|---|---|
| uuid (string) | the string as written |
| uuid (fixed 16, Avro 1.12) | its canonical text, "8-4-4-4-12" lowercase hex |
| decimal (bytes, fixed) | an int when the value is integral, else the nearest float (about 15-17 significant digits) |
| date | ISO 8601 text, "2024-05-01" |
| time-millis / time-micros | ISO 8601 text, "13:45:30.123" / "13:45:30.123456" |
| timestamp-millis / -micros | fastavro's aware UTC datetime (unchanged) |
| local-timestamp-millis / -micros | fastavro's naive datetime (unchanged), taken as UTC by the mapper |
| timestamp-nanos / local-timestamp-nanos (Avro 1.12) | a UTC datetime, truncated to microseconds |
| duration (fixed 12) | ISO 8601 duration text, "P1M2DT3.004S" |

Datetimes stay datetimes because `sentAt` needs the instant; the mapper writes them into ids and
`properties` as epoch milliseconds (connector.destinations.fields.api_json_value).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import fastavro.read

from connector.records import DecodeError

PREFIX = "pkc-"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_MAX_DATE_DAYS = dt.date.max.toordinal() - _EPOCH_ORDINAL
_MIN_DATE_DAYS = dt.date.min.toordinal() - _EPOCH_ORDINAL
MILLIS_PER_DAY = 86_400_000


def _invalid(logical_type: str, data: Any, why: str) -> DecodeError:
    return DecodeError(f"{logical_type} value {data!r:.60} {why}", error_class="InvalidLogicalValue")


def _decimal(data: bytes, writer: dict[str, Any], _reader: Any) -> int | float:
    # Avro: the unscaled value as a big-endian two's-complement integer; value = unscaled * 10**-scale.
    unscaled = int.from_bytes(data, "big", signed=True)
    scale: int = writer.get("scale", 0)
    divisor: int = 10**scale  # (int ** int is typed Any: a negative exponent gives a float)
    whole, fraction = divmod(unscaled, divisor)
    # int / int is correctly rounded in Python, however many digits the unscaled value has.
    return whole if fraction == 0 else unscaled / divisor


def _date(data: int, _writer: Any, _reader: Any) -> str:
    if not _MIN_DATE_DAYS <= data <= _MAX_DATE_DAYS:
        raise _invalid("date", data, "days from 1970-01-01 is outside years 1..9999")
    return dt.date.fromordinal(_EPOCH_ORDINAL + data).isoformat()


def _time_of_day(data: int, per_second: int, digits: int, name: str) -> str:
    if not 0 <= data < MILLIS_PER_DAY // 1000 * per_second:
        raise _invalid(name, data, "is not a time of day (0 up to 24:00 exclusive)")
    seconds, fraction = divmod(data, per_second)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{hour:02d}:{minute:02d}:{second:02d}.{fraction:0{digits}d}"


def _time_millis(data: int, _writer: Any, _reader: Any) -> str:
    return _time_of_day(data, 1000, 3, "time-millis")


def _time_micros(data: int, _writer: Any, _reader: Any) -> str:
    return _time_of_day(data, 1_000_000, 6, "time-micros")


def _timestamp_nanos(data: int, _writer: Any, _reader: Any) -> dt.datetime:
    try:
        return EPOCH + dt.timedelta(microseconds=data // 1000)
    except OverflowError:
        raise _invalid("timestamp-nanos", data, "is outside years 1..9999") from None


def _fixed_uuid(data: bytes, _writer: Any, _reader: Any) -> str:
    return str(uuid.UUID(bytes=data))


def _duration(data: bytes, _writer: Any, _reader: Any) -> str:
    # Avro: three little-endian unsigned 32-bit integers, months, days, milliseconds.
    months, days, millis = (int.from_bytes(data[i:i + 4], "little") for i in (0, 4, 8))
    text = "P" + (f"{months}M" if months else "") + (f"{days}D" if days else "")
    if millis or text == "P":
        seconds, ms = divmod(millis, 1000)
        text += f"T{seconds}.{ms:03d}S" if ms else f"T{seconds}S"
    return text


Reader = Callable[[Any, Any, Any], Any]
# (Avro type, logical type) -> the reader of our `pkc-` logical type, or None: drop the annotation
# because the plain Avro value is already the API's (a uuid string).
_CONVERSIONS: dict[tuple[str, str], Reader | None] = {
    ("string", "uuid"): None,
    ("fixed", "uuid"): _fixed_uuid,
    ("bytes", "decimal"): _decimal,
    ("fixed", "decimal"): _decimal,
    ("int", "date"): _date,
    ("int", "time-millis"): _time_millis,
    ("long", "time-micros"): _time_micros,
    ("long", "timestamp-nanos"): _timestamp_nanos,
    ("long", "local-timestamp-nanos"): _timestamp_nanos,
    ("fixed", "duration"): _duration,
}
for (_avro_type, _logical_type), _reader in _CONVERSIONS.items():
    if _reader is not None:
        fastavro.read.LOGICAL_READERS[f"{_avro_type}-{PREFIX}{_logical_type}"] = _reader


def api_logical_types(schema: Any) -> Any:
    """A copy of the schema (JSON form, or fastavro-parsed) whose logical types read as API values.

    An annotation we cannot convert safely (a decimal without a valid scale, a duration that is not
    fixed 12) is left as it is, for fastavro to read or reject as before.
    """
    if isinstance(schema, list):
        return [api_logical_types(branch) for branch in schema]
    if not isinstance(schema, dict):
        return schema
    # fastavro's bookkeeping keys go: the copy is parsed again, and must be parsed, not trusted.
    out = {key: _rewrite_member(key, value) for key, value in schema.items() if not key.startswith("__")}
    logical_type, avro_type = out.get("logicalType"), out.get("type")
    if not isinstance(logical_type, str) or not isinstance(avro_type, str):
        return out
    key = (avro_type, logical_type)
    if key not in _CONVERSIONS or not _convertible(out, key):
        return out
    if _CONVERSIONS[key] is None:
        del out["logicalType"]
    else:
        out["logicalType"] = PREFIX + logical_type
    return out


def _rewrite_member(key: str, value: Any) -> Any:
    if key in ("type", "items", "values"):
        return api_logical_types(value)
    if key == "fields" and isinstance(value, list):
        return [{**f, "type": api_logical_types(f.get("type"))} if isinstance(f, dict) else f for f in value]
    return value


def _convertible(schema: dict[str, Any], key: tuple[str, str]) -> bool:
    avro_type, logical_type = key
    if logical_type == "decimal":
        scale = schema.get("scale", 0)
        return isinstance(scale, int) and not isinstance(scale, bool) and scale >= 0
    if avro_type == "fixed":
        return schema.get("size") == {"uuid": 16, "duration": 12}.get(logical_type)
    return True
