"""Decode + map generated records in a child process, so a crash of the decoder is a result.

fastavro's C reader recurses over nested values; a deep enough value overflows the C stack and the
process dies with SIGSEGV, which no `except` can catch. The cases therefore run in a long-lived
child (`python -m adversarial.decode_sandbox`) that answers one outcome per case over a pipe; when
it dies the parent reports `crashed:<signal>` for that case and starts a new child for the next.

Inside the child, a case goes through what the worker runs for a record: `ConfluentWireDecoder`
(its writer schema served by a fetch function, as the registry client would; unknown ids are a
404) with the canonical reader schema or, when the case says so, the writer schema as the reader
(`decode.reader_schema` set to the producer's schema), then `EventMapper.to_event` with the default
mapping (its time window off). Outcomes:

- `mapped`: an event came out, and it is valid JSON for the API (no NaN/Infinity anywhere);
- `record-error:<stage>/<class>`: a RecordError (the worker dead-letters it);
- `retry-later:<type>`: an exception the worker treats as "not the record's fault, read it again
  later" (connector/app.py's `retryable_decode_errors`, today RegistryUnavailable; keep in step);
- `escaped:<type>`: any other exception (the worker would crash on it);
- `invalid-output:<what>`: an event came out that the service cannot accept as JSON;
- `crashed:<signal>`: the child died;
- `hung`: no outcome within CASE_TIMEOUT_S (the child is killed and replaced).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[2]
SCHEMA_ID = 1
# A case that takes longer than this (start-up of a fresh child included) counts as a hang.
CASE_TIMEOUT_S = 60.0


class Hung(Exception):
    pass


def _frame_write(out: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj)
    out.write(struct.pack(">I", len(data)) + data)
    out.flush()


def _read_exactly(fd: int, size: int, deadline: float) -> bytes:
    """`size` bytes from the pipe `fd`; EOFError if it closes first, Hung past `deadline`."""
    data = b""
    while len(data) < size:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise Hung
        chunk = os.read(fd, size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _frame_read_within(fd: int, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    (size,) = struct.unpack(">I", _read_exactly(fd, 4, deadline))
    return pickle.loads(_read_exactly(fd, size, deadline))


def _frame_read(src: IO[bytes]) -> Any:
    head = src.read(4)
    if len(head) < 4:
        raise EOFError
    (size,) = struct.unpack(">I", head)
    data = src.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


class DecodeSandbox:
    """The parent side: `run(writer_schema, value, reader_is_writer)` -> (outcome, detail)."""

    def __init__(self) -> None:
        self._child: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def _start(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
        child = subprocess.Popen([sys.executable, "-m", "adversarial.decode_sandbox"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        return child

    def run(self, writer: dict[str, Any] | None, value: bytes | None, reader_is_writer: bool) -> tuple[str, str]:
        if self._child is None or self._child.poll() is not None:
            self._child = self._start()
        child = self._child
        assert child.stdin is not None and child.stdout is not None
        try:
            _frame_write(child.stdin, (json.dumps(writer) if writer else None, value, reader_is_writer))
            result: tuple[str, str] = _frame_read_within(child.stdout.fileno(), CASE_TIMEOUT_S)
            return result
        except Hung:
            child.kill()
            child.wait()
            self._child = None
            self.restarts += 1
            return "hung", f"no outcome within {CASE_TIMEOUT_S:.0f}s (decode or map loops?)"
        except (EOFError, BrokenPipeError, OSError):
            code = child.wait(30)
            self._child = None
            self.restarts += 1
            name = signal.Signals(-code).name if code < 0 else f"exit-{code}"
            return f"crashed:{name}", f"the decoding process died ({name})"

    def close(self) -> None:
        if self._child is not None:
            with contextlib.suppress(OSError):
                assert self._child.stdin is not None
                self._child.stdin.close()
            try:
                self._child.wait(10)
            except subprocess.TimeoutExpired:
                self._child.kill()
                self._child.wait()
            self._child = None


# --- the child -------------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_output(body: dict[str, Any]) -> str | None:
    """Why the service could not take this event as JSON, or None."""
    value = body.get("eventValue")
    if isinstance(value, float) and not math.isfinite(value):
        return "eventValue-not-finite"
    properties = body.get("properties")
    if properties is not None:
        try:
            parsed = json.loads(properties, parse_constant=_reject_constant)
        except ValueError:
            return "properties-not-json"
        if not isinstance(parsed, dict):
            return "properties-not-object"
    for name, item in body.items():
        if name not in ("sentAt", "eventValue", "properties", "impression", "metricAttribution") \
                and not isinstance(item, str):
            return f"{name}-not-string"
    return None


def _child_main() -> None:
    # The protocol owns the real stdout; anything printed goes to stderr instead.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    src = sys.stdin.buffer

    from connector.config import MappingConfig
    from connector.decode.base import RegistryUnavailable, load_schema, parse
    from connector.decode.confluent_wire import ConfluentWireDecoder, SchemaNotFound
    from connector.destinations.events import EventMapper
    from connector.records import RecordError, SourceRecord

    canonical = load_schema(None)
    # The time window (on by default) is off: generated times span every representable date, and
    # what is checked here is how each logical type maps, not whether a date is plausible.
    mapper = EventMapper(MappingConfig(time_not_before=None, time_max_ahead_s=None), "tracker-adversarial")
    while True:
        try:
            writer_text, value, reader_is_writer = _frame_read(src)
        except EOFError:
            return
        result: tuple[str, str]
        try:

            def fetch(schema_id: int, text: str | None = writer_text) -> str:
                if schema_id != SCHEMA_ID or text is None:
                    raise SchemaNotFound(schema_id)
                return text

            reader = canonical
            if reader_is_writer and writer_text is not None:
                reader = parse(json.loads(writer_text))
            decoder = ConfluentWireDecoder(fetch, reader)
            record = decoder.decode(value)
            event = mapper.to_event(record, SourceRecord("adversarial", 0, 0, None, value))
            problem = _check_output(event.body)
            result = ("mapped", "") if problem is None else (f"invalid-output:{problem}", repr(event.body)[:300])
        except RecordError as exc:
            result = (f"record-error:{exc.stage}/{exc.error_class}", exc.message[:300])
        except RegistryUnavailable as exc:  # connector/app.py's retryable_decode_errors
            result = (f"retry-later:{type(exc).__name__}", str(exc)[:300])
        except BaseException as exc:  # the point: anything else is a finding
            result = (f"escaped:{type(exc).__name__}", "".join(traceback.format_exception(exc))[-1500:])
        _frame_write(out, result)


if __name__ == "__main__":
    _child_main()
