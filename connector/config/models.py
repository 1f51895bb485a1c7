"""One typed settings model: a YAML file, overridden key by key by `PKC_<SECTION>__<KEY>` variables.

(`connector.config.loading` reads them, `connector.config.errors` words what is wrong.)
Every section forbids unknown keys, so a typo is an error naming the key rather than a setting that
silently keeps its default. Validation errors are turned into one `ConfigError` whose message names
each offending key as a dotted path (`batching.max_events_per_call`) and what it allows.
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    FilePath,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from connector.logs import mask_url_credentials

ENV_PREFIX = "PKC_"
ENV_NESTED_DELIMITER = "__"
MiB = 1024 * 1024


def _not_a_bool(value: Any) -> Any:
    # YAML reads `true` as a bool and pydantic's lax mode takes a bool as the int 1: a bound
    # written `true` would silently hold one record.
    if isinstance(value, bool):
        raise ValueError("expected a number, not true/false")
    return value


# A count of at least 1 that YAML's true/false cannot stand in for.
PositiveCount = Annotated[int, BeforeValidator(_not_a_bool), Field(ge=1)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Path into a (possibly nested) record: "sessionId", "session.id".
FieldPath = Annotated[str, Field(pattern=r"^[^.\s]+(\.[^.\s]+)*$")]
# A value a mapping filter compares a field with (bool before int: YAML's true stays a bool).
FilterValue = bool | int | float | str

# librdkafka properties whose values may be printed (the start-up line, repr()). An allow-list, not a
# list of secrets: a key not named here (ssl.key.pem, sasl.oauthbearer.config, a misspelled
# sasl.pasword, a property of a newer librdkafka) is masked. Paths (ssl.*.location) are not secret.
SAFE_KAFKA_CONFIG_KEYS = frozenset({
    "acks", "allow.auto.create.topics", "api.version.request", "api.version.request.timeout.ms",
    "auto.commit.interval.ms", "batch.num.messages", "batch.size", "broker.address.family",
    "broker.version.fallback", "check.crcs", "client.dns.lookup", "client.id", "client.rack",
    "compression.codec", "compression.type", "connections.max.idle.ms", "coordinator.query.interval.ms",
    "debug", "delivery.timeout.ms", "enable.idempotence", "enable.ssl.certificate.verification",
    "fetch.error.backoff.ms", "fetch.max.bytes", "fetch.max.wait.ms", "fetch.message.max.bytes",
    "fetch.min.bytes", "fetch.wait.max.ms", "group.instance.id", "group.protocol", "group.remote.assignor",
    "heartbeat.interval.ms", "isolation.level", "linger.ms", "log.connection.close", "log_level",
    "max.in.flight", "max.in.flight.requests.per.connection", "max.partition.fetch.bytes",
    "max.poll.interval.ms", "message.max.bytes", "message.send.max.retries", "message.timeout.ms",
    "metadata.max.age.ms", "partition.assignment.strategy", "partitioner", "queue.buffering.max.kbytes",
    "queue.buffering.max.messages", "queue.buffering.max.ms", "queued.max.messages.kbytes",
    "queued.min.messages", "receive.message.max.bytes", "reconnect.backoff.max.ms", "reconnect.backoff.ms",
    "request.timeout.ms", "retries", "retry.backoff.max.ms", "retry.backoff.ms", "sasl.kerberos.keytab",
    "sasl.kerberos.min.time.before.relogin", "sasl.kerberos.principal", "sasl.kerberos.service.name",
    "sasl.mechanism", "sasl.mechanisms", "sasl.oauthbearer.method", "sasl.oauthbearer.scope",
    "sasl.oauthbearer.token.endpoint.url", "sasl.username", "security.protocol", "session.timeout.ms",
    "socket.connection.setup.timeout.ms", "socket.keepalive.enable", "socket.max.fails", "socket.nagle.disable",
    "socket.receive.buffer.bytes", "socket.send.buffer.bytes", "socket.timeout.ms", "ssl.ca.location",
    "ssl.certificate.location", "ssl.cipher.suites", "ssl.crl.location", "ssl.curves.list",
    "ssl.endpoint.identification.algorithm", "ssl.key.location", "ssl.keystore.location", "ssl.providers",
    "ssl.sigalgs.list", "statistics.interval.ms", "topic.metadata.refresh.interval.ms",
})
MASK = "**********"


class KafkaConfig(_Section):
    client: Literal["confluent", "kafka-python"] = "confluent"
    bootstrap_servers: Annotated[str, Field(min_length=1)]
    group_id: Annotated[str, Field(min_length=1)] = "personalize-connector"
    # An entry starting with "^" is a regex subscription (librdkafka's convention). These topics feed
    # the interactions route built from the top-level `personalize` and `mapping` sections; `routes`
    # adds others. At least one of the two must name a topic.
    topics: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    config: dict[str, str | int | float | bool] = Field(default_factory=dict)
    # Records taken per turn of the loop. Outcomes of calls are applied between turns, so a turn's
    # length is how long a finished call's slot may sit empty: 1,000 records (~60 ms of decoding)
    # per turn left 50 ms calls' slots idle for a turn; 250 gave the quota stage 12 % more.
    poll_batch_size: Annotated[int, Field(ge=1, le=100_000)] = 250
    poll_timeout_ms: Annotated[int, Field(ge=0, le=60_000)] = 100
    commit_interval_ms: Annotated[int, Field(ge=0, le=3_600_000)] = 1000
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    # AWS MSK with IAM auth: SASL_SSL + OAUTHBEARER with tokens signed for this region from the
    # standard AWS credential chain (no password in the configuration).
    msk_iam_region: Annotated[str, Field(min_length=1)] | None = None
    # Store the offsets already delivered above the commit watermark in the commit's metadata, so a
    # new owner after a crash or rebalance skips them instead of sending them again.
    commit_metadata: bool = True

    @field_validator("topics")
    @classmethod
    def _regexes_compile(cls, topics: list[str]) -> list[str]:
        for topic in topics:
            if topic.startswith("^"):
                try:
                    re.compile(topic)
                except re.error as exc:
                    raise ValueError(f"{topic!r} is not a valid regular expression ({exc})") from None
        return topics

    def redacted_config(self) -> dict[str, str | int | float | bool]:
        """`config` with every property outside SAFE_KAFKA_CONFIG_KEYS masked (and URL credentials in
        the ones shown)."""
        return {k: (_mask_urls(v) if k in SAFE_KAFKA_CONFIG_KEYS else MASK) for k, v in self.config.items()}

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # librdkafka credentials live in a plain dict; keep them out of repr()/str() too.
        for name, value in super().__repr_args__():
            yield name, (self.redacted_config() if name == "config" else value)


class SchemaRegistryConfig(_Section):
    url: str | None = None
    basic_auth_user: str | None = None
    basic_auth_password: SecretStr | None = None
    bearer_token: SecretStr | None = None
    ca_location: FilePath | None = None


class DecodeConfig(_Section):
    # confluent: Schema Registry wire format; glue: AWS Glue Schema Registry; plain: schemaless Avro.
    # json: one UTF-8 JSON object per value, no registry; json_schema: Confluent's JSON Schema wire
    # format (magic byte, schema id, JSON) with the schema from the registry; protobuf: Confluent's
    # Protobuf wire format, .proto from the registry (reader_schema unused).
    format: Literal["confluent", "plain", "glue", "json", "json_schema", "protobuf"] = "confluent"
    # None means the packaged avro_schemas/interaction_event.avsc.
    reader_schema: FilePath | None = None
    # The fixed writer schema of schemaless ("plain") values.
    writer_schema: FilePath | None = Field(default=None, validate_default=True)
    # How long records whose schema id the registry does not know wait for it (partition paused and
    # retried, as in a registry outage) before they are dead-lettered as UnknownSchemaId /
    # UnknownSchemaVersion. Registries replicate asynchronously and producers register just before
    # producing, so a miss is usually seconds early; 60 s covers a follower catching up after a
    # restart or leader change, while a truly unknown id holds its partition only a minute.
    # 0 dead-letters at the first miss.
    unknown_schema_retry_s: Annotated[float, Field(ge=0, le=3600)] = 60.0
    # Records, arrays and maps nested deeper than this in one value (a recursive writer schema) are
    # dead-lettered as NestingTooDeep before fastavro reads them: its C reader has no bound and
    # overflows the stack. At most 200, which Python's own recursion limit allows downstream.
    max_nesting_depth: Annotated[int, Field(ge=1, le=200)] = 64
    # json_schema: check each value against the JSON Schema its producer registered (SchemaMismatch
    # when it does not match). On by default because it is cheap: the schema is compiled once per
    # id (fastjsonschema) and a typical event is checked in ~3 us; decode + map validated stays
    # below Avro's (bench/decode_cost.py).
    validate_json_schema: bool = True

    # A field validator (not a model validator) so the error is reported at decode.writer_schema.
    @field_validator("writer_schema")
    @classmethod
    def _plain_needs_writer_schema(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None and info.data.get("format") == "plain":
            raise ValueError("is required when decode.format is 'plain' (the path of an .avsc file)")
        return value


class GlueConfig(_Section):
    """Where decode.format 'glue' fetches writer schemas (GetSchemaVersion; standard AWS credentials)."""

    # None: personalize.region.
    region: Annotated[str, Field(min_length=1)] | None = None
    # Accept only schema versions of this registry (None: any registry the credentials can read).
    registry_name: Annotated[str, Field(min_length=1)] | None = None
    # A VPC endpoint, or a local Glue (moto) in tests.
    endpoint_url: str | None = None


# Each allowed tracker may become a metric label value (a time series), so the list is kept to a size
# a Prometheus server is comfortable with.
MAX_ALLOWED_TRACKING_IDS = 1000
_AllowedTrackingIds = (
    Annotated[list[Annotated[str, Field(min_length=1, max_length=256)]], Field(max_length=MAX_ALLOWED_TRACKING_IDS)]
    | None
)


class PersonalizeConfig(_Section):
    # Required when kafka.topics is set (the interactions route); routes of items/users need none.
    tracking_id: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    region: Annotated[str, Field(min_length=1)] = "us-east-1"
    endpoint_url: str | None = None
    max_requests_per_second: Annotated[float, Field(gt=0)] = 1000.0
    # lean (default): the requests boto3 sends (byte-identical, signed as botocore's SigV4Auth
    # signs, endpoint and credentials from botocore's own resolver and chain) built directly and
    # sent on a shared connection pool, ~2-3x less CPU per call. boto3: the AWS SDK's client.
    http_client: Literal["boto3", "lean"] = "lean"
    # /readyz turns false once a route has had work pending this long without one successful call
    # (transient failures are retried forever; this makes a silent outage visible). 0: never.
    unready_after_s: Annotated[float, Field(ge=0)] = 300.0
    # Failing calls are logged at the first failure, then at most once per this interval per route
    # (with the count and the last reason), and once more when calls succeed again.
    failure_log_interval_s: Annotated[float, Field(gt=0)] = 30.0
    # The trackers a record's own trackingId may name, besides its route's tracking_id (always
    # allowed). None: any. A record naming another one is dead-lettered at validation
    # (TrackerNotAllowed), before a call is spent on it. Being a bounded set, it is also what lets
    # pkc_unknown_tracker_dead_letters_total label by tracker; without it no raw id is a label.
    allowed_tracking_ids: _AllowedTrackingIds = None


class BatchingConfig(_Section):
    # PutEvents takes at most 10 events per call (botocore's model: eventList max 10).
    max_events_per_call: Annotated[int, Field(ge=1, le=10)] = 10
    linger_ms: Annotated[int, Field(ge=0, le=60_000)] = 1000
    # Calls in flight at once. "auto": sized from the quota and the service's latency (quota x
    # latency x 1.25, between 16 and 256; connector.pipeline.inflight). A number: exactly that bound.
    max_in_flight_calls: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] = "auto"
    # Records held in the worker (polled, not yet delivered or dead-lettered) before it stops
    # reading. "auto": what the quota sends in twice the linger (at least 1 s), 1,000..100,000
    # (connector.pipeline.flow.buffer_bound). A number: exactly that bound.
    max_buffered_records: PositiveCount | Literal["auto"] = "auto"
    max_buffered_bytes: Annotated[int, Field(ge=1)] = 64 * MiB


class DlqConfig(_Section):
    # None: a record that cannot be delivered stops the worker instead of being dead-lettered.
    topic: Annotated[str, Field(min_length=1)] | None = None
    # A run of this many dead letters in a row on one partition looks like a systemic problem (a
    # wrong mapping, a broken producer), not bad records: the partition stalls instead of
    # dead-lettering the whole stream. 0 disables the check.
    max_consecutive_failures: Annotated[int, Field(ge=0)] = 1000
    # A partition also stalls when more than this share of its last `failure_ratio_window`
    # records were dead-lettered (Arroyo's DlqLimit.max_invalid_ratio): a mostly bad stream with
    # a good record now and then, which would end every run of the consecutive limit. Judged only
    # over a full window. 0.9 over 1000: only a stream that has plainly gone bad stalls (real bad
    # input is a few percent), after no more dead letters than the consecutive limit allows. 0
    # disables the check.
    max_failure_ratio: Annotated[float, Field(ge=0, le=1)] = 0.9
    failure_ratio_window: Annotated[int, Field(ge=1)] = 1000
    # How long a stalled partition waits before it tries its next record again.
    stall_retry_s: Annotated[float, Field(gt=0)] = 60.0
    # Which context headers a dead letter carries: `pkc` (pkc.error.*, pkc.source.*), `connect`
    # (Kafka Connect's __connect.errors.*, for tools that already read Connect's dead letters) or
    # `both`. `dlq inspect` and `dlq replay` read either.
    context_headers: Literal["pkc", "connect", "both"] = "pkc"
    # Add the error's Python stack trace (pkc.error.stacktrace / __connect.errors.exception.stacktrace,
    # at most 16 KiB). Off by default: it is large and says more about the code than the record.
    include_stacktrace: bool = False


class ShutdownConfig(_Section):
    grace_period_s: Annotated[float, Field(ge=0)] = 30.0


class ObservabilityConfig(_Section):
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = 9400  # 0 disables the HTTP server
    log_format: Literal["json", "text"] = "json"
    # Show user and item ids (and the service's messages about them) in logs as they are instead
    # of as hashes. For debugging only: they are personal data.
    log_payloads: bool = False
    # A log line repeated in a flood (a broker down, an unreachable bootstrap, a run of dead letters)
    # is shown 5 times per window of this length, then counted: "… and N more like this in the last
    # 10 s". Our own INFO lines are never coalesced. 0 shows every line.
    log_coalesce_window_s: Annotated[float, Field(ge=0, le=3600)] = 10.0


class _PropertyTransforms(_Section):
    """The transforms every mapping has (docs/configuration.md, "Transforms"): how `properties` are
    shaped and which records are left out. Compiled once per route by connector.destinations.transforms."""

    # `properties` keys as they are, or converted to camelCase (NUMBER_OF_RATINGS -> numberOfRatings).
    property_keys: Literal["as_is", "camelCase"] = "as_is"
    # List-valued properties joined with "|" (Personalize's separator of categorical values).
    join_lists: bool = False
    # Record filters by equality on fields of the decoded record: keep a record only if every
    # `include` field has one of its values; leave it out if any `exclude` field has one of its.
    include: dict[FieldPath, Annotated[list[FilterValue], Field(min_length=1)]] = Field(default_factory=dict)
    exclude: dict[FieldPath, Annotated[list[FilterValue], Field(min_length=1)]] = Field(default_factory=dict)


# The earliest interaction time a mapping accepts by default: no click stream is older.
TIME_NOT_BEFORE = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)


class _InteractionMappingConfig(_PropertyTransforms):
    """The fields PutEvents and PutActionInteractions share: an interaction in a session.

    `null` means the record has no such field. A subclass names its `operation`, for the error.
    """

    operation: ClassVar[str]

    event_id: FieldPath | None = "eventId"  # none in the record: derived from its topic/partition/offset
    tracking_id: FieldPath | None = "trackingId"  # none in the record: the route's tracking_id
    session_id: FieldPath = "sessionId"
    user_id: FieldPath | None = "userId"
    event_type: FieldPath | None = "eventType"
    recommendation_id: FieldPath | None = "recommendationId"
    impression: FieldPath | None = "impression"
    # A map field whose entries become `properties`, and single fields added to it under their
    # last path component; both may be used together.
    properties: FieldPath | None = "properties"
    property_fields: list[FieldPath] = Field(default_factory=list)
    # Used when the record has no event type (or event_type is null). Declared after event_type,
    # so the validator below sees it in `info.data`.
    event_type_default: Annotated[
        str | None, Field(min_length=1, max_length=256, validate_default=True)
    ] = None
    # Transforms (docs/configuration.md, "Transforms"): compiled once per route by
    # connector.destinations.transforms. The defaults change nothing.
    # How the record's sentAt (PutEvents) / timestamp (PutActionInteractions) is read: configured,
    # never guessed (a long in seconds read as milliseconds would land in January 1970).
    time_format: Literal["epoch_millis", "epoch_seconds", "epoch_micros", "iso8601", "record_timestamp"] = (
        "epoch_millis"
    )
    # The sane window: a time outside it is dead-lettered at validate rather than sent (a wrong unit
    # lands in 1970 or in the year 50,000; Personalize would store it and train on it). null: not
    # checked. One day ahead leaves room for producers whose clocks run fast.
    time_not_before: AwareDatetime | None = TIME_NOT_BEFORE
    time_max_ahead_s: Annotated[float, Field(gt=0)] | None = 86_400.0

    @field_validator("event_type_default")
    @classmethod
    def _event_type_has_a_source(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and "event_type" in info.data and info.data["event_type"] is None:
            raise ValueError(f"is required when mapping.event_type is null ({cls.operation} requires eventType)")
        return value


class MappingConfig(_InteractionMappingConfig):
    """Where each PutEvents field comes from in the decoded record (dotted paths into nested records).

    The defaults are the canonical schema's names.
    """

    operation = "PutEvents"

    event_value: FieldPath | None = "eventValue"
    item_id: FieldPath | None = "itemId"
    sent_at: FieldPath = "sentAt"
    event_attribution_source: FieldPath | None = "eventAttributionSource"


class EntityMappingConfig(_PropertyTransforms):
    """Where the PutItems / PutUsers / PutActions fields come from in the decoded record."""

    # The entry's id; null means the default name (itemId, userId, actionId).
    id: FieldPath | None = None
    properties: FieldPath | None = "properties"
    property_fields: list[FieldPath] = Field(default_factory=list)
    # A boolean field that marks a deletion, which PutItems/PutUsers/PutActions cannot express (see on_delete).
    deleted: FieldPath | None = "deleted"


class ActionInteractionMappingConfig(_InteractionMappingConfig):
    """Where each PutActionInteractions field comes from in the decoded record (like MappingConfig).

    The defaults are the names of the packaged action_interaction.avsc; event_type_default is
    Viewed, Taken or Not Taken.
    """

    operation = "PutActionInteractions"

    action_id: FieldPath = "actionId"
    timestamp: FieldPath = "timestamp"


# The service's default quota for PutItems and PutUsers calls, per dataset (Amazon Personalize
# "Endpoints and quotas" page); PutEvents' is personalize.max_requests_per_second (1,000).
# PutActions is given the same default as its dataset siblings, PutActionInteractions PutEvents'.
ENTITY_REQUESTS_PER_SECOND = 10.0
_DATASET_ARN = r"^arn:([a-z\d-]+):personalize:.*:.*:.+$"  # the service model's pattern for datasetArn


class _RouteBase(_Section):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    topics: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    reader_schema: FilePath | None = None  # default: the packaged schema of the destination
    dlq_topic: Annotated[str, Field(min_length=1)] | None = None  # default: dlq.topic
    # Default: personalize.max_requests_per_second for events and action_interactions, 10/s (the
    # service quota) for items, users and actions.
    max_requests_per_second: Annotated[float, Field(gt=0)] | None = None


class EventsRoute(_RouteBase):
    """Topics of interactions sent with PutEvents."""

    destination: Literal["events"]
    tracking_id: Annotated[str, Field(min_length=1, max_length=256)] | None = None  # default: personalize's
    mapping: MappingConfig = Field(default_factory=MappingConfig)
    allowed_tracking_ids: _AllowedTrackingIds = None  # default: personalize's


class EntityRoute(_RouteBase):
    """Topics of catalogue items (PutItems), user profiles (PutUsers) or actions (PutActions)."""

    destination: Literal["items", "users", "actions"]
    dataset_arn: Annotated[str, Field(max_length=256, pattern=_DATASET_ARN)]
    mapping: EntityMappingConfig = Field(default_factory=EntityMappingConfig)
    # A tombstone (null value) or a delete marker: PutItems, PutUsers and PutActions cannot delete, so the
    # record is dead-lettered (default) or skipped and counted (pkc_records_skipped_total).
    on_delete: Literal["dead-letter", "skip"] = "dead-letter"


class ActionInteractionsRoute(_RouteBase):
    """Topics of action interactions sent with PutActionInteractions (to the action interaction
    event tracker, which is not PutEvents' tracker: there is no default from personalize)."""

    destination: Literal["action_interactions"]
    tracking_id: Annotated[str, Field(min_length=1, max_length=256)]
    mapping: ActionInteractionMappingConfig = Field(default_factory=ActionInteractionMappingConfig)
    allowed_tracking_ids: _AllowedTrackingIds = None  # default: personalize's


AnyRoute = EventsRoute | EntityRoute | ActionInteractionsRoute
RouteConfig = Annotated[AnyRoute, Field(discriminator="destination")]


# What load_settings hands to settings_customise_sources (a classmethod, so it cannot take arguments).
LOADING: ContextVar[tuple[dict[str, Any], Mapping[str, str] | None]] = ContextVar("LOADING", default=({}, None))


class _MappingEnvSource(EnvSettingsSource):
    """The PKC_* source over an explicit mapping (tests, `check`) instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str] | None) -> None:
        self._env = env  # read by _load_env_vars, which the base constructor calls
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        source = os.environ if self._env is None else self._env
        none = self.env_parse_none_str
        return {
            k.lower(): (None if v == none else v) for k, v in source.items() if k.upper().startswith(ENV_PREFIX)
        }


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        case_sensitive=False,
        env_parse_none_str="null",  # PKC_MAPPING__ITEM_ID=null unmaps a field
        extra="forbid",
        frozen=True,
    )

    kafka: KafkaConfig
    schema_registry: SchemaRegistryConfig = Field(default_factory=SchemaRegistryConfig)
    decode: DecodeConfig = Field(default_factory=DecodeConfig)
    glue: GlueConfig = Field(default_factory=GlueConfig)
    personalize: PersonalizeConfig
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    dlq: DlqConfig = Field(default_factory=DlqConfig)
    shutdown: ShutdownConfig = Field(default_factory=ShutdownConfig)
    observability: ObservabilityConfig = Field(default_factory=ObservabilityConfig)
    mapping: MappingConfig = Field(default_factory=MappingConfig)
    routes: list[RouteConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _routes_are_complete(self) -> Settings:
        if not self.kafka.topics and not self.routes:
            raise ValueError("kafka.topics: must name at least one topic unless routes are configured")
        if self.kafka.topics and self.personalize.tracking_id is None:
            raise ValueError("personalize.tracking_id: is required to send the records of kafka.topics to PutEvents")
        seen: dict[str, str] = {t: "events" for t in self.kafka.topics}
        names = {"events"} if self.kafka.topics else set()
        for route in self.routes:
            if route.name in names:
                raise ValueError(f"routes.name: {route.name!r} is used twice")
            names.add(route.name)
            if isinstance(route, EventsRoute) and route.tracking_id is None and self.personalize.tracking_id is None:
                raise ValueError(f"routes.tracking_id: route {route.name!r} needs one (or personalize.tracking_id)")
            for topic in route.topics:
                if topic in seen:
                    raise ValueError(f"routes.topics: {topic!r} is in two routes ({seen[topic]!r} and {route.name!r})")
                seen[topic] = route.name
        return self

    def effective_routes(self) -> list[AnyRoute]:
        """Every route with its defaults filled in; kafka.topics become the route named "events"."""
        routes: list[AnyRoute] = []
        if self.kafka.topics:
            routes.append(
                EventsRoute(
                    name="events",
                    destination="events",
                    topics=list(self.kafka.topics),
                    tracking_id=self.personalize.tracking_id,
                    mapping=self.mapping,
                    reader_schema=self.decode.reader_schema,
                    dlq_topic=self.dlq.topic,
                    max_requests_per_second=self.personalize.max_requests_per_second,
                    allowed_tracking_ids=self.personalize.allowed_tracking_ids,
                )
            )
        for route in self.routes:
            update: dict[str, Any] = {
                "dlq_topic": route.dlq_topic or self.dlq.topic,
                "max_requests_per_second": route.max_requests_per_second
                or (
                    self.personalize.max_requests_per_second
                    if isinstance(route, EventsRoute | ActionInteractionsRoute)
                    else ENTITY_REQUESTS_PER_SECOND
                ),
            }
            if isinstance(route, EventsRoute):
                update["tracking_id"] = route.tracking_id or self.personalize.tracking_id
            if isinstance(route, EventsRoute | ActionInteractionsRoute) and route.allowed_tracking_ids is None:
                update["allowed_tracking_ids"] = self.personalize.allowed_tracking_ids
            routes.append(route.model_copy(update=update))
        return routes

    def all_topics(self) -> list[str]:
        return [topic for route in self.effective_routes() for topic in route.topics]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Earlier wins: explicit kwargs, then PKC_* variables, then the YAML file.
        yaml_data, env = LOADING.get()
        yaml_source = InitSettingsSource(settings_cls, yaml_data)
        return init_settings, _MappingEnvSource(settings_cls, env), yaml_source

    def secret_values(self) -> list[str]:
        """The configured values that must never be printed, for the log scrubber: SecretStr fields
        and every kafka.config value outside SAFE_KAFKA_CONFIG_KEYS."""
        sr = self.schema_registry
        values = [s.get_secret_value() for s in (sr.basic_auth_password, sr.bearer_token) if s is not None]
        values += [str(v) for k, v in self.kafka.config.items()
                   if k not in SAFE_KAFKA_CONFIG_KEYS and isinstance(v, str)]
        return values

    def redacted(self) -> dict[str, Any]:
        """A JSON-ready dump for logging: SecretStr fields and credential-looking Kafka properties masked."""
        dumped = self.model_dump(mode="json")  # SecretStr dumps as "**********" in JSON mode
        dumped["kafka"]["config"] = self.kafka.redacted_config()
        # URL credentials anywhere (schema_registry.url, endpoint URLs of personalize, glue, routes).
        masked: dict[str, Any] = _mask_urls(dumped)
        return masked


def _mask_urls(value: Any) -> Any:
    """`value` with the userinfo of every URL in its strings masked (https://***@host/...)."""
    if isinstance(value, str):
        return mask_url_credentials(value)
    if isinstance(value, dict):
        return {k: _mask_urls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_urls(v) for v in value]
    return value
