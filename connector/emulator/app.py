"""The emulated service: routes API calls and /_emulator/ endpoints to their handlers.

Order of checks for an API call, as the real service applies them (front door first):
route -> SigV4 header present -> injected faults -> JSON body -> unknown tracker/dataset ->
request-rate quota -> model validation -> store.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from typing import Any

from connector.emulator.faults import Faults, rejected_entries
from connector.emulator.http import Request, Response
from connector.emulator.ratelimit import RateLimiter
from connector.emulator.stats import Stats
from connector.emulator.storage import KINDS, Store, StoredCall, expand
from connector.personalize import api_model

# HTTP route -> (operation, storage kind). Shapes and limits come from the service model.
ROUTES = {
    "/events": ("PutEvents", "events"),
    "/items": ("PutItems", "items"),
    "/users": ("PutUsers", "users"),
    "/actions": ("PutActions", "actions"),
    "/action-interactions": ("PutActionInteractions", "action-interactions"),
}
SIGV4_PREFIX = "AWS4-HMAC-SHA256 Credential="
MAX_MESSAGE_VIOLATIONS = 10  # keep error messages readable when a call is wildly wrong
JSON_LINES_PER_CHUNK = 500


@dataclass
class Config:
    tracking_ids: frozenset[str] = frozenset()  # empty: any tracking id exists
    dataset_arns: frozenset[str] = frozenset()  # empty: any (valid) dataset ARN exists
    max_requests_per_second: float = 1000.0
    seed: int | None = None


class ApiError(Exception):
    """An AWS error response: rest-json puts the code in x-amzn-ErrorType, the text in `message`."""

    def __init__(self, status: int, code: str, message: str, outcome: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.outcome = outcome  # the Stats outcome it counts as


def _json_response(status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    all_headers = [("Content-Type", "application/json"), *(headers or [])]
    return Response(status, json.dumps(payload).encode(), all_headers)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


@dataclass
class Emulator:
    store: Store
    config: Config = field(default_factory=Config)
    faults: Faults = field(default_factory=Faults)
    stats: Stats = field(default_factory=Stats)

    def __post_init__(self) -> None:
        self._limiter = RateLimiter(self.config.max_requests_per_second)
        self._rng = random.Random(self.config.seed)

    # -- entry point ----------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response | Awaitable[Response]:
        route = ROUTES.get(request.path)
        if route is not None and request.method == "POST":
            if self.faults.latency_ms > 0:
                return self._delayed(request, *route)
            return self._api_call(request, *route)
        if request.path.startswith("/_emulator/"):
            return self._control(request)
        return self._error_response(ApiError(404, "UnknownOperationException", "Unknown operation", "rejected"), None)

    async def _delayed(self, request: Request, operation: str, kind: str) -> Response:
        # Counted, throttled and stamped (receivedAt) on arrival, as the service's front door
        # would: the latency is the time to answer. Stamping after the sleep would turn a stall
        # of this loop into a burst of stamps that no client sent.
        response = self._api_call(request, operation, kind)
        await asyncio.sleep(self.faults.latency_ms / 1000.0)
        return response

    # -- API calls ------------------------------------------------------------------------------------
    def _api_call(self, request: Request, operation: str, kind: str) -> Response:
        try:
            stored = self._accept(request, operation, kind)
        except ApiError as err:
            self.stats.record(operation, err.outcome, error=err.code)
            return self._error_response(err, request)
        except _Abort:
            self.stats.record(operation, "dropped")
            return Response(0, abort=True)
        self.stats.record(operation, "accepted", entries=stored)
        self.stats.add_entries(kind, stored)
        return Response(200, b"{}", [("Content-Type", "application/json"), ("x-amzn-RequestId", str(uuid.uuid4()))])

    def _accept(self, request: Request, operation: str, kind: str) -> int:
        """Checks one call and stores it; returns how many entries were stored."""
        auth = request.headers.get("authorization", "")
        if not auth.startswith(SIGV4_PREFIX):
            raise ApiError(403, "MissingAuthenticationTokenException", "Missing Authentication Token", "rejected")
        self._inject_faults()
        try:
            body = json.loads(request.body, parse_constant=_reject_constant) if request.body else {}
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "InvalidInputException", f"Malformed request body: {exc}", "rejected") from exc
        if not isinstance(body, dict):
            raise ApiError(400, "InvalidInputException", "The request body must be a JSON object", "rejected")
        key_name, list_name, _ = KINDS[kind]
        key = body.get(key_name)
        if isinstance(key, str):
            self._check_exists(kind, key_name, key)
            if not self._limiter.allow(f"{key_name}:{key}"):
                raise ApiError(400, "ThrottlingException", "Rate exceeded", "throttled")
        violations: list[Any] = [
            *api_model.check_request(operation, body),
            *rejected_entries(self.faults, body.get(list_name), list_name),
        ]
        if violations:
            shown = "; ".join(str(v) for v in violations[:MAX_MESSAGE_VIOLATIONS])
            more = len(violations) - MAX_MESSAGE_VIOLATIONS
            if more > 0:
                shown += f"; and {more} more"
            raise ApiError(400, "InvalidInputException", shown, "rejected")
        assert isinstance(key, str)  # required string: validated above
        self.store.add(StoredCall(kind, key, time.time(), body), request.body)
        return len(body[list_name])

    def _inject_faults(self) -> None:
        fault = self.faults.pick(self._rng)
        if fault is None:
            return
        if fault == "outage":
            if self.faults.outage_mode == "close":
                raise _Abort
            raise ApiError(503, "ServiceUnavailableException", "Service unavailable (injected outage)", "server_error")
        if fault == "throttle":
            raise ApiError(400, "ThrottlingException", "Rate exceeded (injected)", "throttled")
        status = self.faults.error_status
        code = "InternalFailure" if status == 500 else "ServiceUnavailableException"
        raise ApiError(status, code, f"Injected server error ({status})", "server_error")

    def _check_exists(self, kind: str, key_name: str, key: str) -> None:
        # PutEvents and PutActionInteractions name a tracker; the others a dataset.
        by_tracker = key_name == "trackingId"
        known = self.config.tracking_ids if by_tracker else self.config.dataset_arns
        if known and key not in known:
            what = "event tracker" if by_tracker else "dataset"
            raise ApiError(404, "ResourceNotFoundException", f"{key_name}: {what} {key!r} does not exist", "rejected")

    @staticmethod
    def _error_response(err: ApiError, request: Request | None) -> Response:
        headers = [("x-amzn-ErrorType", err.code), ("x-amzn-RequestId", str(uuid.uuid4()))]
        return _json_response(err.status, {"message": err.message}, headers)

    # -- /_emulator/ ----------------------------------------------------------------------------------
    def _control(self, request: Request) -> Response:
        name = request.path.removeprefix("/_emulator/").rstrip("/")
        method = request.method
        if name in KINDS and method == "GET":
            key_name = KINDS[name][0]
            return Response(
                200,
                headers=[("Content-Type", "application/x-ndjson")],
                chunks=self._json_lines(name, request.query.get(key_name)),
            )
        if name == "stats" and method == "GET":
            return _json_response(200, self.stats.as_dict())
        if name == "faults" and method == "GET":
            return _json_response(200, self.faults.as_dict())
        if name == "faults" and method == "POST":
            try:
                changes = json.loads(request.body or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("expected a JSON object")
                self.faults.update(changes)
            except ValueError as exc:
                return _json_response(400, {"message": str(exc)})
            return _json_response(200, self.faults.as_dict())
        if name == "reset" and method == "POST":
            self.reset()
            return _json_response(200, {})
        if name == "health" and method == "GET":
            return _json_response(200, {"status": "ok"})
        return _json_response(404, {"message": f"no such emulator endpoint: {method} {request.path}"})

    def _json_lines(self, kind: str, key: str | None) -> Iterator[bytes]:
        lines: list[str] = []
        for call in self.store.calls(kind, key):
            lines.extend(json.dumps(record) for record in expand(call))
            if len(lines) >= JSON_LINES_PER_CHUNK:
                yield ("\n".join(lines) + "\n").encode()
                lines = []
        if lines:
            yield ("\n".join(lines) + "\n").encode()

    def reset(self) -> None:
        """Forget accepted records, counters, faults and rate-limit state."""
        self.store.clear()
        self.stats.reset()
        self.faults = Faults()
        self._limiter.reset()


class _Abort(Exception):
    """Drop the connection without an answer (injected outage)."""
