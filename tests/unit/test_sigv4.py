"""JsonPostSigner signs exactly as botocore's SigV4Auth: same X-Amz-Date, token and Authorization.

Byte-for-byte against `SigV4Auth.add_auth` on the same request, for every operation path, with and
without a session token, across a date change and a secret change (the cached signing key must
follow both), for hosts with and without a port.
"""

from __future__ import annotations

import datetime
import random

import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from connector.personalize.sigv4 import CONTENT_TYPE, JsonPostSigner

PATHS = ["/events", "/items", "/users", "/actions", "/action-interactions"]


def _botocore_headers(url: str, path: str, body: bytes, credentials: ReadOnlyCredentials, name: str,
                      region: str) -> dict[str, str]:
    request = AWSRequest(method="POST", url=url + path, data=body,
                         headers={"Content-Type": CONTENT_TYPE, "User-Agent": "Boto3/1 test"})
    botocore.auth.SigV4Auth(credentials, name, region).add_auth(request)
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()
            if k in ("X-Amz-Date", "X-Amz-Security-Token", "Authorization")}


@pytest.mark.parametrize("url", ["https://personalize-events.eu-west-1.amazonaws.com", "http://127.0.0.1:8750",
                                 "https://personalize-events-fips.us-gov-west-1.amazonaws.com:443",
                                 "http://[::1]:9000"])
@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzE token/with+odd=chars"])
def test_signatures_equal_sigv4auth(url: str, token: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(7)
    signer = JsonPostSigner(url, "personalize", "eu-west-1")
    now = [datetime.datetime(2024, 5, 6, 23, 59, 58, tzinfo=datetime.UTC)]
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: now[0])
    for step in range(12):
        secret = "secret-a" if step < 8 else "secret-b"  # a refresh changes the secret mid-day
        credentials = ReadOnlyCredentials(f"AKID{step}", secret, token)
        path = PATHS[step % len(PATHS)]
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 400)))
        expected = _botocore_headers(url, path, body, credentials, "personalize", "eu-west-1")
        assert signer.sign(signer.canonical_path(path), body, credentials) == expected
        now[0] += datetime.timedelta(seconds=1)  # crosses midnight at step 1: a new signing key


def test_unknown_signed_headers_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(botocore.auth, "SIGNED_HEADERS_BLACKLIST", [])  # would sign User-Agent too
    with pytest.raises(NotImplementedError):
        JsonPostSigner("https://example.com", "personalize", "eu-west-1")
