"""The lean client (the default) sends what boto3's client sends, wherever botocore would send it,
with whatever credentials botocore would sign with.

- Endpoints: every partition (aws, aws-cn, aws-us-gov) with FIPS and dual-stack on and off, and
  custom endpoint_urls: the URL, body, and signed headers of all five operations equal botocore's
  own prepared request (captured by a `before-send` handler, so nothing is sent).
- Credentials: botocore RefreshableCredentials that expire mid-run, and web identity (IRSA:
  AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN) against a 127.0.0.1 STS stand-in serving
  AssumeRoleWithWebIdentity: every call is signed with the credentials botocore holds at that
  moment, the refreshed ones after a refresh, and a rotated token file is what STS gets next.
"""

from __future__ import annotations

import datetime
import http.server
import io
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.auth
import botocore.credentials
import botocore.session
import pytest
import urllib3
from botocore.awsrequest import AWSRequest, AWSResponse

from connector.personalize.lean_client import LeanPersonalizeClient
from connector.personalize.sink import make_client

FROZEN = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)
SENT = datetime.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.UTC)
ARN = "arn:aws:personalize:eu-west-1:123456789012:dataset/g/X"
CALLS: dict[str, dict[str, Any]] = {
    "put_events": {"trackingId": "t-1", "sessionId": "s-1", "userId": "u-1",
                   "eventList": [{"eventType": "click", "sentAt": SENT, "itemId": "i-1"}]},
    "put_items": {"datasetArn": ARN, "items": [{"itemId": "i-1", "properties": '{"a": 1}'}]},
    "put_users": {"datasetArn": ARN, "users": [{"userId": "u-1"}]},
    "put_actions": {"datasetArn": ARN, "actions": [{"actionId": "a-1"}]},
    "put_action_interactions": {"trackingId": "t-1", "actionInteractions": [
        {"actionId": "a-1", "sessionId": "s-1", "timestamp": SENT, "eventType": "Viewed"}]},
}
SIGNED = ("Content-Type", "X-Amz-Date", "X-Amz-Security-Token", "Authorization", "Content-Length")


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token")
    for name in ("AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT",
                 "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_PERSONALIZE_EVENTS", "AWS_WEB_IDENTITY_TOKEN_FILE",
                 "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _capture(client: Any) -> list[AWSRequest]:
    """Requests `client` prepares, answered with an empty 200 instead of being sent."""
    requests: list[AWSRequest] = []

    def before_send(request: AWSRequest, **_: Any) -> AWSResponse:
        requests.append(request)
        headers = {"x-amzn-RequestId": "captured"}  # a well-formed answer (api_response's rule)
        raw = urllib3.HTTPResponse(body=io.BytesIO(b"{}"), headers=headers, status=200, preload_content=False)
        return AWSResponse(str(request.url), 200, headers, raw)  # type: ignore[arg-type]

    client.meta.events.register("before-send.*", before_send)
    return requests


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _assert_same(actual: AWSRequest, expected: AWSRequest) -> None:
    assert actual.url == expected.url
    assert actual.body == expected.body
    for header in SIGNED:
        assert _text(actual.headers.get(header, "")) == _text(expected.headers.get(header, "")), header
    assert set(actual.headers.keys()) == set(expected.headers.keys())


REGIONS = {"aws": "eu-west-1", "aws-cn": "cn-north-1", "aws-us-gov": "us-gov-west-1"}


@pytest.mark.parametrize("dualstack", [False, True], ids=["ipv4", "dualstack"])
@pytest.mark.parametrize("fips", [False, True], ids=["plain", "fips"])
@pytest.mark.parametrize("partition", sorted(REGIONS))
def test_partitions_fips_and_dualstack_resolve_as_botocore(
    partition: str, fips: bool, dualstack: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_USE_FIPS_ENDPOINT", str(fips).lower())
    monkeypatch.setenv("AWS_USE_DUALSTACK_ENDPOINT", str(dualstack).lower())
    _compare_all(REGIONS[partition], None, monkeypatch)


@pytest.mark.parametrize("endpoint_url", ["http://127.0.0.1:8750", "https://personalize.internal.example:8443",
                                          "https://vpce-0a1b.personalize-events.eu-west-1.vpce.amazonaws.com/",
                                          "http://127.0.0.1:8750/gateway/personalize"])
@pytest.mark.parametrize("fips", [False, True], ids=["plain", "fips"])
def test_custom_endpoint_url_resolves_as_botocore(endpoint_url: str, fips: bool,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_USE_FIPS_ENDPOINT", str(fips).lower())
    _compare_all("eu-west-1", endpoint_url, monkeypatch)


def test_endpoint_url_from_the_environment_as_botocore(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_PERSONALIZE_EVENTS", "http://127.0.0.1:9911")
    lean = _compare_all("eu-west-1", None, monkeypatch)
    assert lean.endpoint_url == "http://127.0.0.1:9911"


def _compare_all(region: str, endpoint_url: str | None, monkeypatch: pytest.MonkeyPatch) -> LeanPersonalizeClient:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: FROZEN)
    boto = make_client(region, endpoint_url, 4, http_client="boto3")
    captured = _capture(boto)
    lean = LeanPersonalizeClient(region, endpoint_url, 4)
    for method, params in CALLS.items():
        getattr(boto, method)(**params)
        _assert_same(lean.prepare_request(method, params), captured[-1])
    return lean


def _credential_key(request: AWSRequest) -> str:
    return _text(request.headers["Authorization"]).split("Credential=", 1)[1].split("/", 1)[0]


def test_refreshable_credentials_expiring_mid_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A session whose credentials expire between calls: both clients refresh and sign alike."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: FROZEN)
    now = [datetime.datetime(2024, 5, 6, 7, 0, tzinfo=datetime.UTC)]
    issued: list[str] = []

    def refresh() -> dict[str, str]:
        issued.append(f"ASIAREFRESH{len(issued) + 1}")
        expiry = now[0] + datetime.timedelta(minutes=30)
        return {"access_key": issued[-1], "secret_key": f"secret-{len(issued)}", "token": f"token-{len(issued)}",
                "expiry_time": expiry.isoformat()}

    first = refresh()
    credentials = botocore.credentials.RefreshableCredentials(
        first["access_key"], first["secret_key"], first["token"], now[0] + datetime.timedelta(minutes=30),
        refresh, "test-refresh", time_fetcher=lambda: now[0],  # the clock the refresh decision reads
    )

    class Provider(botocore.credentials.CredentialProvider):
        METHOD = "test-refresh"

        def load(self) -> botocore.credentials.Credentials:
            return credentials

    session = botocore.session.get_session()
    session.get_component("credential_provider").insert_before("env", Provider())
    boto = boto3.session.Session(botocore_session=session).client("personalize-events", region_name="eu-west-1")
    captured = _capture(boto)
    lean = LeanPersonalizeClient("eu-west-1", None, 2, session=session)
    keys = []
    for _ in range(3):
        for method in ("put_events", "put_users"):
            getattr(boto, method)(**CALLS[method])
            actual = lean.prepare_request(method, CALLS[method])
            _assert_same(actual, captured[-1])
            keys.append(_credential_key(actual))
        now[0] += datetime.timedelta(minutes=25)  # inside the mandatory refresh window next time
    assert keys == ["ASIAREFRESH1"] * 2 + ["ASIAREFRESH2"] * 2 + ["ASIAREFRESH3"] * 2


class StsStandIn(http.server.ThreadingHTTPServer):
    """AssumeRoleWithWebIdentity on 127.0.0.1: each answer a new key that expires in 11 minutes,
    inside botocore's 15-minute advisory window, so every use of the credentials refreshes them."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _StsHandler)
        self.tokens: list[str] = []  # the WebIdentityToken of each request
        self.keys: list[str] = []


class _StsHandler(http.server.BaseHTTPRequestHandler):
    server: StsStandIn

    def do_POST(self) -> None:
        form = urllib.parse.parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        assert form["Action"] == ["AssumeRoleWithWebIdentity"]
        self.server.tokens.append(form["WebIdentityToken"][0])
        n = len(self.server.tokens)
        self.server.keys.append(f"ASIAWEBID{n}")
        expiry = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=11)).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = (
            '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            f"<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIAWEBID{n}</AccessKeyId>"
            f"<SecretAccessKey>secret-{n}</SecretAccessKey><SessionToken>token-{n}</SessionToken>"
            f"<Expiration>{expiry}</Expiration></Credentials>"
            "<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/r/pkc</Arn><AssumedRoleId>AROA:pkc"
            "</AssumedRoleId></AssumedRoleUser></AssumeRoleWithWebIdentityResult>"
            "<ResponseMetadata><RequestId>sts-1</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def sts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[StsStandIn, Path]]:
    server = StsStandIn()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    token_file = tmp_path / "token"
    token_file.write_text("jwt-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/r")
    monkeypatch.setenv("AWS_ROLE_SESSION_NAME", "pkc-test")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{server.server_port}")
    yield server, token_file
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize("http_client", ["lean", "boto3"])
def test_web_identity_credentials_refresh_mid_run(sts: tuple[StsStandIn, Path], http_client: str) -> None:
    server, token_file = sts
    client = make_client("eu-west-1", "http://127.0.0.1:9", 2, http_client=http_client)
    captured = _capture(client) if http_client == "boto3" else []
    signed_with = []
    for i in range(3):
        if i == 2:
            token_file.write_text("jwt-2")  # the kubelet rotates the projected token
        if http_client == "lean":
            request = client.prepare_request("put_events", CALLS["put_events"])
        else:
            client.put_events(**CALLS["put_events"])
            request = captured[-1]
        signed_with.append((_credential_key(request), _text(request.headers["X-Amz-Security-Token"])))
    # Every call signed with the credentials STS answered last: refreshed ones after a refresh.
    assert signed_with == [("ASIAWEBID1", "token-1"), ("ASIAWEBID2", "token-2"), ("ASIAWEBID3", "token-3")]
    assert server.tokens == ["jwt-1", "jwt-1", "jwt-2"]


def test_ca_bundle_from_aws_ca_bundle_as_botocore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A private CA named by AWS_CA_BUNDLE is the one the lean client verifies with, as botocore does."""
    import certifi

    first = certifi.contents().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    bundle = tmp_path / "ca.pem"
    bundle.write_text(first)
    default = LeanPersonalizeClient("eu-west-1", None, 1)._pool.ssl_context
    assert len(default.get_ca_certs()) > 1  # botocore's default bundle
    monkeypatch.setenv("AWS_CA_BUNDLE", str(bundle))
    # What botocore's client creator reads for `verify`; the lean client reads the same variable.
    assert botocore.session.get_session().get_config_variable("ca_bundle") == str(bundle)
    private = LeanPersonalizeClient("eu-west-1", None, 1)._pool.ssl_context
    assert len(private.get_ca_certs()) == 1
