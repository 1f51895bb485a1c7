"""SigV4 signatures for JSON POSTs to one host's fixed paths, as botocore's `SigV4Auth` computes them.

`SigV4Auth.add_auth` is generic: it copies and lower-cases every header into a case-insensitive
map twice, re-parses the URL three times, derives the signing key with four HMACs and formats the
timestamp, on every call (about a third of the lean client's CPU per call). For the connector's
requests everything but the date, the credentials and the body is fixed, so this signer takes the
host header, the canonical path and the list of signed headers from botocore once (its own
`headers_to_sign` and path normalisation) and keeps the derived signing key while the secret and
the date stay the same. The result is byte-identical to `SigV4Auth`'s (tests/unit/test_sigv4.py
compares them for every operation, with and without a session token, across a date change).

Imports botocore only.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, cast
from urllib.parse import quote

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials
from botocore.utils import normalize_url_path

__all__ = ["JsonPostSigner"]

_ALGORITHM = "AWS4-HMAC-SHA256"
_TIMESTAMP = botocore.auth.SIGV4_TIMESTAMP
CONTENT_TYPE = "application/json"


class JsonPostSigner:
    """Signs `POST <path>` with a JSON body on `endpoint_url` for one signing name and region."""

    def __init__(self, endpoint_url: str, signing_name: str, signing_region: str) -> None:
        self._region = signing_region
        self._service = signing_name
        template = AWSRequest(
            method="POST",
            url=endpoint_url + "/",
            headers={"Content-Type": CONTENT_TYPE, "User-Agent": "ua", "X-Amz-Date": "d", "X-Amz-Security-Token": "t"},
        )
        no_credentials = ReadOnlyCredentials("", "", None)  # headers_to_sign reads none
        signed = botocore.auth.SigV4Auth(no_credentials, signing_name, signing_region).headers_to_sign(template)
        names = sorted(set(signed))
        if names != ["content-type", "host", "x-amz-date", "x-amz-security-token"]:
            raise NotImplementedError(f"botocore signs other headers than expected: {names}")
        self._host: str = signed["host"]
        self._key: tuple[str, str, bytes] = ("", "", b"")  # (secret, yyyymmdd, signing key)

    def canonical_path(self, path: str) -> str:
        """The canonical URI of `path`, as `SigV4Auth` normalises and quotes it."""
        return quote(normalize_url_path(path), safe="/~")

    def sign(self, canonical_path: str, body: bytes, credentials: ReadOnlyCredentials) -> dict[str, str]:
        """The X-Amz-Date, X-Amz-Security-Token (with a session token) and Authorization headers."""
        # The clock SigV4Auth reads, looked up where it does (botocore.auth), at every call.
        timestamp = cast(Any, botocore.auth).get_current_datetime().strftime(_TIMESTAMP)
        day = timestamp[:8]
        token = credentials.token
        if token:
            signed_headers = "content-type;host;x-amz-date;x-amz-security-token"
            # SigV4 "Trimall" of the header value, as SigV4Auth applies it.
            extra = f"x-amz-security-token:{' '.join(token.split())}\n"
        else:
            signed_headers = "content-type;host;x-amz-date"
            extra = ""
        canonical_request = (
            f"POST\n{canonical_path}\n\ncontent-type:{CONTENT_TYPE}\nhost:{self._host}\nx-amz-date:{timestamp}\n"
            f"{extra}\n{signed_headers}\n{hashlib.sha256(body).hexdigest()}"
        )
        scope = f"{day}/{self._region}/{self._service}/aws4_request"
        string_to_sign = (
            f"{_ALGORITHM}\n{timestamp}\n{scope}\n{hashlib.sha256(canonical_request.encode('utf-8')).hexdigest()}"
        )
        signature = hmac.new(self._signing_key(credentials.secret_key or "", day), string_to_sign.encode("utf-8"),
                             hashlib.sha256).hexdigest()
        headers = {"X-Amz-Date": timestamp}
        if token:
            headers["X-Amz-Security-Token"] = token
        headers["Authorization"] = (
            f"{_ALGORITHM} Credential={credentials.access_key}/{scope}, SignedHeaders={signed_headers}, "
            f"Signature={signature}"
        )
        return headers

    def _signing_key(self, secret: str, day: str) -> bytes:
        cached_secret, cached_day, key = self._key
        if cached_secret == secret and cached_day == day:
            return key
        key = f"AWS4{secret}".encode()
        for part in (day, self._region, self._service, "aws4_request"):
            key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
        # One tuple replaced whole (atomic): a pool thread reads an old or a new key, never a mix.
        self._key = (secret, day, key)
        return key
