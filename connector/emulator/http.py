"""A minimal HTTP/1.1 server on asyncio's Protocol API.

Why not http.server or a framework: the emulator must not be the bottleneck when the connector is
measured, and a Protocol that parses Content-Length requests on a keep-alive connection and answers
synchronously costs a few tens of microseconds per request. Pipelining is tolerated (requests are
answered in order) but not optimised; chunked *request* bodies are refused (botocore and the AWS
CLI always send Content-Length).
"""

from __future__ import annotations

import asyncio
import http
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 8 * 1024 * 1024  # far above any valid call (10 entries of at most 32 KB each)

_REASONS = {s.value: s.phrase for s in http.HTTPStatus}


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: bytes


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    # When set, the body is streamed from this iterator with chunked transfer encoding.
    chunks: Iterator[bytes] | None = None
    # Drop the connection without answering (simulates a network-level outage).
    abort: bool = False


Handler = Callable[[Request], "Response | Awaitable[Response]"]


def _head(status: int, headers: list[tuple[str, str]], extra: str, keep_alive: bool) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"]
    lines.extend(f"{name}: {value}\r\n" for name, value in headers)
    lines.append(extra)
    if not keep_alive:
        lines.append("Connection: close\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


class HttpProtocol(asyncio.Protocol):
    """One client connection: parse requests from the byte stream and write responses in order."""

    def __init__(self, handler: Handler, connections: set[HttpProtocol]) -> None:
        self._handler = handler
        self._connections = connections
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None
        self._busy = False  # an asynchronous response is in flight; later requests wait
        self._closing = False
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._sent_continue = False

    # -- asyncio callbacks ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        self._closing = True
        self._can_write.set()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if not self._busy:
            self._process()

    def close(self) -> None:
        """Close once the current response (if any) is written; used at shutdown."""
        self._closing = True
        if not self._busy and self._transport is not None:
            self._transport.close()

    # -- parsing ----------------------------------------------------------------------------------
    def _process(self) -> None:
        while not self._closing and self._transport is not None:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > MAX_HEAD_BYTES:
                    self._fail(431)
                return
            try:
                head = self._buf[:end].decode("latin-1")
                request_line, *header_lines = head.split("\r\n")
                method, target, version = request_line.split(" ")
                headers: dict[str, str] = {}
                for line in header_lines:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
            except ValueError:
                self._fail(400)
                return
            if "transfer-encoding" in headers:
                self._fail(411)
                return
            if length < 0 or length > MAX_BODY_BYTES:
                self._fail(413)
                return
            start = end + 4
            if len(self._buf) < start + length:
                if not self._sent_continue and headers.get("expect", "").lower() == "100-continue":
                    self._sent_continue = True
                    self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                return
            body = bytes(self._buf[start : start + length])
            del self._buf[: start + length]
            self._sent_continue = False
            connection = headers.get("connection", "").lower()
            keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
            path, _, query = target.partition("?")
            request = Request(
                method, path, dict(parse_qsl(query, keep_blank_values=True)) if query else {}, headers, body
            )
            try:
                result = self._handler(request)
            except Exception:
                log.exception("handler failed for %s %s", method, path)
                result = Response(500, b'{"message":"emulator bug"}')
            if isinstance(result, Response) and result.chunks is None:
                self._send(result, keep_alive)
                if not keep_alive:
                    return
            else:
                self._busy = True
                asyncio.get_running_loop().create_task(self._finish(result, keep_alive))
                return

    def _fail(self, status: int) -> None:
        self._send(Response(status, b""), keep_alive=False)

    # -- writing ----------------------------------------------------------------------------------
    def _send(self, response: Response, keep_alive: bool) -> None:
        transport = self._transport
        assert transport is not None
        if response.abort:
            transport.abort()
            self._closing = True
            return
        extra = f"Content-Length: {len(response.body)}\r\n"
        transport.write(_head(response.status, response.headers, extra, keep_alive) + response.body)
        if not keep_alive:
            self._closing = True
            transport.close()

    async def _finish(self, result: Response | Awaitable[Response], keep_alive: bool) -> None:
        try:
            response = result if isinstance(result, Response) else await result
            if response.chunks is None:
                self._send(response, keep_alive)
            else:
                await self._stream(response, keep_alive)
        except Exception:
            log.exception("asynchronous response failed")
            if self._transport is not None:
                self._transport.abort()
            self._closing = True
        finally:
            self._busy = False
        if self._closing:
            if self._transport is not None:
                self._transport.close()
        elif self._buf:
            self._process()

    async def _stream(self, response: Response, keep_alive: bool) -> None:
        transport = self._transport
        assert transport is not None and response.chunks is not None
        transport.write(_head(response.status, response.headers, "Transfer-Encoding: chunked\r\n", keep_alive))
        for chunk in response.chunks:
            if chunk:
                transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            await self._can_write.wait()  # back-pressure for large dumps
            if self._closing:
                return
        transport.write(b"0\r\n\r\n")
        if not keep_alive:
            self._closing = True


async def serve(handler: Handler, host: str, port: int) -> tuple[asyncio.Server, set[HttpProtocol]]:
    """Start listening; returns the server and the live connections (to close them at shutdown)."""
    connections: set[HttpProtocol] = set()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: HttpProtocol(handler, connections), host, port, backlog=1024)
    return server, connections
