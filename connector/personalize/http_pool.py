"""HTTP/1.1 keep-alive connections to one origin, for the lean client's direct calls: send one
request, read one answer, keep the connection for the next.

Why not urllib3: a PutEvents call through `urllib3.HTTPConnectionPool.urlopen` spends most of its
CPU in http.client (one `putheader` and `send` per header, the `email` package parsing the answer's
headers) and in urllib3's per-call Timeout / Retry / HTTPHeaderDict objects; signing and the JSON
body are small. The calls are always the same: a POST with a body of known length, answered with a
small body. So here the request line, headers and body go out as one buffer in one `sendall`, and
the answer is read through the connection's buffered reader: status line, headers, body by
Content-Length or chunked.

Failures are raised as the urllib3 exceptions urllib3 raises for the same event (a cut body, a
reset, a status line that is not HTTP: `ProtocolError`; timeouts; refused connections; TLS), so the
lean client maps both paths to botocore's exceptions with one mapping, the one botocore's urllib3
session applies.

A connection that sat idle in the pool and turns out closed by the server (the send fails, or the
connection ends before the first byte of an answer) is retried once on a new connection: the server
answered nothing, so it closed it between calls (keep-alive timeout) and did not process the
request. A failure on a new connection, or after any byte of an answer, is never retried here.

May import: the standard library and urllib3's exception types only.
"""

from __future__ import annotations

import http.client
import queue
import socket
import ssl
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from io import BufferedReader

from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ProtocolError, ReadTimeoutError, SSLError

__all__ = ["Answer", "KeepAlivePool", "SocketOption"]

SocketOption = tuple[int, int, int]

# http.client's limits: a longer line or more headers is not an answer of this API.
_MAX_LINE = 65536
_MAX_HEADERS = 100
# 1xx answers are interim (100 Continue, 103 Early Hints); 204 and 304 never have a body.
_NO_BODY = frozenset({204, 304})
# The API's answers are a few hundred bytes (an error's message included). A body may not claim more:
# `read(n)` allocates n bytes up front, so "Content-Length: 2000000000" from something that is not
# the API (a proxy's page, a hostile server) would take 2 GB at once. Bodies are also read in pieces.
MAX_BODY_BYTES = 4 * 1024 * 1024
_PIECE = 64 * 1024


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer: `headers` has lower-cased names (repeated headers joined by ", ")."""

    status: int
    headers: dict[str, str]
    data: bytes


class _Unanswered(Exception):
    """The connection ended (closed or reset) before the first byte of an answer."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(cause)
        self.cause = cause


def _read_timeout(path: str, timeout: float) -> ReadTimeoutError:
    # urllib3's pool argument: there is none, this module is the pool.
    return ReadTimeoutError(None, path, f"Read timed out. (read timeout={timeout})")  # type: ignore[arg-type]


def _connection_aborted(cause: BaseException) -> ProtocolError:
    """urllib3's error for a connection that ended before an answer (RemoteDisconnected, reset)."""
    return ProtocolError("Connection aborted.", cause)


class _Connection:
    """One socket and its buffered reader; `reused` once it has carried an answer."""

    __slots__ = ("reader", "reused", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader: BufferedReader = sock.makefile("rb")
        self.reused = False

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


class KeepAlivePool:
    """At most `max_connections` connections to `scheme://host:port`, shared by threads; a call
    waits for a free connection when all are busy."""

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int | None,
        max_connections: int,
        connect_timeout: float,
        read_timeout: float,
        socket_options: Sequence[SocketOption],
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if scheme not in ("http", "https") or (scheme == "https") != (ssl_context is not None):
            raise ValueError(f"{scheme} needs {'an' if scheme == 'https' else 'no'} SSL context")
        self.host = host
        self.port = port or (443 if scheme == "https" else 80)
        default_port = self.port == (443 if scheme == "https" else 80)
        named = f"[{host}]" if ":" in host else host  # an IPv6 literal is bracketed in Host
        self.host_header = named if default_port else f"{named}:{self.port}"
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.socket_options = tuple(socket_options)
        self.ssl_context = ssl_context
        # One permit per connection that may exist (busy or idle); a call without one waits. A C-level
        # queue of interchangeable tokens: cheaper per call than threading.Semaphore (Python code).
        self._permits: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(max_connections):
            self._permits.put(None)
        self._idle: list[_Connection] = []  # LIFO: the most recently used is the likeliest alive
        self._lock = threading.Lock()
        self._closed = False

    def urlopen(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        """Send one request (headers as given, plus Host and Accept-Encoding: identity, as
        http.client adds them) and read its answer."""
        lines = [f"{method} {path} HTTP/1.1\r\nHost: {self.host_header}\r\nAccept-Encoding: identity\r\n"]
        lines.extend(f"{name}: {value}\r\n" for name, value in headers.items())
        lines.append("\r\n")
        request = "".join(lines).encode("latin-1") + body
        self._permits.get()
        try:
            return self._exchange(request, path)
        finally:
            self._permits.put(None)

    def close(self) -> None:
        """Close the idle connections; busy ones are closed when their call ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _exchange(self, request: bytes, path: str) -> Answer:
        connection = self._take()
        try:
            try:
                return self._send_and_read(connection, request, path)
            except _Unanswered as unanswered:
                if not connection.reused:
                    raise _connection_aborted(unanswered.cause) from unanswered.cause
            # Stale keep-alive: the server closed the idle connection; it saw no request. Once.
            connection.close()
            connection = self._connect()
            try:
                return self._send_and_read(connection, request, path)
            except _Unanswered as unanswered:
                raise _connection_aborted(unanswered.cause) from unanswered.cause
        except BaseException:
            connection.close()
            raise

    def _send_and_read(self, connection: _Connection, request: bytes, path: str) -> Answer:
        try:
            connection.sock.sendall(request)
        except TimeoutError as e:
            raise _read_timeout(path, self.read_timeout) from e
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError) as e:
            if connection.reused:
                raise _Unanswered(e) from e  # a TLS connection the server closed while idle
            raise SSLError(e) from e
        except ssl.SSLError as e:
            raise SSLError(e) from e
        except OSError as e:
            # The server is gone (EPIPE, reset); what it sent before, if anything, is still readable.
            # Read like urllib3, which also ignores a broken pipe on send and reads the answer.
            if not isinstance(e, (BrokenPipeError, ConnectionResetError)):
                raise ProtocolError("Connection aborted.", e) from e
        try:
            status, headers, data, keep = _read_answer(connection.reader)
        except TimeoutError as e:
            raise _read_timeout(path, self.read_timeout) from e
        except ssl.SSLError as e:
            raise SSLError(e) from e
        except OSError as e:
            raise ProtocolError("Connection broken: " + repr(e), e) from e
        if keep:
            connection.reused = True
            self._give_back(connection)
        else:
            connection.close()
        return Answer(status, headers, data)

    def _take(self) -> _Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._connect()

    def _give_back(self, connection: _Connection) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(connection)
                return
        connection.close()

    def _connect(self) -> _Connection:
        """A new connection: TCP connect (and the TLS handshake) within the connect timeout."""
        # A name that does not resolve raises socket.gaierror, which the lean client maps as botocore
        # does (EndpointConnectionError).
        infos = socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_STREAM)
        error: OSError | None = None
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            try:
                for level, option, value in self.socket_options:
                    sock.setsockopt(level, option, value)
                sock.settimeout(self.connect_timeout)
                sock.connect(address)
                break
            except TimeoutError as e:
                sock.close()
                raise ConnectTimeoutError(
                    f"Connection to {self.host} timed out. (connect timeout={self.connect_timeout})"
                ) from e
            except OSError as e:
                sock.close()
                error = e
        else:
            message = f"Failed to establish a new connection: {error or 'no address'}"
            raise NewConnectionError(None, message) from error  # type: ignore[arg-type]  # no urllib3 connection: ours
        if self.ssl_context is not None:
            try:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.host)
            except TimeoutError as e:
                sock.close()
                # urllib3 reports a handshake that times out as a read timeout (of the connect timeout).
                raise _read_timeout("", self.connect_timeout) from e
            except (ssl.SSLError, ssl.CertificateError) as e:
                sock.close()
                raise SSLError(e) from e
            except OSError as e:
                sock.close()
                raise ProtocolError("Connection aborted.", e) from e
        sock.settimeout(self.read_timeout)  # each read (and send) from now on
        return _Connection(sock)


def _read_answer(reader: BufferedReader) -> tuple[int, dict[str, str], bytes, bool]:
    """(status, headers, body, keep the connection) of the next final answer on `reader`."""
    first = True
    while True:
        try:
            line = reader.readline(_MAX_LINE + 1)
        except (ConnectionResetError, ConnectionAbortedError) as e:
            if first:
                raise _Unanswered(e) from e
            raise ProtocolError("Connection aborted.", e) from e
        if not line:
            if first:
                raise _Unanswered(http.client.RemoteDisconnected("Remote end closed connection without response"))
            raise ProtocolError("Connection aborted.", http.client.RemoteDisconnected("closed after an interim answer"))
        first = False
        version, status = _status_line(line)
        headers = _read_headers(reader)
        if status >= 200:
            break
        # An interim answer (100 Continue, 103 Early Hints): the final one follows.
    keep = version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
    if status in _NO_BODY:
        return status, headers, b"", keep
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return status, headers, _read_chunked(reader), keep
    length = headers.get("content-length", "").strip()
    if length.isdigit():
        expected = int(length)
        if expected > MAX_BODY_BYTES:
            raise _too_large(f"Content-Length {expected}")
        data = _read_up_to(reader, expected)
        if len(data) < expected:
            raise _incomplete(len(data), expected)
        return status, headers, data, keep
    # No length (or one that is not a number, which urllib3 ignores too): the body ends with the connection.
    data = _read_up_to(reader, MAX_BODY_BYTES + 1)
    if len(data) > MAX_BODY_BYTES:
        raise _too_large("a body without a length")
    return status, headers, data, False


def _read_up_to(reader: BufferedReader, size: int) -> bytes:
    """Up to `size` bytes, fewer if the connection ends first; read in pieces, never allocated at once."""
    parts: list[bytes] = []
    left = size
    while left > 0:
        piece = reader.read(min(left, _PIECE))
        if not piece:
            break
        parts.append(piece)
        left -= len(piece)
    return b"".join(parts)


def _too_large(what: str) -> ProtocolError:
    return ProtocolError(f"Connection broken: answer too large ({what}; more than {MAX_BODY_BYTES} bytes)")


def _incomplete(read: int, expected: int) -> ProtocolError:
    return ProtocolError(f"Connection broken: IncompleteRead({read} bytes read, {expected - read} more expected)")


def _status_line(line: bytes) -> tuple[str, int]:
    if len(line) > _MAX_LINE:
        raise ProtocolError("Connection aborted.", ValueError("status line too long"))
    text = line.decode("iso-8859-1")
    parts = text.split(None, 2)
    try:
        version, code = parts[0], parts[1]
        if not version.startswith("HTTP/") or len(code) != 3 or not code.isdigit():
            raise ValueError
        status = int(code)
        if status < 100:
            raise ValueError
    except (IndexError, ValueError):
        # http.client's BadStatusLine, which urllib3 raises inside a ProtocolError.
        raise ProtocolError("Connection aborted.", http.client.BadStatusLine(text)) from None
    return version, status


def _read_headers(reader: BufferedReader) -> dict[str, str]:
    """Header lines up to the blank line. A connection that ends first ends them, as in
    http.client (so what follows is judged like urllib3 judges it: cut body, missing request id)."""
    headers: dict[str, str] = {}
    name = ""
    for _ in range(_MAX_HEADERS + 1):
        line = reader.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise ProtocolError("Connection aborted.", ValueError("header line too long"))
        if line in (b"\r\n", b"\n", b""):
            return headers
        text = line.decode("iso-8859-1").rstrip("\r\n")
        if text[:1] in (" ", "\t") and name:  # obsolete line folding continues the previous value
            headers[name] += " " + text.strip()
            continue
        key, colon, value = text.partition(":")
        if not colon:
            continue  # not a header (the email parser drops it too)
        name = key.strip().lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    raise ProtocolError("Connection aborted.", ValueError(f"more than {_MAX_HEADERS} headers"))


def _read_chunked(reader: BufferedReader) -> bytes:
    """A chunked body (RFC 9112 7.1): size lines in hex, chunks, a last chunk of 0, trailers."""
    parts: list[bytes] = []
    total = 0
    while True:
        line = reader.readline(_MAX_LINE + 1)
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError(f"Connection broken: InvalidChunkLength(got length {line!r})") from None
        if size == 0:
            _read_headers(reader)  # trailers, ignored
            return b"".join(parts)
        total += size
        if total > MAX_BODY_BYTES:
            raise _too_large("chunked body")
        chunk = _read_up_to(reader, size)
        if len(chunk) < size or reader.read(2) != b"\r\n":
            raise _incomplete(len(chunk), size)
        parts.append(chunk)
