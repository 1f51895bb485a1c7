"""connector.personalize.http_pool against a real socket on 127.0.0.1 writing exact bytes: framing
(Content-Length, chunked, close-delimited), keep-alive and its end, interim answers, cut and broken
answers, the one retry of a stale idle connection (and no other), the connection limit, timeouts."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from fixtures.raw_http import OK, RawServer, Reply, raw_server
from urllib3.exceptions import NewConnectionError, ProtocolError, ReadTimeoutError

from connector.personalize.http_pool import MAX_BODY_BYTES, Answer, KeepAlivePool

HEADERS = {"Content-Type": "application/x-amz-json-1.1", "Content-Length": "7"}
BODY = b'{"a":1}'


@pytest.fixture(scope="module")
def module_server() -> Iterator[RawServer]:
    with raw_server() as server:
        yield server


@pytest.fixture
def server(module_server: RawServer) -> RawServer:
    module_server.load([])
    return module_server


def _pool(server: RawServer, size: int = 2, read_timeout: float = 10) -> KeepAlivePool:
    options = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1), (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    return KeepAlivePool("http", "127.0.0.1", server.port, size, 5, read_timeout, options)


def _post(pool: KeepAlivePool) -> Answer:
    return pool.urlopen("POST", "/events", BODY, HEADERS)


def test_request_is_one_http11_message_with_host_and_body(server: RawServer) -> None:
    answer = _post(_pool(server))
    assert answer == Answer(200, {"content-type": "application/json", "x-amzn-requestid": "raw",
                                  "content-length": "2"}, b"{}")
    assert server.requests == [
        f"POST /events HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAccept-Encoding: identity\r\n"
        "Content-Type: application/x-amz-json-1.1\r\nContent-Length: 7\r\n\r\n".encode() + BODY
    ]


def test_keep_alive_reuses_one_connection(server: RawServer) -> None:
    pool = _pool(server)
    for _ in range(5):
        assert _post(pool).status == 200
    assert server.connections == 1 and len(server.requests) == 5


def test_chunked_answer(server: RawServer) -> None:
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3;ext=1\r\n{\"a\r\n4\r\n\":1}\r\n0\r\nTrailer: x\r\n\r\n")
    server.load([Reply(chunked)])
    pool = _pool(server)
    assert _post(pool).data == b'{"a":1}'
    assert _post(pool).status == 200
    assert server.connections == 1  # read to its end: the connection is kept


@pytest.mark.parametrize(
    "head",
    [b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n",
     b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n",
     b"HTTP/1.1 200 OK\r\n\r\n"],  # no length: the body ends with the connection
    ids=["connection-close", "http-1.0", "close-delimited"],
)
def test_answers_that_end_the_connection(server: RawServer, head: bytes) -> None:
    server.load([Reply(head + b"{}", then="close")])
    pool = _pool(server)
    assert _post(pool).data == b"{}"
    assert _post(pool).status == 200
    assert server.connections == 2  # closed after the first answer, without a retry or an error


def test_interim_answers_are_skipped(server: RawServer) -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
    server.load([Reply(interim + b"HTTP/1.1 204 No Content\r\nx-amzn-RequestId: r\r\n\r\n")])
    assert _post(_pool(server)) == Answer(204, {"x-amzn-requestid": "r"}, b"")


def test_repeated_and_folded_headers(server: RawServer) -> None:
    server.load([Reply(b"HTTP/1.1 400 Bad\r\nX-A: 1\r\nx-a: 2\r\nX-F: one\r\n two\r\nnot a header\r\n"
                       b"Content-Length: 0\r\n\r\n")])
    assert _post(_pool(server)).headers == {"x-a": "1, 2", "x-f": "one two", "content-length": "0"}


@pytest.mark.parametrize(
    "reply",
    [Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", then="close"),
     Reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{}", then="close"),
     Reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", then="close"),
     Reply(b"HTTP/1.1 200 OK\r\nContent-Len", then="reset"),
     Reply(b"NOT HTTP AT ALL\r\n\r\n", then="close"),
     Reply(b"HTTP/1.1 20", then="close"),
     Reply(b"", then="close"),
     Reply(b"", then="reset")],
    ids=["cut-body", "cut-chunk", "bad-chunk-size", "reset-mid-headers", "not-http", "cut-status",
         "closed-unanswered", "reset-unanswered"],
)
def test_broken_answers_raise_protocol_error_without_retry(server: RawServer, reply: Reply) -> None:
    server.load([reply])
    with pytest.raises(ProtocolError):
        _post(_pool(server))
    assert len(server.requests) == 1  # a new connection: never retried


def test_stale_idle_connection_is_retried_once_on_a_new_one(server: RawServer) -> None:
    # The first answer says keep-alive, then the server closes the idle connection (its keep-alive
    # timeout): the next call finds it closed before any answer, and goes out again, once.
    server.load([Reply(OK, then="close")])
    pool = _pool(server)
    assert _post(pool).status == 200
    assert _post(pool).status == 200
    assert server.connections == 2 and len(server.requests) == 2  # the closed one never saw the 2nd


def test_stale_retry_happens_once_only(server: RawServer) -> None:
    server.load([Reply(OK, then="close"), Reply(b"", then="close")])
    pool = _pool(server)
    _post(pool)
    with pytest.raises(ProtocolError):  # the retry's new connection also ends unanswered: no third try
        _post(pool)
    assert len(server.requests) == 2


def test_reused_connection_failing_after_an_answer_began_is_not_retried(server: RawServer) -> None:
    server.load([Reply(), Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", then="close")])
    pool = _pool(server)
    _post(pool)
    with pytest.raises(ProtocolError):
        _post(pool)
    assert len(server.requests) == 2 and server.connections == 1


def test_read_timeout_then_a_new_connection(server: RawServer) -> None:
    server.load([Reply(delay_s=1.0)])
    pool = _pool(server, read_timeout=0.2)
    with pytest.raises(ReadTimeoutError):
        _post(pool)
    assert _post(pool).status == 200  # the timed-out connection was dropped, not reused
    assert server.connections == 2


def test_refused_connection() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, not listening: refused
        pool = KeepAlivePool("http", "127.0.0.1", port, 1, 5, 5, [])
        with pytest.raises(NewConnectionError):
            _post(pool)


def test_at_most_max_connections_under_threads() -> None:
    with raw_server() as server:  # its own: no answer of an earlier test still in progress
        server.load([Reply(delay_s=0.05) for _ in range(12)])
        pool = _pool(server, size=3)
        answers: list[int] = []
        threads = [threading.Thread(target=lambda: answers.append(_post(pool).status)) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert answers == [200] * 12
        assert server.connections <= 3 and server.most_busy <= 3


def test_close_closes_idle_connections(server: RawServer) -> None:
    pool = _pool(server)
    _post(pool)
    pool.close()
    assert _post(pool).status == 200  # still usable: a new connection
    assert server.connections == 2


def test_scheme_and_context_must_match() -> None:
    with pytest.raises(ValueError):
        KeepAlivePool("https", "127.0.0.1", 1, 1, 1, 1, [])


@pytest.mark.parametrize(
    "reply",
    [Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2000000000\r\n\r\n{}", then="close"),
     Reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7fffffff\r\n{}", then="close"),
     Reply(b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * (MAX_BODY_BYTES + 10), then="close")],
    ids=["huge-content-length", "huge-chunk", "endless-body"],
)
def test_an_answer_claiming_more_than_any_api_answer_is_refused_without_allocating_it(
    server: RawServer, reply: Reply
) -> None:
    """Not the API (a proxy's page, a hostile server): `read(n)` would allocate n bytes at once."""
    server.load([reply])
    with pytest.raises(ProtocolError, match="answer too large"):
        _post(_pool(server))
    assert len(server.requests) == 1
