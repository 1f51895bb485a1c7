"""PutEvents (and PutItems / PutUsers) calls: failure classes, retries, bisection of invalid batches.

`PutEventsSink.send` runs on a pool thread and never raises: it returns, per event, whether it
was delivered, must be dead-lettered (the service rejected that event), or was abandoned (the
worker is stopping; the event stays uncommitted and is redelivered later). Transient failures are
retried without limit in time, systemic ones (wrong tracker, bad credentials) are retried slowly
and raise the `systemic` flag so the worker stops reading instead of dead-lettering good events.
A tracker a record names that the service does not know is that tenant's alone: its entries are
dead-lettered after a short retry (connector.personalize.tenants) and the route goes on.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

import botocore.exceptions
from botocore import xform_name
from botocore.config import Config

from connector.logs import redact
from connector.observability import Metrics
from connector.personalize import api_response
from connector.personalize.ratelimit import AdaptiveRateLimiter
from connector.personalize.tenants import NOT_FOUND, TenantTrackers, is_not_found
from connector.records import Batch, Event, RejectedBySink, Request

log = logging.getLogger(__name__)


class Failure(Enum):
    THROTTLED = "throttled"
    TRANSIENT = "transient"
    INVALID = "invalid"
    SYSTEMIC = "systemic"
    UNKNOWN_TRACKER = "unknown_tracker"  # ResourceNotFoundException for a record's own tracker


# Error codes as the service (and AWS's shared error vocabulary) returns them.
_THROTTLING = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded",
     "ProvisionedThroughputExceededException", "SlowDown", "RequestThrottled"}
)
_INVALID = frozenset({"InvalidInputException", "ValidationException", "SerializationException"})
_SYSTEMIC = frozenset(
    {"ResourceNotFoundException", "AccessDeniedException", "AccessDenied", "UnrecognizedClientException",
     "InvalidSignatureException", "SignatureDoesNotMatch", "ExpiredTokenException", "ExpiredToken",
     "InvalidClientTokenId", "MissingAuthenticationTokenException", "IncompleteSignature",
     "ResourceInUseException"}
)
_SYSTEMIC_EXCEPTIONS = (
    botocore.exceptions.NoCredentialsError,
    botocore.exceptions.PartialCredentialsError,
    botocore.exceptions.NoRegionError,
)


def classify(exc: BaseException) -> Failure:
    """Which failure class an exception from `put_events` belongs to."""
    if isinstance(exc, botocore.exceptions.ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _THROTTLING or status == 429:
            return Failure.THROTTLED
        if code in _INVALID:
            return Failure.INVALID
        if code in _SYSTEMIC or status in (401, 403):
            return Failure.SYSTEMIC
        return Failure.TRANSIENT  # 5xx and anything unknown: retrying is the safe side
    if isinstance(exc, botocore.exceptions.ParamValidationError):
        return Failure.INVALID
    if isinstance(exc, _SYSTEMIC_EXCEPTIONS):
        return Failure.SYSTEMIC
    if isinstance(exc, api_response.MalformedResponse):
        # A proxy's page or a cut answer says nothing about the events: send them again.
        return Failure.TRANSIENT
    # Connection errors, timeouts, closed connections, anything unexpected: transient.
    return Failure.TRANSIENT


@dataclass(slots=True)
class Backoff:
    """Capped exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff
    And Jitter"): spreads retries of many threads so they do not hit the service together."""

    base_s: float = 0.05
    cap_s: float = 5.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        return self.rng.uniform(0.0, min(self.cap_s, self.base_s * (2 ** min(attempt, 30))))


@dataclass(slots=True)
class SendOutcome:
    batch: Batch
    delivered: list[Event] = field(default_factory=list)
    rejected: list[tuple[Event, RejectedBySink]] = field(default_factory=list)
    abandoned: list[Event] = field(default_factory=list)
    calls: int = 0
    failures: dict[Failure, int] = field(default_factory=dict)
    # How long the successful calls took; connector.pipeline.inflight sizes the calls in flight from it.
    latencies_s: list[float] = field(default_factory=list)


class RateLimits(Protocol):
    """Where a call waits for its turn: `connector.personalize.quotas.Quotas` (a bucket per tracker
    or dataset), or one AdaptiveRateLimiter for every call."""

    def bucket(self, request: Request, route: str) -> AdaptiveRateLimiter: ...


class Sink(Protocol):
    """What the worker uses of a route's sink (PutEventsSink; tests script their own)."""

    stop: threading.Event  # set: abandon retries, the worker is stopping

    @property
    def systemic_error(self) -> str | None: ...

    def send(self, batch: Batch) -> SendOutcome: ...

    def unready_reason(self) -> str | None: ...


def make_client(
    region: str, endpoint_url: str | None, max_pool_connections: int, http_client: str = "boto3"
) -> Any:
    """A personalize-events client; credentials come from the standard AWS chain.

    The configuration's default is `lean` (`personalize.http_client`, which the app always passes);
    without the argument this builds the SDK client, the one the equivalence tests compare with.
    """
    if http_client == "lean":
        from connector.personalize.lean_client import LeanPersonalizeClient

        return LeanPersonalizeClient(region, endpoint_url, max_pool_connections, connect_timeout=5, read_timeout=15)
    import boto3  # imported here: boto3's import is slow and only the sink needs it

    config = Config(
        region_name=region,
        # Our loop owns retries (unbounded in time for transient errors, bisection for invalid
        # input); botocore's own retries would hide the failure class from it.
        retries={"total_max_attempts": 1, "mode": "standard"},
        # Every entry was already checked against the same service model (api_model), with the
        # limits botocore does not check; validating again costs ~100 us of a ~600 us call.
        parameter_validation=False,
        max_pool_connections=max_pool_connections,
        connect_timeout=5,
        read_timeout=15,
        tcp_keepalive=True,
    )
    client = boto3.session.Session().client("personalize-events", endpoint_url=endpoint_url, config=config)
    # Only a well-formed 2xx answer is a delivery (botocore never reads these operations' bodies).
    return api_response.install(client)


@dataclass(slots=True)
class _FailureRun:
    """The failed calls of a route since its last successful one."""

    since: float
    failed: int = 0
    unreported: int = 0  # failed since the last log line
    last_reason: str = ""
    reported: bool = False  # a line was logged about this run, so its end is logged too


class CallWatch:
    """What an operator must see of one route's calls, however long they fail.

    Retries are unbounded in time, so without this a 502 page from a proxy or a connection reset
    on every call would retry forever in silence. The first failure is logged at once, later ones
    at most every `log_interval_s` (with their count and the last reason), and the recovery once;
    so a route writes at most two lines per interval however fast it fails. It also knows how
    long work has waited without a successful call, which turns /readyz false after
    `unready_after_s` (0: never). Thread-safe: the pool's threads report to it.
    """

    def __init__(self, route: str, *, log_interval_s: float = 30.0, unready_after_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.route = route
        self.log_interval_s = log_interval_s
        self.unready_after_s = unready_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._last_success: float | None = None
        self._last_report = -math.inf
        self._run: _FailureRun | None = None
        self._busy = 0
        self._busy_since = 0.0

    def begin(self) -> None:
        """A send started (work is pending until `end`)."""
        with self._lock:
            if not self._busy:
                self._busy_since = self._clock()
            self._busy += 1

    def end(self) -> None:
        with self._lock:
            self._busy -= 1

    def failed(self, failure: Failure, reason: str) -> None:
        now = self._clock()
        with self._lock:
            run = self._run = self._run or _FailureRun(since=now)
            run.failed += 1
            run.unreported += 1
            run.last_reason = f"{failure.value}: {reason}"
            if now - self._last_report < self.log_interval_s:
                return
            window = min(now - self._last_report, now - run.since)
            self._last_report = now
            first, count, run.unreported, run.reported = not run.reported, run.unreported, 0, True
            total, age, last = run.failed, now - run.since, run.last_reason
        if first and total == 1:
            log.warning("route %s: a call failed (%s); retrying until it succeeds", self.route, last)
        else:
            log.warning(
                "route %s: still failing: %d calls failed in the last %.0fs, %d over %.0fs since the last "
                "successful call; last: %s; retrying", self.route, count, window, total, age, last,
            )

    def succeeded(self) -> None:
        now = self._clock()
        with self._lock:
            self._last_success = now
            run, self._run = self._run, None
        if run is not None and run.reported:  # the run is no longer shared: read it unlocked
            log.warning("route %s: calls succeed again after %d failed calls over %.1fs (last: %s)",
                        self.route, run.failed, now - run.since, run.last_reason)

    def seconds_since_success(self) -> float:
        """Since the last successful call (since start-up when there was none yet)."""
        with self._lock:
            last = self._started if self._last_success is None else self._last_success
        return max(0.0, self._clock() - last)

    def unready_reason(self) -> str | None:
        """Why the worker is not ready: work has waited `unready_after_s` without a successful call."""
        if self.unready_after_s <= 0:
            return None
        now = self._clock()
        with self._lock:
            if not self._busy:
                return None  # nothing to deliver: an idle route is not a failing one
            since = self._busy_since if self._last_success is None else max(self._busy_since, self._last_success)
            waited = now - since
            run = self._run
            failures = f"{run.failed} calls failed, last: {run.last_reason}" if run else "calls still running"
        if waited < self.unready_after_s:
            return None
        return f"route {self.route}: no successful call for {waited:.0f}s with work pending ({failures})"


class PutEventsSink:
    def __init__(
        self,
        client: Any,
        limits: RateLimits,
        *,
        backoff: Backoff | None = None,
        systemic_backoff: Backoff | None = None,
        stop: threading.Event | None = None,
        sleep: Callable[[float], None] | None = None,
        metrics: Metrics | None = None,
        route: str = "events",
        failure_log_interval_s: float = 30.0,
        unready_after_s: float = 300.0,
        tenants: TenantTrackers | None = None,
        tenant_backoff: Backoff | None = None,
    ) -> None:
        self._client = client
        self.metrics = metrics or Metrics()
        self.watch = CallWatch(route, log_interval_s=failure_log_interval_s, unready_after_s=unready_after_s)
        self.metrics.seconds_since_last_delivery.labels(route).set_function(self.watch.seconds_since_success)
        self._limits = limits
        self._backoff = backoff or Backoff()
        self._systemic_backoff = systemic_backoff or Backoff(base_s=1.0, cap_s=30.0)
        # The route's own tracker and the record-named ones it has found unknown. Retries of an
        # unknown record-named tracker: 4 calls with at most 0.5 + 1 + 1 s between them (about
        # 1.3 s on average): long enough for a tracker created a moment ago, short enough that a
        # call slot is not held for long by a tenant that will not get one.
        self.tenants = tenants or TenantTrackers()
        self._tenant_backoff = tenant_backoff or Backoff(base_s=0.5, cap_s=1.0)
        self.stop = stop or threading.Event()
        self._sleep = sleep or self.stop.wait
        self._systemic_lock = threading.Lock()
        self._systemic_error: str | None = None

    @property
    def systemic_error(self) -> str | None:
        """Set while calls fail for a reason no retry of the same events can fix soon."""
        return self._systemic_error

    def send(self, batch: Batch) -> SendOutcome:
        outcome = SendOutcome(batch)
        self.watch.begin()
        try:
            self._deliver(batch, batch.events, outcome)
        except Exception as exc:  # never let a pool thread die silently with events in it
            log.exception("unexpected error in the sink; abandoning the batch for redelivery")
            done = {id(e) for e in outcome.delivered} | {id(e) for e, _ in outcome.rejected}
            outcome.abandoned.extend(e for e in batch.events if id(e) not in done)
            del exc
        finally:
            self.watch.end()
        return outcome

    def unready_reason(self) -> str | None:
        """Set while work has waited `unready_after_s` without a successful call (for /readyz)."""
        return self.watch.unready_reason()

    def _deliver(self, batch: Batch, events: list[Event], outcome: SendOutcome) -> None:
        tenant = self.tenants.tenant_of(batch.key)  # None: the route's own tracker (or a dataset)
        if tenant is not None and (age := self.tenants.known_unknown_for(tenant)) is not None:
            self._reject_unknown(batch, tenant, f"{NOT_FOUND} {age:.0f}s ago; not asked again yet", events, outcome)
            return
        attempt = 0
        request = batch.key.request([e.body for e in events])
        limiter = self._limits.bucket(request, batch.key.route)
        while True:
            if not limiter.acquire(self.stop):
                outcome.abandoned.extend(events)
                return
            outcome.calls += 1
            if attempt:
                self.metrics.retries.inc()
            started = time.perf_counter()
            try:
                self._call(request)
            except Exception as exc:
                self.metrics.call_latency.observe(time.perf_counter() - started)
                failure = classify(exc)
                if tenant is not None and is_not_found(exc):
                    failure = Failure.UNKNOWN_TRACKER  # a record's own tracker: not the route's problem
                self.metrics.calls.labels(failure.value).inc()
                if isinstance(exc, api_response.MalformedResponse):
                    self.metrics.malformed_responses.labels(batch.key.route).inc()
                outcome.failures[failure] = outcome.failures.get(failure, 0) + 1
                if failure is Failure.INVALID:
                    self._clear_systemic()
                    self._bisect(batch, events, exc, outcome)
                    return
                if tenant is not None and failure is Failure.UNKNOWN_TRACKER:
                    # Not reported to the watch: these calls are answered, and what they mean is
                    # logged once per finding, not as a failure to retry until it succeeds.
                    attempt += 1
                    if attempt >= self.tenants.attempts:
                        self._found_unknown(batch, tenant, exc, events, outcome)
                        return
                    self._sleep(self._tenant_backoff.delay(attempt - 1))
                    if self.stop.is_set():
                        outcome.abandoned.extend(events)
                        return
                    continue
                self.watch.failed(failure, _reason(exc))
                if failure is Failure.THROTTLED:
                    limiter.on_throttled()
                if failure is Failure.SYSTEMIC:
                    self._set_systemic(f"{type(exc).__name__}: {exc}")
                    delay = self._systemic_backoff.delay(attempt)
                else:
                    delay = self._backoff.delay(attempt)
                log.debug("call failed (%s), retrying in %.2fs: %s", failure.value, delay, redact(str(exc)))
                attempt += 1
                self._sleep(delay)
                if self.stop.is_set():
                    outcome.abandoned.extend(events)
                    return
                continue
            took = time.perf_counter() - started
            self.metrics.call_latency.observe(took)
            outcome.latencies_s.append(took)
            self.metrics.calls.labels("ok").inc()
            self.watch.succeeded()
            self.metrics.events_per_call.observe(len(events))
            self._clear_systemic()
            outcome.delivered.extend(events)
            return

    def _call(self, request: Request) -> None:
        # The batch's key formed its destination's call; boto3 (and the lean client) name the method
        # after the operation ("PutItems" -> put_items).
        getattr(self._client, xform_name(request.operation))(**request.params)

    def _bisect(self, batch: Batch, events: list[Event], exc: Exception, outcome: SendOutcome) -> None:
        """InvalidInputException rejects the whole call: split it to find the offending events,
        so only they are dead-lettered and the rest are delivered."""
        if len(events) == 1:
            message = _service_message(exc)
            outcome.rejected.append((events[0], RejectedBySink(message, error_class=_error_code(exc))))
            return
        middle = len(events) // 2
        self._deliver(batch, events[:middle], outcome)
        self._deliver(batch, events[middle:], outcome)

    def _found_unknown(self, batch: Batch, tenant: str, exc: Exception, events: list[Event],
                       outcome: SendOutcome) -> None:
        self.tenants.found_unknown(tenant)
        reason = _reason(exc)
        log.warning(
            "route %s: the service does not know the tracker %r that records name (%s, %d calls); "
            "dead-lettering its records as UnknownTracker, and asking again in %.0fs",
            batch.key.route, tenant, reason, self.tenants.attempts, self.tenants.remember_s,
        )
        self._reject_unknown(batch, tenant, reason, events, outcome)

    def _reject_unknown(self, batch: Batch, tenant: str, why: str, events: list[Event], outcome: SendOutcome) -> None:
        error = self.tenants.rejection(tenant, why)
        outcome.rejected.extend((event, error) for event in events)
        self.metrics.unknown_tracker_dead_letters.labels(batch.key.route, self.tenants.label(tenant)).inc(len(events))

    def _set_systemic(self, reason: str) -> None:
        with self._systemic_lock:
            if self._systemic_error is None:
                log.error("PutEvents is failing for a systemic reason; pausing consumption: %s", reason)
            self._systemic_error = reason

    def _clear_systemic(self) -> None:
        if self._systemic_error is not None:
            with self._systemic_lock:
                if self._systemic_error is not None:
                    log.warning("PutEvents recovered from: %s", self._systemic_error)
                self._systemic_error = None


def _error_code(exc: Exception) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", type(exc).__name__))
    return type(exc).__name__


_MAX_REASON_CHARS = 300


def _reason(exc: Exception) -> str:
    """One short, redacted line saying why a call failed (HTTP status and code when there is one)."""
    if isinstance(exc, botocore.exceptions.ClientError):
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?"))
        code = _error_code(exc)  # botocore uses the status itself when the answer names no code
        text = f"HTTP {status}{'' if code == status else ' ' + code}: {_service_message(exc)}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    text = " ".join(redact(text).split())
    return text if len(text) <= _MAX_REASON_CHARS else text[: _MAX_REASON_CHARS - 3] + "..."


def _service_message(exc: Exception) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Message") or exc)
    return str(exc)
