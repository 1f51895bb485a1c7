"""`personalize-connector check`: is everything the worker needs there, before it starts?

Each probe asks one question of one dependency (the configuration, the Kafka cluster, the schema
registry, the dead-letter topic, AWS credentials, the PutEvents endpoint) and answers PASS, WARN
(works, but something is worth knowing), FAIL (the worker would not work; the detail says why) or
SKIP (not asked because an earlier probe failed). Every probe runs under a deadline, so `check`
never hangs on an unreachable broker or endpoint.

Exit codes: 0 nothing failed (warnings allowed), 1 a probe failed, 2 the configuration is invalid.
"""

from __future__ import annotations

import argparse
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Literal, TypeVar

from connector.config import ConfigError, EventsRoute, Settings, load_settings
from connector.kafka.base import ClusterAdmin
from connector.logs import mask_url_credentials
from connector.records import TopicPartition

Status = Literal["PASS", "WARN", "FAIL", "SKIP"]
T = TypeVar("T")

DEFAULT_TIMEOUT_S = 10.0
# A PutEvents call the service must refuse: no events. It proves reachability and authentication
# (requests are authenticated before their input is validated) and records nothing.
DRY_SESSION_ID = "personalize-connector-check"
_CREDENTIAL_ERRORS = frozenset(
    {"UnrecognizedClientException", "InvalidSignatureException", "SignatureDoesNotMatch", "ExpiredTokenException",
     "ExpiredToken", "InvalidClientTokenId", "MissingAuthenticationTokenException", "IncompleteSignature",
     "AccessDeniedException", "AccessDenied"}
)
_REJECTS_EMPTY = frozenset({"InvalidInputException", "ValidationException", "SerializationException"})


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: str
    status: Status
    detail: str


class ProbeTimeout(Exception):
    pass


def with_deadline(fn: Callable[[], T], timeout_s: float, what: str) -> T:
    """fn() on a daemon thread; ProbeTimeout if it has not answered within timeout_s.

    A daemon thread (not an executor) so a probe stuck in a client library cannot keep the
    process alive after `check` has printed its answer.
    """
    box: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()

    def target() -> None:
        try:
            box.put((True, fn()))
        except BaseException as exc:
            box.put((False, exc))

    threading.Thread(target=target, name=f"check-{what}", daemon=True).start()
    try:
        ok, value = box.get(timeout=timeout_s)
    except queue.Empty:
        raise ProbeTimeout(f"{what} did not answer within {timeout_s:g}s") from None
    if not ok:
        raise value
    result: T = value
    return result


# ---------------------------------------------------------------------------------------- Kafka


def _kafka_error(exc: BaseException) -> str:
    text = str(exc.args[0]) if exc.args else str(exc)
    return text if text else type(exc).__name__


def check_kafka(settings: Settings, timeout_s: float) -> list[CheckResult]:
    """The cluster, the topics, the group and the dead-letter topic, read with the client `run` uses
    (`kafka.client`, `kafka.msk_iam_region`: connector.kafka.clients)."""
    from connector.kafka.auth import KafkaAuthError
    from connector.kafka.clients import KafkaClients

    try:
        admin = KafkaClients.from_settings(settings).admin(timeout_s)
    except (ConfigError, KafkaAuthError) as exc:  # kafka.config the client refuses; MSK IAM cannot sign
        return [CheckResult("kafka.cluster", "FAIL", str(exc)), *_skipped(settings)]
    try:
        return _check_cluster(settings, admin, timeout_s)
    finally:
        admin.close()


def _check_cluster(settings: Settings, admin: ClusterAdmin, timeout_s: float) -> list[CheckResult]:
    k = settings.kafka
    results: list[CheckResult] = []
    try:
        metadata = with_deadline(lambda: admin.cluster(timeout_s), timeout_s + 2, "Kafka metadata")
    except Exception as exc:
        results.append(CheckResult("kafka.cluster", "FAIL",
                                   f"cannot reach Kafka at {k.bootstrap_servers}: {admin.unreachable_reason(exc)}"))
        return results + _skipped(settings)
    topics = metadata.topics
    results.append(CheckResult(
        "kafka.cluster", "PASS",
        f"{k.bootstrap_servers}: {metadata.brokers} broker(s), cluster id {metadata.cluster_id}",
    ))

    import re

    subscribed: list[str] = []
    for topic in _all_topics(settings):
        if topic.startswith("^"):
            pattern = re.compile(topic)
            matching = sorted(t for t in topics if pattern.search(t) and not t.startswith("__"))
            if matching:
                shown = ", ".join(matching[:5]) + (f" and {len(matching) - 5} more" if len(matching) > 5 else "")
                results.append(CheckResult(f"kafka.topic {topic}", "PASS", f"pattern matches {shown}"))
            else:
                results.append(CheckResult(f"kafka.topic {topic}", "WARN",
                                           "pattern matches no topic yet (the worker waits for one)"))
            subscribed.extend(matching)
            continue
        found = topics.get(topic)
        if found is None or found.error is not None:
            reason = f" ({found.error})" if found is not None and found.error is not None else ""
            results.append(CheckResult(f"kafka.topic {topic}", "FAIL",
                                       f"topic '{topic}' does not exist{reason}; create it or fix kafka.topics"))
            continue
        results.append(CheckResult(f"kafka.topic {topic}", "PASS", f"{found.partitions} partition(s)"))
        subscribed.append(topic)

    results.append(_check_group(admin, k.group_id, subscribed, timeout_s))

    dlqs = _dlq_topics(settings)
    if not dlqs:
        results.append(CheckResult("dlq.topic", "WARN",
                                   "no dlq.topic configured: the first bad record stops the worker"))
    for dlq in dlqs:
        if dlq in _all_topics(settings):
            results.append(CheckResult("dlq.topic", "FAIL", f"dlq.topic '{dlq}' is also an input topic"))
        elif dlq not in topics or topics[dlq].error is not None:
            results.append(CheckResult("dlq.topic", "FAIL",
                                       f"dead-letter topic '{dlq}' does not exist; create it (the connector "
                                       "does not create topics)"))
        else:
            results.append(CheckResult("dlq.topic", "PASS", f"'{dlq}': {topics[dlq].partitions} partition(s)"))
    return results


def _skipped(settings: Settings) -> list[CheckResult]:
    """What is not asked when the cluster cannot be asked anything."""
    names = [f"kafka.topic {t}" for t in _all_topics(settings)] + ["kafka.group"]
    names += ["dlq.topic"] * bool(_dlq_topics(settings))
    return [CheckResult(name, "SKIP", "Kafka is not reachable") for name in names]


def _all_topics(settings: Settings) -> list[str]:
    """The topics of every route (kafka.topics is the interactions route)."""
    return [topic for route in settings.effective_routes() for topic in route.topics]


def _dlq_topics(settings: Settings) -> list[str]:
    return sorted({route.dlq_topic for route in settings.effective_routes() if route.dlq_topic})


def _check_group(admin: ClusterAdmin, group: str, topics: list[str], timeout_s: float) -> CheckResult:
    """Describe the group and read its committed offsets (needs DESCRIBE on the group)."""
    name = "kafka.group"
    try:
        description = with_deadline(lambda: admin.group(group, timeout_s), timeout_s + 2, "describe group")
        offsets = with_deadline(lambda: admin.group_offsets(group, timeout_s), timeout_s + 2, "committed offsets")
    except Exception as exc:
        return CheckResult(name, "FAIL", f"cannot read consumer group '{group}': {_kafka_error(exc)}")
    committed = {tp: offset for tp, offset in offsets.items() if tp.topic in topics}
    state, members = description.state, description.members
    if not committed:
        detail = f"'{group}' ({state}, {members} member(s)): no committed offsets yet (starts per auto_offset_reset)"
    else:
        detail = (f"'{group}' ({state}, {members} member(s)): committed offsets for {len(committed)} "
                  f"partition(s){_lag_text(admin, committed, timeout_s)}")
    return CheckResult(name, "PASS", detail)


def _lag_text(admin: ClusterAdmin, committed: dict[TopicPartition, int], timeout_s: float) -> str:
    """', lag N' from the committed offsets and the partitions' end offsets (best effort)."""
    try:
        ends = with_deadline(lambda: admin.end_offsets(list(committed), timeout_s), timeout_s + 2, "end offsets")
        lag = sum(max(0, ends[tp] - offset) for tp, offset in committed.items())
    except Exception:
        return ""
    return f", lag {lag:,} record(s)"


# ------------------------------------------------------------------------------- schema registry


def check_registry(settings: Settings, timeout_s: float) -> list[CheckResult]:
    from connector.app import registry_client

    sr = settings.schema_registry
    if settings.decode.format in ("plain", "json"):
        return [CheckResult("schema_registry", "PASS", f"not used (decode.format is '{settings.decode.format}')")]
    if not sr.url:
        return [CheckResult("schema_registry", "FAIL",
                            "schema_registry.url is required when decode.format is 'confluent'")]
    try:
        client = registry_client(settings)
        subjects: list[str] = with_deadline(client.get_subjects, timeout_s, f"the registry at {sr.url}")
    except Exception as exc:
        return [CheckResult("schema_registry", "FAIL", f"GET {sr.url}/subjects failed: {exc}")]
    results = [CheckResult("schema_registry", "PASS", f"{sr.url} answers GET /subjects ({len(subjects)} subject(s))")]
    for topic in _all_topics(settings):
        if topic.startswith("^"):
            continue
        subject = f"{topic}-value"
        if subject not in subjects:
            results.append(CheckResult(
                f"schema_registry.subject {subject}", "WARN",
                f"subject '{subject}' is not registered; the registry answers, and records are decoded by the "
                "schema id in each record, so this only matters if producers use TopicNameStrategy",
            ))
            continue
        try:
            latest = with_deadline(partial(client.get_latest_version, subject), timeout_s, f"subject {subject}")
            detail = f"version {latest.version}, schema id {latest.schema_id}"
        except Exception as exc:
            detail = f"registered (latest version unreadable: {exc})"
        results.append(CheckResult(f"schema_registry.subject {subject}", "PASS", detail))
    return results


# ------------------------------------------------------------------------------------ Personalize


def _personalize_client(settings: Settings, session: Any, timeout_s: float) -> Any:
    from botocore.config import Config

    p = settings.personalize
    config = Config(
        region_name=p.region,
        # Off so the intentionally empty event list reaches the service, which must refuse it.
        parameter_validation=False,
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=min(5.0, timeout_s),
        read_timeout=timeout_s,
    )
    from connector.personalize import api_response

    # The worker's rule for a success (a 2xx with an empty body or a JSON object), so `check` does
    # not pass an endpoint whose answers the worker would retry forever.
    return api_response.install(session.client("personalize-events", endpoint_url=p.endpoint_url, config=config))


def check_personalize(settings: Settings, timeout_s: float) -> list[CheckResult]:
    import boto3

    p = settings.personalize
    session = boto3.session.Session(region_name=p.region)
    try:
        credentials = with_deadline(session.get_credentials, timeout_s, "the AWS credential chain")
    except Exception as exc:
        credentials = None
        missing = f"resolving credentials failed: {exc}"
    else:
        missing = (
            "no AWS credentials found in the default chain: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "or AWS_PROFILE (with a profile in ~/.aws), or AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE (IRSA), "
            "or run with an instance/task role"
        )
    if credentials is None:
        return [CheckResult("aws.credentials", "FAIL", missing),
                CheckResult("personalize.put_events", "SKIP", "no credentials")]
    try:
        frozen = credentials.get_frozen_credentials()
    except Exception as exc:  # e.g. an assume-role or SSO refresh that fails
        return [CheckResult("aws.credentials", "FAIL", f"credentials from {credentials.method} do not resolve: {exc}"),
                CheckResult("personalize.put_events", "SKIP", "no credentials")]
    if not frozen.access_key or not frozen.secret_key:
        piece = "AWS_SECRET_ACCESS_KEY" if frozen.access_key else "AWS_ACCESS_KEY_ID"
        return [CheckResult("aws.credentials", "FAIL", f"credentials from {credentials.method} lack {piece}"),
                CheckResult("personalize.put_events", "SKIP", "no credentials")]
    results = [CheckResult("aws.credentials", "PASS",
                           f"found via '{credentials.method}' (region {p.region})")]

    client = _personalize_client(settings, session, timeout_s)
    # PutEvents' trackers only: an action_interactions route's tracker is not one PutEvents knows.
    trackers = sorted({str(r.tracking_id) for r in settings.effective_routes()
                       if isinstance(r, EventsRoute) and r.tracking_id})
    if not trackers:
        results.append(CheckResult("personalize.put_events", "SKIP", "no interactions route (no tracking id)"))
    for tracking_id in trackers:
        results.append(_dry_put_events(settings, client, tracking_id, timeout_s))
    return results


def _dry_put_events(settings: Settings, client: Any, tracking_id: str, timeout_s: float) -> CheckResult:
    import botocore.exceptions

    from connector.personalize.api_response import MalformedResponse

    p = settings.personalize
    endpoint = p.endpoint_url or f"the personalize-events endpoint of {p.region}"
    name = "personalize.put_events"
    results: list[CheckResult] = []
    try:
        with_deadline(
            lambda: client.put_events(trackingId=tracking_id, sessionId=DRY_SESSION_ID, eventList=[]),
            timeout_s + 5, f"PutEvents at {endpoint}",
        )
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = str(error.get("Code", "")), str(error.get("Message", ""))
        if code in _REJECTS_EMPTY:
            results.append(CheckResult(
                name, "PASS",
                f"{endpoint} is reachable and accepted the credentials: the deliberately empty call was refused "
                f"with {code} (nothing was recorded)",
            ))
        elif code == "ResourceNotFoundException":
            results.append(CheckResult(
                name, "FAIL",
                f"ResourceNotFoundException: tracking id '{tracking_id}' is unknown in {p.region} "
                f"(personalize.tracking_id must be the event tracker's trackingId): {message}",
            ))
        elif code in _CREDENTIAL_ERRORS:
            results.append(CheckResult(name, "FAIL", f"the credentials were refused: {code}: {message}"))
        elif code in {"ThrottlingException", "TooManyRequestsException"}:
            results.append(CheckResult(name, "WARN", f"reachable, but throttled right now: {code}: {message}"))
        else:
            results.append(CheckResult(name, "FAIL", f"unexpected answer from {endpoint}: {code}: {message}"))
    except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError,
            botocore.exceptions.ReadTimeoutError, botocore.exceptions.ConnectionClosedError, ProbeTimeout) as exc:
        results.append(CheckResult(name, "FAIL", f"cannot reach {endpoint}: {exc}"))
    except MalformedResponse as exc:
        results.append(CheckResult(
            name, "FAIL",
            f"{endpoint} answered HTTP {exc.status} with {exc.reason}, not an answer of the Personalize API "
            "(a proxy, a load balancer page or a wrong personalize.endpoint_url?); the worker would retry every "
            f"call; body: {exc.kwargs['excerpt']}",
        ))
    except botocore.exceptions.BotoCoreError as exc:
        results.append(CheckResult(name, "FAIL", f"calling {endpoint} failed: {exc}"))
    else:
        results.append(CheckResult(name, "WARN",
                                   f"{endpoint} accepted an empty event list (expected a refusal); it is reachable"))
    return results[0]


# ------------------------------------------------------------------------------------------ run


def run_checks(settings: Settings, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[CheckResult]:
    results = [CheckResult("config", "PASS", "valid")]
    for probe in (check_kafka, check_registry, check_personalize):
        try:
            results.extend(probe(settings, timeout_s))
        except Exception as exc:  # a bug or an unexpected client error must still print a table
            results.append(CheckResult(probe.__name__.removeprefix("check_"), "FAIL",
                                       f"{type(exc).__name__}: {exc}"))
    # Details quote URLs (the registry's, an endpoint's) and client errors that repeat them:
    # credentials in a URL never reach the table or the one-line reasons.
    return [replace(r, check=mask_url_credentials(r.check), detail=mask_url_credentials(r.detail)) for r in results]


_STYLE = {"PASS": "green", "WARN": "yellow", "FAIL": "bold red", "SKIP": "dim"}


def render(results: Iterable[CheckResult], title: str) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("check", overflow="fold")
    table.add_column("result", no_wrap=True)
    table.add_column("detail", overflow="fold", min_width=40)
    for r in results:
        table.add_row(r.check, f"[{_STYLE[r.status]}]{r.status}[/]", r.detail)
    return table


def run_from_cli(args: argparse.Namespace) -> int:
    from rich.console import Console

    from connector.tools.replay import quiet_registry_imports

    quiet_registry_imports()
    out = Console(highlight=False)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        out.print(render([CheckResult("config", "FAIL", str(exc))], f"personalize-connector check {args.config}"))
        print(f"personalize-connector check: invalid configuration: {exc}", flush=True)
        return 2
    results = run_checks(settings, args.timeout)
    out.print(render(results, f"personalize-connector check {args.config}"))
    failed = [r for r in results if r.status == "FAIL"]
    warned = [r for r in results if r.status == "WARN"]
    # The exact reasons again, one unwrapped line each, for logs and scripts.
    for r in failed + warned:
        print(f"{r.status} {r.check}: {r.detail}", flush=True)
    if failed:
        print(f"check failed: {len(failed)} problem(s)", flush=True)
        return 1
    print(f"check passed ({len(warned)} warning(s))", flush=True)
    return 0
