"""How deep a decoded value can nest, bounded before fastavro reads it.

fastavro's C reader recurses on the C stack once per nested record, array or map, without any
limit: a recursive writer schema (a record that contains itself, e.g. a linked list) and a value a
few thousand levels deep (~20 KB) overflow the stack, and the process dies with SIGSEGV before a
line is logged; after a restart it reads the same record and dies again. Python code after it
(json.dumps of properties, repr in a log line) has its own recursion limit too.

So each writer schema's static nesting depth is computed once, when it is fetched. A schema that
cannot nest deeper than the bound (every schema without recursion, in practice) costs nothing per
record. For the others, each record is first walked here, in Python, with an explicit depth count,
and one nested deeper than the bound is a DecodeError of class NestingTooDeep: dead-lettered, the
worker goes on. Depth counts containers: the top-level record is 1, each record, array or map
inside it one more (a union adds nothing; it holds one value).
"""

from __future__ import annotations

import math
from typing import Any

from connector.records import DecodeError

Schema = Any  # a fastavro-parsed schema or one of its parts
PRIMITIVE_SIZES: dict[str, int | None] = {  # None: variable length (varint or length-prefixed)
    "null": 0, "boolean": 1, "float": 4, "double": 8, "int": None, "long": None, "bytes": None, "string": None,
}
_CONTAINERS = ("record", "error", "array", "map")


def static_depth(schema: dict[str, Any]) -> float:
    """The deepest nesting any value of this parsed schema can have; math.inf when it is recursive."""
    named: dict[str, Any] = schema.get("__named_schemas", {})
    memo: dict[str, float] = {}
    expanding: set[str] = set()

    def depth(s: Schema) -> float:
        if isinstance(s, str):
            if s in PRIMITIVE_SIZES or s not in named:
                return 0
            if s in expanding:
                return math.inf  # a named type inside itself
            if s not in memo:
                expanding.add(s)
                memo[s] = depth(named[s])
                expanding.discard(s)
            return memo[s]
        if isinstance(s, list):
            return max((depth(branch) for branch in s), default=0)
        if not isinstance(s, dict):
            return 0
        kind = s.get("type")
        if kind in ("record", "error"):
            name = s.get("name")
            if isinstance(name, str) and name in expanding:
                return math.inf
            if isinstance(name, str):
                expanding.add(name)
            inner = max((depth(f.get("type")) for f in s.get("fields", [])), default=0)
            if isinstance(name, str):
                expanding.discard(name)
            return 1 + inner
        if kind == "array":
            return 1 + depth(s.get("items"))
        if kind == "map":
            return 1 + depth(s.get("values"))
        if isinstance(kind, dict | list) or (isinstance(kind, str) and kind in named):
            return depth(kind)
        return 0

    try:
        return depth(schema)
    except RecursionError:  # a schema nested deeper than Python recurses is deep enough to scan
        return math.inf


def check_nesting(value: bytes, start: int, schema: dict[str, Any], limit: int) -> None:
    """Walk the Avro binary body value[start:] without building it; NestingTooDeep past `limit`.

    The walk reads exactly what fastavro would read, so a structural problem it finds (a body that
    ends early, a union index out of range) is reported here with fastavro's error classes.
    """
    scanner = _Scanner(value, start, schema.get("__named_schemas", {}), limit)
    try:
        scanner.skip(schema, 0)
    except RecursionError:  # only with a bound set above what Python's stack allows
        raise _too_deep(limit) from None


def _too_deep(limit: int) -> DecodeError:
    return DecodeError(f"the value nests records, arrays or maps more than {limit} levels deep "
                       "(decode.max_nesting_depth)", error_class="NestingTooDeep")


class _Scanner:
    def __init__(self, data: bytes, pos: int, named: dict[str, Any], limit: int) -> None:
        self.data, self.pos, self.start, self.named, self.limit = data, pos, pos, named, limit

    def skip(self, s: Schema, depth: int) -> None:
        if isinstance(s, str):
            if s in PRIMITIVE_SIZES:
                self.primitive(s)
                return
            s = self.named[s]
        if isinstance(s, list):
            index = self.long()
            if not 0 <= index < len(s):
                raise DecodeError(f"union branch {index} does not exist (the union has {len(s)})",
                                  error_class="CorruptBody")
            self.skip(s[index], depth)
            return
        kind = s["type"]
        if kind in _CONTAINERS:
            depth += 1
            if depth > self.limit:
                raise _too_deep(self.limit)
        if kind in ("record", "error"):
            for f in s["fields"]:
                self.skip(f["type"], depth)
        elif kind == "array":
            self.blocks(s["items"], None, depth)
        elif kind == "map":
            self.blocks(s["values"], "string", depth)
        elif kind == "fixed":
            self.advance(s["size"])
        elif kind == "enum":
            self.long()
        else:  # {"type": "long", "logicalType": ...}, or {"type": {...}}
            self.skip(kind, depth)

    def blocks(self, item: Schema, key: str | None, depth: int) -> None:
        while True:
            count = self.long()
            if count == 0:
                return
            if count < 0:  # a block that also carries its size in bytes
                count = -count
                self.long()
            for _ in range(count):
                before = self.pos
                if key is not None:
                    self.primitive(key)
                self.skip(item, depth)
                if self.pos == before:
                    # A zero-byte item type (null, a record of nulls) reads no data: every remaining
                    # item is the same, so don't spin through a count of 2**62 of them.
                    break

    def primitive(self, name: str) -> None:
        size = PRIMITIVE_SIZES[name]
        if size is not None:
            self.advance(size)
        elif name in ("int", "long"):
            self.long()
        else:
            length = self.long()
            if length < 0:
                raise DecodeError(f"negative {name} length {length}", error_class="CorruptBody")
            self.advance(length)

    def advance(self, n: int) -> None:
        if self.pos + n > len(self.data):
            raise self.truncated()
        self.pos += n

    def long(self) -> int:
        data, pos, shift, result = self.data, self.pos, 0, 0
        while True:
            if pos >= len(data):
                raise self.truncated()
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift > 63:
                raise DecodeError("a varint is longer than 10 bytes", error_class="CorruptBody")
        self.pos = pos
        return (result >> 1) ^ -(result & 1)

    def truncated(self) -> DecodeError:
        return DecodeError(f"Avro body ends early ({len(self.data) - self.start} bytes)", error_class="Truncated")
