"""A bounded stand-in for the Personalize endpoint on 127.0.0.1 that answers from a script.

The emulator only gives answers a well-behaved service gives. Hostile answers (a 200 whose body is
HTML, truncated JSON, a JSON array; a connection closed before or in the middle of a response; a
reset; a status line that is not HTTP) come from this raw-socket server: each request consumes the
next `Answer` of the script, and once the script is spent every request gets a well-formed success,
so a client that retries transient failures always gets through. Every request is recorded with the
eventIds it carried and the answer it got, which is what the properties are checked against.

Bounded: requests are read with a socket timeout and a size cap, handler threads are daemons, the
server stops when the context manager exits.
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

MAX_REQUEST_BYTES = 4 * 1024 * 1024
SOCKET_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Answer:
    """One scripted answer. `how` is what happens on the wire:

    - "respond": a status line, headers and `body` (Content-Length of the full body; with
      `cut_at` set only body[:cut_at] is sent and the connection is closed: a truncated response);
    - "close": the connection is closed after the request is read, nothing is written;
    - "reset": the connection is reset (RST) after the request is read;
    - "junk": `body` is written as the whole response (not HTTP) and the connection is closed.
    """

    how: str
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    error_type: str | None = None  # x-amzn-ErrorType, how the AWS JSON protocol names an error
    cut_at: int | None = None
    label: str = ""

    @property
    def well_formed_success(self) -> bool:
        """The one answer after which an event may count as delivered: a complete HTTP 200 whose
        body is empty (the PutEvents response has no members) or a JSON object."""
        if self.how != "respond" or self.status != 200 or self.cut_at is not None:
            return False
        if not self.body:
            return True
        try:
            return isinstance(json.loads(self.body), dict)
        except ValueError:
            return False

    def wire(self) -> bytes:
        reason = {200: "OK", 400: "Bad Request", 502: "Bad Gateway"}.get(self.status, "Status")
        headers = [f"HTTP/1.1 {self.status} {reason}", f"Content-Type: {self.content_type}",
                   f"Content-Length: {len(self.body)}", "Connection: close", "x-amzn-RequestId: standin"]
        if self.error_type is not None:
            headers.append(f"x-amzn-ErrorType: {self.error_type}")
        head = ("\r\n".join(headers) + "\r\n\r\n").encode()
        return head + (self.body if self.cut_at is None else self.body[: self.cut_at])


SUCCESS = Answer("respond", 200, b"{}", label="200-ok-after-script")


@dataclass
class Exchange:
    """One request the server received and what it answered."""

    path: str
    event_ids: list[str] | None  # None: the body was not a PutEvents request the server could read
    answer: Answer


@dataclass
class StandIn:
    host: str
    port: int
    script: list[Answer] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def load(self, answers: list[Answer]) -> None:
        """A new script; forgets the previous exchanges."""
        with self.lock:
            self.script = list(answers)
            self.exchanges = []

    def next_answer(self, path: str, body: bytes) -> Answer:
        with self.lock:
            answer = self.script.pop(0) if self.script else SUCCESS
            self.exchanges.append(Exchange(path, _event_ids(body), answer))
            return answer


def _event_ids(body: bytes) -> list[str] | None:
    try:
        parsed: Any = json.loads(body)
        return [str(e["eventId"]) for e in parsed["eventList"]]
    except (ValueError, KeyError, TypeError):
        return None


def _read_request(sock: socket.socket) -> tuple[str, bytes] | None:
    """(path, body) of one HTTP/1.1 request, or None if the client went away first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > MAX_REQUEST_BYTES:
            return None
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    path = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else ""
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(rest) < min(length, MAX_REQUEST_BYTES):
        chunk = sock.recv(65536)
        if not chunk:
            return None
        rest += chunk
    return path, rest[:length]


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(SOCKET_TIMEOUT_S)
        with contextlib.suppress(OSError):
            request = _read_request(sock)
            if request is None:
                return
            answer = self.server.standin.next_answer(*request)
            if answer.how == "reset":
                # SO_LINGER with a zero timeout turns close() into a TCP reset.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif answer.how == "junk":
                sock.sendall(answer.body)
            elif answer.how == "respond":
                sock.sendall(answer.wire())
            # "close": nothing is written


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    standin: StandIn


@contextlib.contextmanager
def standin_server() -> Iterator[StandIn]:
    server = _Server(("127.0.0.1", 0), _Handler)
    host, port = server.server_address[:2]
    server.standin = StandIn(str(host), int(port))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.standin
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
