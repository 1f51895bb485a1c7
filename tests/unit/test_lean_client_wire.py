"""The lean client's own HTTP pool turns every answer, hostile ones included, into what its
urllib3 pool did before: the same result or the same botocore exception (class and text), so the
sink classifies them alike. Both clients talk to the same raw server on 127.0.0.1; the reference
sends through urllib3 with the arguments the client used (`Urllib3Direct`)."""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
import urllib3
from fixtures.raw_http import OK, RawServer, Reply, raw_server

from connector.personalize.api_response import MalformedResponse
from connector.personalize.lean_client import LeanPersonalizeClient
from connector.personalize.sink import classify

CALL = {"trackingId": "t-1", "sessionId": "s-1", "eventList": [{"eventType": "click", "sentAt": 1700000000}]}

ANSWERS: dict[str, Reply] = {
    "ok": Reply(),
    "ok-chunked": Reply(b"HTTP/1.1 200 OK\r\nx-amzn-RequestId: r\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"1\r\n{\r\n1\r\n}\r\n0\r\n\r\n"),
    "ok-after-100-continue": Reply(b"HTTP/1.1 100 Continue\r\n\r\n" + OK),
    "ok-http-1.0-close-delimited": Reply(b"HTTP/1.0 200 OK\r\nx-amzn-RequestId: r\r\n\r\n{}", then="close"),
    "ok-connection-close": Reply(OK.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"), then="close"),
    "200-html": Reply(b"HTTP/1.1 200 OK\r\nx-amzn-RequestId: r\r\nContent-Type: text/html\r\n"
                      b"Content-Length: 13\r\n\r\n<html></html>"),
    "200-no-request-id": Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    "400-invalid-input": Reply(b"HTTP/1.1 400 Bad Request\r\nx-amzn-ErrorType: InvalidInputException\r\n"
                               b'x-amzn-RequestId: r\r\nContent-Length: 17\r\n\r\n{"message":"bad"}'),
    "302-redirect": Reply(b"HTTP/1.1 302 Found\r\nLocation: http://elsewhere/\r\nContent-Length: 0\r\n\r\n"),
    "503-html-chunked": Reply(b"HTTP/1.1 503 Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n"
                              b"5\r\n<html\r\n0\r\n\r\n"),
    "cut-body": Reply(b"HTTP/1.1 200 OK\r\nx-amzn-RequestId: r\r\nContent-Length: 10\r\n\r\n{}", then="close"),
    "cut-chunk": Reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{}", then="close"),
    "headers-cut-then-closed": Reply(b"HTTP/1.1 200 OK\r\nContent-Le", then="close"),
    "reset-mid-headers": Reply(b"HTTP/1.1 200 OK\r\nContent-Le", then="reset"),
    "not-http": Reply(b"NOT HTTP AT ALL\r\n\r\n", then="close"),
    "cut-status-line": Reply(b"HTTP/1.1 20", then="close"),
    "closed-unanswered": Reply(b"", then="close"),
    "reset-unanswered": Reply(b"", then="reset"),
    "read-timeout": Reply(delay_s=1.5),
}


class Urllib3Direct:
    """The lean client's direct path before its own pool: urllib3, called as it called it."""

    def __init__(self, url: str, size: int, read_timeout: float) -> None:
        options = [*urllib3.connection.HTTPConnection.default_socket_options,
                   (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
        manager = urllib3.PoolManager(num_pools=1, maxsize=size, block=True, retries=False,
                                      timeout=urllib3.Timeout(connect=5, read=read_timeout), socket_options=options)
        self.pool = manager.connection_from_url(url)

    def urlopen(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> Any:
        return self.pool.urlopen(method, path, body=body, headers=headers, retries=False, redirect=False,
                                 assert_same_host=False, preload_content=True, decode_content=False,
                                 enforce_content_length=True)

    def close(self) -> None:
        self.pool.close()


def _aws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def server() -> Iterator[RawServer]:
    with raw_server() as raw:
        yield raw


@pytest.fixture(scope="module")
def client(server: RawServer) -> Iterator[LeanPersonalizeClient]:
    """One client for every case (botocore's endpoint probe takes a while); `close` between cases."""
    with pytest.MonkeyPatch.context() as patch:
        _aws(patch)
        yield LeanPersonalizeClient("us-east-1", server.url, 2, read_timeout=0.3)


def _outcome(client: LeanPersonalizeClient) -> tuple[str, str]:
    try:
        result: Any = client.put_events(**CALL)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
        return type(e).__name__, f"{e} / {classify(e).name}"
    metadata = result["ResponseMetadata"]
    return "success", f"{metadata['HTTPStatusCode']} {metadata.get('RequestId')} {sorted(metadata['HTTPHeaders'])}"


@pytest.mark.parametrize("case", sorted(ANSWERS))
def test_same_outcome_as_urllib3(
    case: str, server: RawServer, client: LeanPersonalizeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcomes = {}
    for name in ("urllib3", "pool"):
        with monkeypatch.context() as patch:
            if name == "urllib3":
                patch.setattr(client, "_pool", Urllib3Direct(server.url, 2, read_timeout=0.3))
            server.load([ANSWERS[case]])
            outcomes[name] = _outcome(client)
            assert len(server.requests) == 1, name  # a new connection: no retry in either
            client.close()
    assert outcomes["pool"] == outcomes["urllib3"]
    if case.startswith("ok"):
        assert outcomes["pool"][0] == "success"
    elif case.startswith("200"):
        assert outcomes["pool"][0] == MalformedResponse.__name__


def test_through_a_proxy_urllib3_sends(server: RawServer, monkeypatch: pytest.MonkeyPatch) -> None:
    _aws(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", server.url)  # the raw server answers a proxied request alike
    proxied = LeanPersonalizeClient("us-east-1", "http://personalize.example:8080", 2)
    server.load([])
    assert proxied.put_events(**CALL)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert server.requests[0].startswith(b"POST http://personalize.example:8080/events HTTP/1.1\r\n")


def _certificate(folder: Path, name: str, san: str) -> tuple[Path, Path]:
    """A self-signed certificate for `san` (its own CA) and its key."""
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName={san}"], check=True, capture_output=True)
    return cert, key


@pytest.mark.parametrize(("san", "delivered"), [("IP:127.0.0.1", True), ("DNS:other.example", False)],
                         ids=["name-matches", "name-mismatch"])
def test_https_verifies_the_ca_bundle_and_the_name(
    san: str, delivered: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = _certificate(tmp_path, "endpoint", san)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    _aws(monkeypatch)
    monkeypatch.setenv("AWS_CA_BUNDLE", str(cert))  # the private CA, as botocore reads it
    with raw_server(tls) as server:
        client = LeanPersonalizeClient("us-east-1", server.url, 2)
        if delivered:
            for _ in range(3):
                assert client.put_events(**CALL)["ResponseMetadata"]["HTTPStatusCode"] == 200
            assert server.connections == 1  # one handshake, kept alive
        else:
            with pytest.raises(botocore.exceptions.SSLError) as info:  # what urllib3's SSLError mapped to
                client.put_events(**CALL)
            assert "mismatch" in str(info.value)  # the CA is trusted: the name is what fails
            assert server.requests == []


def test_https_without_the_ca_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = _certificate(tmp_path, "endpoint", "IP:127.0.0.1")
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    _aws(monkeypatch)
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    with raw_server(tls) as server, pytest.raises(botocore.exceptions.SSLError):
        LeanPersonalizeClient("us-east-1", server.url, 2).put_events(**CALL)


@pytest.mark.parametrize("endpoint", [None, "http://127.0.0.1:8080", "https://example.com:443",
                                      "https://example.com:8443", "http://[::1]:9000", "http://example.com:80"])
def test_host_header_is_the_signed_host(endpoint: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    _aws(monkeypatch)
    client = LeanPersonalizeClient("us-east-1", endpoint, 1)
    assert client._pool is not None
    assert client._pool.host_header == client._signer._host  # what SigV4 signed is what is sent
