"""Which 2xx answers are a well-formed success of PutEvents/PutItems/PutUsers (issue 13, item 2)."""

from __future__ import annotations

import pytest

from connector.personalize.api_response import MalformedResponse, check_success, malformed_reason

RID = "x-amzn-RequestId"


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({RID: "r"}, b""),  # what the service documents: "an HTTP 200 response with an empty HTTP body"
        ({"Content-Length": "0", RID: "r"}, b""),
        ({"Content-Type": "application/json", "Content-Length": "2", "x-amzn-requestid": "r"}, b"{}"),  # emulator
        ({RID: "r"}, b' {"someFutureOutputMember": 1} '),  # output members added later must not break delivery
        ({RID: "r"}, b"\n"),
    ],
)
def test_well_formed_successes(headers: dict[str, str], body: bytes) -> None:
    assert malformed_reason(200, headers, body) is None
    check_success("PutEvents", 200, headers, body)


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        ({"Content-Type": "text/html"}, b"<html><body>Bad gateway</body></html>", "a body that is not JSON (text/html"),
        ({}, b'{"a": tr', "a body that is not JSON"),
        ({}, b'{"score": NaN}', "a body that is not JSON"),
        ({}, b"[]", "a JSON array instead of an object"),
        ({}, b'"ok"', "a JSON string"),
        ({}, b"42", "a JSON number"),
        ({}, b"null", "a JSON null"),
        ({}, b"\xff\xfe{}", "not UTF-8"),
        ({}, b'{"__type": "InternalFailure", "message": "x"}', "an error document (keys __type, message)"),
        ({"x-amzn-ErrorType": "InternalFailure"}, b"{}", "an error type header"),
        ({"Content-Length": "64"}, b"{}", "a body cut short (2 of the 64 bytes announced)"),
        # A captive portal's empty 200, or "HTTP/1.1 200 OK" followed by a closed connection.
        ({}, b"", "no x-amzn-RequestId header"),
        ({"Content-Type": "application/json"}, b"{}", "no x-amzn-RequestId header"),
    ],
)
def test_anything_else_is_malformed(headers: dict[str, str], body: bytes, reason: str) -> None:
    found = malformed_reason(200, headers, body)
    assert found is not None and reason in found
    with pytest.raises(MalformedResponse) as caught:
        check_success("PutEvents", 200, headers, body)
    assert str(caught.value).startswith(f"PutEvents answered HTTP 200 with {found}")


def test_error_statuses_are_left_to_the_error_parser() -> None:
    assert malformed_reason(502, {"Content-Type": "text/html"}, b"<html>") is None


def test_the_excerpt_is_one_short_line() -> None:
    with pytest.raises(MalformedResponse) as caught:
        check_success("PutItems", 204, {}, b"<html>\n" + b"x" * 5000)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400 and message.endswith("; body: <html> " + "x" * 73 + "...")
