"""A lean HTTP client for Amazon Personalize Events' five write operations (PutEvents, PutItems,
PutUsers, PutActions, PutActionInteractions).

boto3's generic call pipeline (parameter handling, serialisation through the service model, event
hooks, endpoint resolution, retry bookkeeping, signing, the urllib3 session wrapper) costs several
hundred microseconds of CPU per call, most of the connector's CPU. These operations are
plain rest-json POSTs, so this client builds the same request botocore would, signs it as
botocore's `SigV4Auth` does (`connector.personalize.sigv4`, byte-identical, with the signing key
kept for the day), and sends it on a keep-alive connection pool of its own
(`connector.personalize.http_pool`; through an HTTP(S) proxy on a shared `urllib3.ProxyManager`):

- the endpoint, signing name and signing region are the ones botocore's own client resolves for the
  same session and region (partition, FIPS, dual-stack, endpoint_url): one call is prepared through
  botocore's whole pipeline at start-up and captured before it is sent;

- the body is the JSON botocore's rest-json serializer produces for the same parameters (the
  serialisation plan is compiled once from botocore's service model: timestamps become epoch
  seconds exactly as botocore computes them, floats get its Infinity/NaN handling; everything else
  passes through unchanged, in the caller's key order, as botocore's serializer keeps it);
- credentials come from the standard chain of a botocore session (refreshable ones refresh);
- a 2xx answer counts only when its body is well formed (`connector.personalize.api_response`), as for boto3;
- error responses are parsed by botocore's own rest-json parser and raised as the modeled
  `ClientError` subclasses, so `connector.personalize.sink.classify` sees what it sees with boto3;
- connection failures are raised as botocore's exception types, as botocore's urllib3 session
  maps them (the pool raises urllib3's exception types for the same failures).

Parameters are not validated (the connector validates entries against the same model first, and
its boto3 client runs with `parameter_validation=False` too). Thread-safe: the only shared mutable
state is the connection pool, which is.
"""

from __future__ import annotations

import base64
import calendar
import datetime
import decimal
import io
import json
import math
import socket
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import botocore.exceptions
import botocore.session
import urllib3
from botocore.awsrequest import AWSRequest, AWSResponse, HeadersDict
from botocore.compat import HTTPHeaders
from botocore.errorfactory import ClientExceptionsFactory
from botocore.model import OperationModel, Shape
from botocore.parsers import create_parser
from botocore.utils import parse_to_aware_datetime
from urllib3.exceptions import ConnectTimeoutError as URLLib3ConnectTimeoutError
from urllib3.exceptions import NewConnectionError, ProtocolError, ProxyError
from urllib3.exceptions import ReadTimeoutError as URLLib3ReadTimeoutError
from urllib3.exceptions import SSLError as URLLib3SSLError

from connector.personalize.api_response import check_success
from connector.personalize.http_pool import Answer, KeepAlivePool
from connector.personalize.sigv4 import CONTENT_TYPE, JsonPostSigner

__all__ = ["LeanPersonalizeClient"]

SERVICE_NAME = "personalize-events"
_OPERATIONS = {
    "put_events": "PutEvents",
    "put_items": "PutItems",
    "put_users": "PutUsers",
    "put_actions": "PutActions",
    "put_action_interactions": "PutActionInteractions",
}

Converter = Callable[[Any], Any]


# --- serialisation (what botocore.serialize.RestJSONSerializer does for these shapes) -------------


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _timestamp(value: Any) -> int | float:
    """Epoch seconds exactly as `Serializer._timestamp_unixtimestamp` (default precision) gives."""
    if isinstance(value, datetime.datetime):
        # Same integers as botocore's timegm(astimezone(UTC).timetuple()), naive meaning UTC,
        # without building a converted datetime and a struct_time per event.
        delta = (value if value.tzinfo is not None else value.replace(tzinfo=datetime.UTC)) - _EPOCH
        seconds = delta.days * 86400 + delta.seconds
        if delta.microseconds > 0:
            return (seconds * 10**6 + delta.microseconds) / 10**6
        return seconds
    aware = parse_to_aware_datetime(value)
    seconds = calendar.timegm(aware.timetuple())
    if aware.microsecond > 0:
        # Integers first, one rounding (botocore's comment: 1 + 3691 / 10**6 != 1.003691).
        return (seconds * 10**6 + aware.microsecond) / 10**6
    return seconds


def _float(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        value = float(value)
    if value == float("Infinity"):
        return "Infinity"
    if value == float("-Infinity"):
        return "-Infinity"
    if math.isnan(value):
        return "NaN"
    return value


def _blob(value: Any) -> str:
    if isinstance(value, str):
        value = value.encode("utf-8")
    return base64.b64encode(value).strip().decode("utf-8")


def _compile(shape: Shape) -> Converter | None:
    """A function turning a parameter value of `shape` into its JSON-ready form; None: as is."""
    kind = shape.type_name
    if kind == "timestamp":
        timestamp_format = shape.serialization.get("timestampFormat")
        if timestamp_format not in (None, "unixTimestamp"):
            raise NotImplementedError(f"timestamp format {timestamp_format!r} of {shape.name}")
        return _timestamp
    if kind in ("float", "double"):
        return _float
    if kind == "blob":
        return _blob
    if kind == "list":
        member = _compile(shape.member)  # type: ignore[attr-defined]
        if member is None:
            return None
        return _list_converter(member)
    if kind == "map":
        item = _compile(shape.value)  # type: ignore[attr-defined]
        if item is None:
            return None
        return _map_converter(item)
    if kind == "structure":
        if getattr(shape, "is_document_type", False):
            return None
        members: dict[str, Converter] = {}
        for name, member in shape.members.items():  # type: ignore[attr-defined]
            if "name" in member.serialization or "location" in member.serialization:
                raise NotImplementedError(f"renamed or non-body member {shape.name}.{name}")
            converter = _compile(member)
            if converter is not None:
                members[name] = converter
        if not members:
            return None
        return _structure_converter(members)
    return None


def _list_converter(member: Converter) -> Converter:
    return lambda value: [member(v) for v in value]


def _map_converter(item: Converter) -> Converter:
    return lambda value: {k: item(v) for k, v in value.items()}


def _structure_converter(members: dict[str, Converter]) -> Converter:
    def convert(value: Mapping[str, Any]) -> Any:
        out: dict[str, Any] | None = None
        for name, converter in members.items():
            if name in value:
                if out is None:
                    out = dict(value)  # same key order as the caller's, as botocore keeps it
                out[name] = converter(value[name])
        return value if out is None else out

    return convert


class _Operation:
    __slots__ = ("convert", "model", "name", "path")

    def __init__(self, model: OperationModel) -> None:
        http = model.http
        if http.get("method", "POST") != "POST" or "{" in http["requestUri"] or "?" in http["requestUri"]:
            raise NotImplementedError(f"{model.name}: only POSTs to a fixed path are supported")
        self.model = model
        self.name: str = model.name
        self.path: str = http["requestUri"]
        self.convert = _compile(model.input_shape) if model.input_shape is not None else None

    def body(self, params: dict[str, Any]) -> bytes:
        serialized = self.convert(params) if self.convert is not None else params
        # RestJSONSerializer: json.dumps with default separators, UTF-8.
        return json.dumps(serialized).encode("utf-8")


# --- the client ------------------------------------------------------------------------------------


def _user_agent(session: botocore.session.Session) -> str:
    try:
        from botocore.config import Config
        from botocore.useragent import UserAgentString

        base = UserAgentString.from_environment().with_client_config(Config(retries={"mode": "standard"}))
        return f"{base.to_string()} lib/personalize-kafka-connector#lean"
    except Exception:  # botocore's user-agent helpers are not a stable API
        return f"{session.user_agent()} lib/personalize-kafka-connector#lean"


@dataclass(frozen=True, slots=True)
class ResolvedEndpoint:
    endpoint_url: str  # scheme://host[:port], no trailing slash
    signing_name: str
    signing_region: str


def _resolve_with_botocore(
    session: botocore.session.Session, region: str, endpoint_url: str | None
) -> ResolvedEndpoint:
    """Where botocore's own personalize-events client sends a PutUsers call and how it signs it.

    A client of the same session and config prepares one call through its whole pipeline (endpoint
    ruleset, partition, FIPS / dual-stack settings, endpoint_url, auth scheme); a `before-send`
    handler takes the prepared request and answers it, so nothing is sent. The URL gives the
    endpoint, the SigV4 credential scope of its Authorization header the signing name and region.
    """
    probe: Any = session.create_client(
        SERVICE_NAME, region_name=region, endpoint_url=endpoint_url,
        aws_access_key_id="unused", aws_secret_access_key="unused",
    )
    prepared: list[AWSRequest] = []

    def capture(request: AWSRequest, **_: Any) -> Any:
        prepared.append(request)
        raw = urllib3.HTTPResponse(body=io.BytesIO(b"{}"), status=200, preload_content=False)
        return AWSResponse(str(request.url), 200, HTTPHeaders(), raw)

    probe.meta.events.register("before-send.personalize-events.PutUsers", capture)
    try:
        probe.put_users(datasetArn="probe", users=[{"userId": "probe"}])
    finally:
        probe.close()
    request = prepared[0]
    authorization = request.headers["Authorization"]
    if isinstance(authorization, bytes):
        authorization = authorization.decode()
    # "AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/<service>/aws4_request, ..."
    scope = authorization.split("Credential=", 1)[1].split(",", 1)[0].split("/")
    url = request.url
    assert url is not None
    return ResolvedEndpoint(url[: -len("/users")], signing_name=scope[3], signing_region=scope[2])


class LeanPersonalizeClient:
    """`put_events`, `put_items`, `put_users`, `put_actions`, `put_action_interactions` with boto3's
    keyword parameters and exceptions."""

    def __init__(
        self,
        region: str | None,
        endpoint_url: str | None,
        max_pool_connections: int,
        session: botocore.session.Session | None = None,
        connect_timeout: float = 5,
        read_timeout: float = 15,
    ) -> None:
        if not region:
            raise botocore.exceptions.NoRegionError()
        self._session = session or botocore.session.get_session()
        self.region = region
        service_model = self._session.get_service_model(SERVICE_NAME)
        # Endpoint, signing name and signing region exactly as botocore resolves them for this
        # session's config (partition, FIPS, dual-stack, endpoint_url), once.
        resolved = _resolve_with_botocore(self._session, region, endpoint_url)
        self.endpoint_url: str = resolved.endpoint_url
        self._signing_name: str = resolved.signing_name
        self.signing_region: str = resolved.signing_region
        self._operations = {
            method: _Operation(service_model.operation_model(name)) for method, name in _OPERATIONS.items()
        }
        parts = urlsplit(self.endpoint_url)
        if parts.query or parts.fragment:
            raise ValueError(f"endpoint_url with a query is not supported: {self.endpoint_url}")
        # An endpoint_url with a path (a gateway's prefix) prefixes every operation's path, as in botocore.
        self._paths = {method: parts.path.rstrip("/") + op.path for method, op in self._operations.items()}
        origin = f"{parts.scheme}://{parts.netloc}"
        self._urls = {method: origin + path for method, path in self._paths.items()}
        self._signer = JsonPostSigner(self.endpoint_url, self._signing_name, self.signing_region)
        self._canonical_paths = {m: self._signer.canonical_path(path) for m, path in self._paths.items()}
        self._user_agent = _user_agent(self._session)
        self._credentials = self._session.get_credentials()
        self._parser = create_parser(service_model.resolved_protocol)
        self._exceptions = ClientExceptionsFactory().create_client_exceptions(service_model)

        socket_options = [*urllib3.connection.HTTPConnection.default_socket_options]  # TCP_NODELAY
        socket_options.append((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1))  # tcp_keepalive=True
        context = None
        if parts.scheme == "https":
            from botocore.httpsession import create_urllib3_context, get_cert_path

            context = create_urllib3_context()
            # The CA bundle botocore verifies with: AWS_CA_BUNDLE or ca_bundle in the AWS config
            # (a private CA in front of the endpoint), else botocore's default bundle.
            context.load_verify_locations(get_cert_path(self._session.get_config_variable("ca_bundle") or True))
        proxy = None
        if parts.hostname and not urllib.request.proxy_bypass(parts.hostname):
            proxy = urllib.request.getproxies().get(parts.scheme)
        # Direct connections (the usual case) go through our own keep-alive pool, a fraction of
        # urllib3's CPU per call; through a proxy (HTTPS_PROXY etc.: CONNECT tunnels, proxy
        # headers) urllib3 does the work, as before.
        self._pool: KeepAlivePool | None = None
        self._proxy_pool: urllib3.HTTPConnectionPool | None = None
        if proxy:
            pool_kwargs: dict[str, Any] = {
                "maxsize": max_pool_connections,
                "block": True,
                "retries": False,
                "timeout": urllib3.Timeout(connect=connect_timeout, read=read_timeout),
                "socket_options": socket_options,
            }
            if context is not None:
                pool_kwargs["ssl_context"] = context
            self._manager: urllib3.PoolManager | None = urllib3.ProxyManager(proxy, num_pools=1, **pool_kwargs)
            self._proxy_pool = self._manager.connection_from_url(self.endpoint_url)
        else:
            self._manager = None
            if context is not None:
                # urllib3 matches the certificate's names itself (botocore's context leaves
                # check_hostname off); here the ssl module does, against the SNI name.
                context.check_hostname = True
            self._pool = KeepAlivePool(
                parts.scheme, parts.hostname or "", parts.port, max_pool_connections,
                connect_timeout, read_timeout, socket_options, context,
            )

    # The public operations ------------------------------------------------------------------------

    def put_events(self, **params: Any) -> dict[str, Any]:
        return self._call("put_events", params)

    def put_items(self, **params: Any) -> dict[str, Any]:
        return self._call("put_items", params)

    def put_users(self, **params: Any) -> dict[str, Any]:
        return self._call("put_users", params)

    def put_actions(self, **params: Any) -> dict[str, Any]:
        return self._call("put_actions", params)

    def put_action_interactions(self, **params: Any) -> dict[str, Any]:
        return self._call("put_action_interactions", params)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        if self._manager is not None:
            self._manager.clear()

    # Internals ------------------------------------------------------------------------------------

    def prepare_request(self, method: str, params: dict[str, Any]) -> AWSRequest:
        """The signed request `method` ("put_events", ...) would send (no network)."""
        body, headers = self._signed(method, params)
        return AWSRequest(method="POST", url=self._urls[method], data=body, headers=headers)

    def _signed(self, method: str, params: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        """The body and the headers of the call, signed as botocore's SigV4Auth signs them."""
        credentials = self._credentials
        if credentials is None:
            # boto3 resolves once and fails every call after; looking again lets credentials that
            # appear later (a mounted web identity token, say) be picked up.
            credentials = self._credentials = self._session.get_credentials()
            if credentials is None:
                raise botocore.exceptions.NoCredentialsError()
        body = self._operations[method].body(params)
        # Refreshable credentials refresh here when they are about to expire.
        frozen = credentials.get_frozen_credentials()
        headers = {"Content-Type": CONTENT_TYPE, "User-Agent": self._user_agent}
        headers.update(self._signer.sign(self._canonical_paths[method], body, frozen))
        # Added after signing (unsigned), as botocore's retry handler and its HTTP layer do.
        headers["amz-sdk-invocation-id"] = str(uuid.uuid4())
        headers["amz-sdk-request"] = "attempt=1; max=1"
        headers["Content-Length"] = str(len(body))
        return body, headers

    def _call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        body, headers = self._signed(method, params)
        op = self._operations[method]
        url: str = self._urls[method]
        response: Answer | urllib3.BaseHTTPResponse
        try:
            if self._pool is not None:
                response = self._pool.urlopen("POST", self._paths[method], body, headers)
            else:
                assert self._proxy_pool is not None
                response = self._proxy_pool.urlopen(
                    "POST",
                    url,  # the absolute URL, as a proxy needs it
                    body=body,
                    headers=headers,
                    retries=False,
                    redirect=False,
                    assert_same_host=False,
                    preload_content=True,
                    decode_content=False,
                    # A body shorter than its Content-Length is a cut answer, not a success (urllib3
                    # raises ProtocolError, mapped below as botocore's urllib3 session does).
                    enforce_content_length=True,
                )
        except URLLib3SSLError as e:
            raise botocore.exceptions.SSLError(endpoint_url=url, error=e) from e
        except (NewConnectionError, socket.gaierror) as e:
            raise botocore.exceptions.EndpointConnectionError(endpoint_url=url, error=e) from e
        except ProxyError as e:
            raise botocore.exceptions.ProxyConnectionError(proxy_url="(proxy)", error=e) from e
        except URLLib3ConnectTimeoutError as e:
            raise botocore.exceptions.ConnectTimeoutError(endpoint_url=url, error=e) from e
        except URLLib3ReadTimeoutError as e:
            raise botocore.exceptions.ReadTimeoutError(endpoint_url=url, error=e) from e
        except ProtocolError as e:
            request = AWSRequest(method="POST", url=url, data=body, headers=headers)
            raise botocore.exceptions.ConnectionClosedError(error=e, request=request, endpoint_url=url) from e
        except Exception as e:
            raise botocore.exceptions.HTTPClientError(error=e) from e
        status = response.status
        if status < 300:
            headers = {k.lower(): v for k, v in response.headers.items()}
            # Only a well-formed success is a delivery (the rule boto3 clients get from
            # api_response.install): a 200 with an HTML page or cut JSON is a transient failure.
            check_success(op.name, status, headers, response.data)
            metadata: dict[str, Any] = {}
            if "x-amzn-requestid" in headers:
                metadata["RequestId"] = headers["x-amzn-requestid"]
            metadata.update(HTTPStatusCode=status, HTTPHeaders=headers, RetryAttempts=0)
            return {"ResponseMetadata": metadata}
        raise self._error(op, status, response.headers, response.data)

    def _error(
        self, op: _Operation, status: int, headers: Mapping[str, str], body: bytes
    ) -> botocore.exceptions.ClientError:
        """The exception boto3 raises for this error response (botocore's parser, both passes)."""
        response_dict = {
            "headers": HeadersDict(headers),
            "status_code": status,
            "body": body,
            "context": {"operation_name": op.name},
        }
        parser: Any = self._parser
        parsed: dict[str, Any] = parser.parse(response_dict, op.model.output_shape)
        code = parsed.get("Error", {}).get("Code")
        if code is not None:
            error_shape = op.model.service_model.shape_for_error_code(code)
            if error_shape is not None:
                parsed.update(parser.parse(response_dict, error_shape))
        parsed.setdefault("ResponseMetadata", {})["RetryAttempts"] = 0
        error_class: Any = self._exceptions.from_code(code)
        exc: botocore.exceptions.ClientError = error_class(parsed, op.name)
        return exc

