"""What counts as a successful answer of PutEvents, PutItems and PutUsers.

None of the three operations has an output shape in botocore's model, so botocore never reads the
body of a 2xx answer: a load balancer's HTML page, a captive portal or a truncated proxy answer
served with status 200 would count as "delivered" and the offsets would be committed past events
that never reached Personalize. The service documents its success answer as "an HTTP 200 response
with an empty HTTP body" (PutEvents API reference, "Response Elements"); the emulator answers `{}`.
So a 2xx is a success only when it carries the service's `x-amzn-RequestId` header and its body is
empty or a JSON object that is not an error document; anything else is a `MalformedResponse`, a
transient failure: retried, logged, counted.

Both HTTP clients use the same rule: boto3 clients through an `after-call` event handler
(`install`), the lean client by calling `check_success` itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import botocore.exceptions

__all__ = ["MalformedResponse", "check_success", "install", "malformed_reason"]

# Keys of the AWS JSON error documents (awsJson/restJson "__type", "code", "message" and their
# capitalised forms); a body carrying them describes a failure, whatever its status says.
_ERROR_KEYS = frozenset({"__type", "code", "Code", "message", "Message", "errorMessage", "errorType"})
_EXCERPT_CHARS = 80


class MalformedResponse(botocore.exceptions.BotoCoreError):
    """A 2xx answer whose body is not the API's (empty or a JSON object): not a delivery."""

    # No quotes around the excerpt or in the text: the log redaction hashes quoted values.
    fmt = ("{operation} answered HTTP {status} with {reason}, not an API answer (empty or a JSON object); "
           "body: {excerpt}")

    def __init__(self, *, operation: str, status: int, reason: str, excerpt: str, content_type: str) -> None:
        super().__init__(operation=operation, status=status, reason=reason, excerpt=excerpt)
        self.operation = operation
        self.status = status
        self.reason = reason
        self.content_type = content_type


def malformed_reason(status: int, headers: Mapping[str, str], body: bytes) -> str | None:
    """Why a 2xx answer is not a well-formed success; None when it is one (or is not a 2xx)."""
    if not 200 <= status < 300:
        return None  # errors are parsed (and classified) by botocore's error parser
    lowered = {k.lower(): v for k, v in headers.items()}
    if "x-amzn-errortype" in lowered:
        return f"an error type header (x-amzn-ErrorType: {lowered['x-amzn-errortype']})"
    declared = lowered.get("content-length", "")
    if declared.isdigit() and int(declared) != len(body):
        # botocore reads these bodies without enforcing Content-Length: a connection closed early
        # by a proxy leaves a prefix that may even parse.
        return f"a body cut short ({len(body)} of the {declared} bytes announced)"
    reason = _body_reason(body, lowered)
    if reason is None and "x-amzn-requestid" not in lowered:
        # Every answer of the service carries its request id. Without one this is not the API's
        # answer: a proxy's or portal's empty 200, or a header block cut short by a closed connection.
        return "no x-amzn-RequestId header (every answer of the service carries one)"
    return reason


def _body_reason(body: bytes, lowered: Mapping[str, str]) -> str | None:
    """Why a 2xx body is not the API's success body (empty or a JSON object), or None."""
    if not body.strip():
        return None  # what the service sends
    try:
        text = body.decode("utf-8")  # JSON on the wire is UTF-8 (json.loads would guess UTF-16 too)
    except UnicodeDecodeError:
        return "a body that is not UTF-8"
    try:
        parsed = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        content_type = lowered.get("content-type", "no content type")
        return f"a body that is not JSON ({content_type}, {len(body)} bytes: {_json_error(exc)})"
    if not isinstance(parsed, dict):
        return f"a JSON {_json_type(parsed)} instead of an object"
    error_keys = sorted(_ERROR_KEYS & parsed.keys())
    if error_keys:
        return f"an error document (keys {', '.join(error_keys)})"
    return None


def check_success(operation: str, status: int, headers: Mapping[str, str], body: bytes) -> None:
    """Raise MalformedResponse unless a 2xx answer is a well-formed success."""
    reason = malformed_reason(status, headers, body)
    if reason is not None:
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        raise MalformedResponse(operation=operation, status=status, reason=reason, excerpt=_excerpt(body),
                                content_type=content_type)


def install(client: Any) -> Any:
    """Make a boto3 personalize-events client raise MalformedResponse for a malformed 2xx answer."""
    # unique_id: installing twice on one client still checks each answer once.
    client.meta.events.register("after-call.personalize-events", _after_call, unique_id="pkc-well-formed-success")
    return client


def _after_call(http_response: Any, model: Any, **_: Any) -> None:
    # Fired for every answer, errors included; botocore has read the body (no streaming output).
    check_success(model.name, http_response.status_code, http_response.headers, http_response.content or b"")


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


def _json_error(exc: ValueError) -> str:
    return exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array"


def _excerpt(body: bytes) -> str:
    head = body[: _EXCERPT_CHARS * 4]
    text = " ".join(head.decode("utf-8", errors="replace").split())  # one log line, whatever the page
    cut = len(text) > _EXCERPT_CHARS or len(body) > len(head)
    return (text[:_EXCERPT_CHARS] + ("..." if cut else "")) or "(empty)"
