"""A lean HTTP client for Amazon Personalize Events' five write operations (PutEvents, PutItems,
PutUsers, PutActions, PutActionInteractions).

boto3's generic call pipeline (parameter handling, serialisation through the service model, event
hooks, endpoint resolution, retry bookkeeping, signing, the urllib3 session wrapper) costs several
hundred microseconds of CPU per call, most of the connector's CPU. These operations are
plain rest-json POSTs, so this client builds the same request botocore would, signs it with
botocore's own `SigV4Auth`, and sends it on a shared `urllib3.PoolManager`:

- the body is the JSON botocore's rest-json serializer produces for the same parameters (the
  serialisation plan is compiled once from botocore's service model: timestamps become epoch
  seconds exactly as botocore computes them, floats get its Infinity/NaN handling; everything else
  passes through unchanged, in the caller's key order, as botocore's serializer keeps it);
- credentials come from the standard chain of a botocore session (refreshable ones refresh);
- a 2xx answer counts only when its body is well formed (`connector.personalize.api_response`), as for boto3;
- error responses are parsed by botocore's own rest-json parser and raised as the modeled
  `ClientError` subclasses, so `connector.personalize.sink.classify` sees what it sees with boto3;
- connection failures are raised as botocore's exception types, as botocore's urllib3 session
  maps them.

Parameters are not validated (the connector validates entries against the same model first, and
its boto3 client runs with `parameter_validation=False` too). Thread-safe: the only shared mutable
state is urllib3's connection pool, which is.
"""

from __future__ import annotations

import base64
import calendar
import datetime
import decimal
import json
import math
import socket
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import botocore.exceptions
import botocore.session
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HeadersDict
from botocore.errorfactory import ClientExceptionsFactory
from botocore.model import OperationModel, Shape
from botocore.parsers import create_parser
from botocore.utils import parse_to_aware_datetime
from urllib3.exceptions import ConnectTimeoutError as URLLib3ConnectTimeoutError
from urllib3.exceptions import NewConnectionError, ProtocolError, ProxyError
from urllib3.exceptions import ReadTimeoutError as URLLib3ReadTimeoutError
from urllib3.exceptions import SSLError as URLLib3SSLError

from connector.personalize.api_response import check_success

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
        self._signing_name: str = service_model.metadata.get("signingName") or service_model.endpoint_prefix
        # Endpoint (and region name validation) exactly as botocore resolves them, once.
        probe = self._session.create_client(
            SERVICE_NAME,
            region_name=region,
            endpoint_url=endpoint_url,
            aws_access_key_id="unused",
            aws_secret_access_key="unused",
        )
        self.endpoint_url: str = probe.meta.endpoint_url.rstrip("/")
        self._operations = {
            method: _Operation(service_model.operation_model(name)) for method, name in _OPERATIONS.items()
        }
        self._urls = {method: self.endpoint_url + op.path for method, op in self._operations.items()}
        parts = urlsplit(self.endpoint_url)
        if parts.path not in ("", "/"):
            raise ValueError(f"endpoint_url with a path is not supported: {self.endpoint_url}")
        self._user_agent = _user_agent(self._session)
        self._credentials = self._session.get_credentials()
        self._parser = create_parser(service_model.resolved_protocol)
        self._exceptions = ClientExceptionsFactory().create_client_exceptions(service_model)

        socket_options = [*urllib3.connection.HTTPConnection.default_socket_options]
        socket_options.append((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1))  # tcp_keepalive=True
        pool_kwargs: dict[str, Any] = {
            "maxsize": max_pool_connections,
            "block": True,
            "retries": False,
            "timeout": urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            "socket_options": socket_options,
        }
        if parts.scheme == "https":
            from botocore.httpsession import create_urllib3_context, get_cert_path

            context = create_urllib3_context()
            context.load_verify_locations(get_cert_path(True))
            pool_kwargs["ssl_context"] = context
        proxy = None
        if parts.hostname and not urllib.request.proxy_bypass(parts.hostname):
            proxy = urllib.request.getproxies().get(parts.scheme)
        self._manager: urllib3.PoolManager = (
            urllib3.ProxyManager(proxy, num_pools=1, **pool_kwargs)
            if proxy
            else urllib3.PoolManager(num_pools=1, **pool_kwargs)
        )
        self._pool = self._manager.connection_from_url(self.endpoint_url)
        self._via_proxy = bool(proxy)

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
        self._manager.clear()

    # Internals ------------------------------------------------------------------------------------

    def prepare_request(self, method: str, params: dict[str, Any]) -> AWSRequest:
        """The signed request `method` ("put_events", ...) would send (no network)."""
        op = self._operations[method]
        credentials = self._credentials
        if credentials is None:
            # boto3 resolves once and fails every call after; looking again lets credentials that
            # appear later (a mounted web identity token, say) be picked up.
            credentials = self._credentials = self._session.get_credentials()
            if credentials is None:
                raise botocore.exceptions.NoCredentialsError()
        body = op.body(params)
        request = AWSRequest(
            method="POST",
            url=self._urls[method],
            data=body,
            headers={"Content-Type": "application/json", "User-Agent": self._user_agent},
        )
        SigV4Auth(credentials.get_frozen_credentials(), self._signing_name, self.region).add_auth(request)
        # Added after signing (unsigned), as botocore's retry handler does.
        request.headers["amz-sdk-invocation-id"] = str(uuid.uuid4())
        request.headers["amz-sdk-request"] = "attempt=1; max=1"
        request.headers["Content-Length"] = str(len(body))
        return request

    def _call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        request = self.prepare_request(method, params)
        op = self._operations[method]
        url: str = self._urls[method]
        target = url if self._via_proxy else op.path
        try:
            response = self._pool.urlopen(
                "POST",
                target,
                body=request.body,
                headers=dict(request.headers.items()),
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

