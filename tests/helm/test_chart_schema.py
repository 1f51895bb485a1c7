"""values.schema.json: misspelled keys and invalid values are refused with a message naming them, and the
schema's `config` follows the connector's own settings model key by key."""

from __future__ import annotations

import json
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import annotated_types
import pytest
import yaml
from chart_support import CHART, CI_IDS_AND_VALUES, REPO_ROOT, Helm, Renderer
from pydantic import BaseModel, SecretStr

from connector.config import Settings

SCHEMA: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
CONFIG_SCHEMA: dict[str, Any] = SCHEMA["properties"]["config"]

# Connector keys the chart deliberately keeps out of `config`: secrets (they come from Secrets via env)
# and the rate (computed from personalize.quotaRequestsPerSecond).
NOT_IN_CONFIG = {
    "schema_registry": {"basic_auth_password", "bearer_token"},
    "personalize": {"max_requests_per_second"},
}

BAD_VALUES = """\
config:
  batching:
    max_event_per_call: 5          # misspelled
    max_in_flight_calls: 0         # below 1
  decode:
    format: thrift                 # not an allowed format
  personalize:
    tracking_id: t
    max_requests_per_second: 10    # computed by the chart
keda:
  enable: true                     # misspelled
"""
EXPECTED_PROBLEMS = [
    "at '/config/batching': additional properties 'max_event_per_call' not allowed",
    "at '/config/batching/max_in_flight_calls': minimum: got 0, want 1",
    "at '/config/decode/format': value must be one of 'confluent', 'plain', 'glue'",
    "at '/config/personalize': additional properties 'max_requests_per_second' not allowed",
    "at '/keda': additional properties 'enable' not allowed",
]


def test_lint_refuses_a_bad_values_file_naming_every_problem(helm: Helm, tmp_path: Path) -> None:
    bad = tmp_path / "bad-values.yaml"
    bad.write_text(BAD_VALUES)
    for message in (_error(helm, "lint", "--strict", str(CHART), "-f", str(bad)),
                    _error(helm, "template", "x", str(CHART), "-f", str(bad))):
        for problem in EXPECTED_PROBLEMS:
            assert problem in message, message


def _error(helm: Helm, *args: str) -> str:
    from chart_support import HelmError

    with pytest.raises(HelmError) as info:
        helm.run(*args, "--kube-version", "1.34.0")
    return str(info.value)


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        (
            {"config": {"batching": {"max_events_per_call": 11}}},
            "/config/batching/max_events_per_call': maximum: got 11, want 10",
        ),
        (
            {"config": {"batching": {"max_events_per_call": 0}}},
            "/config/batching/max_events_per_call': minimum: got 0, want 1",
        ),
        (
            {"config": {"kafka": {"client": "librdkafka"}}},
            "/config/kafka/client': value must be one of 'confluent', 'kafka-python'",
        ),
        (
            {"config": {"kafka": {"auto_offset_reset": "smallest"}}},
            "/config/kafka/auto_offset_reset': value must be one of",
        ),
        ({"config": {"routes": [{"name": "i", "destination": "items", "topics": []}]}},
         "/config/routes/0/topics': minItems: got 0, want 1"),
        ({"config": {"routes": [{"name": "i", "destination": "sofa", "topics": ["t"]}]}},
         "/config/routes/0/destination': value must be one of"),
        ({"config": {"kafka": {"bootstrap_servers": ""}}}, "/config/kafka/bootstrap_servers': minLength"),
        (
            {"config": {"observability": {"log_format": "xml"}}},
            "/config/observability/log_format': value must be one of",
        ),
        (
            {"config": {"observability": {"metrics_port": 0}}},
            "/config/observability/metrics_port': minimum: got 0, want 1",
        ),
        ({"config": {"mapping": {"item_id": "a..b"}}}, "/config/mapping/item_id"),
        ({"config": {"mapping": {"itemId": "x"}}}, "additional properties 'itemId' not allowed"),
        ({"config": {"decode": {"format": "plain"}}}, "/config/decode': missing property 'writer_schema'"),
        ({"config": {"kafka_config": {}}}, "at '/config': additional properties 'kafka_config' not allowed"),
        ({"replicas": 3}, "additional properties 'replicas' not allowed"),
        ({"personalize": {"quotaRequestsPerSecond": 0}}, "/personalize/quotaRequestsPerSecond'"),
        ({"keda": {"sasl": "PLAIN"}}, "/keda/sasl': value must be one of"),
        ({"image": {"pullPolicy": "always"}}, "/image/pullPolicy': value must be one of"),
        ({"pdb": {"maxUnavailabe": 1}}, "additional properties 'maxUnavailabe' not allowed"),
        ({"livenessProbe": {"path": "/x"}}, "additional properties 'path' not allowed"),
    ],
)
def test_invalid_values_are_refused(render: Renderer, values: dict[str, Any], problem: str) -> None:
    assert problem in render.error(values)


@pytest.mark.parametrize(("name", "values"), CI_IDS_AND_VALUES, ids=[n for n, _ in CI_IDS_AND_VALUES])
def test_every_example_values_file_passes_lint(helm: Helm, name: str, values: Path | None) -> None:
    args = ["lint", "--strict", str(CHART), "--kube-version", "1.34.0"]
    out = helm.run(*args, *(["-f", str(values)] if values else []))
    assert "0 chart(s) failed" in out, name


# ---- the schema follows connector/config/ ----------------------------------------------------------


def _sections() -> dict[str, type[BaseModel]]:
    """The connector's config sections that are one model each (`routes`, a list, is checked apart)."""
    out: dict[str, type[BaseModel]] = {}
    for name, field in Settings.model_fields.items():
        if name == "routes":
            continue
        assert isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
        out[name] = field.annotation
    return out


SECTIONS = _sections()


def test_config_has_exactly_the_connectors_sections() -> None:
    assert CONFIG_SCHEMA["additionalProperties"] is False
    assert set(CONFIG_SCHEMA["properties"]) == {*SECTIONS, "routes"}


def test_routes_have_exactly_the_connectors_route_keys() -> None:
    from connector.config import (
        ActionInteractionMappingConfig,
        ActionInteractionsRoute,
        EntityMappingConfig,
        EntityRoute,
        EventsRoute,
        MappingConfig,
    )

    route = CONFIG_SCHEMA["properties"]["routes"]["items"]
    assert set(route["properties"]) == (
        set(EventsRoute.model_fields) | set(EntityRoute.model_fields) | set(ActionInteractionsRoute.model_fields))
    assert route["properties"]["destination"]["enum"] == ["events", "items", "users", "actions", "action_interactions"]
    mapping = set(route["properties"]["mapping"]["properties"])
    assert mapping == (set(MappingConfig.model_fields) | set(EntityMappingConfig.model_fields)
                       | set(ActionInteractionMappingConfig.model_fields))


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_each_section_has_exactly_the_connectors_keys(section: str) -> None:
    schema = CONFIG_SCHEMA["properties"][section]
    assert schema["additionalProperties"] is False
    expected = set(SECTIONS[section].model_fields) - NOT_IN_CONFIG.get(section, set())
    assert set(schema["properties"]) == expected


def _constraints(annotation: Any, metadata: list[Any]) -> tuple[list[Any], dict[str, Any]]:
    """(Literal choices, numeric/length bounds) of a pydantic field, looking inside Optional/Annotated."""
    literals: list[Any] = []
    bounds: dict[str, Any] = {}
    stack: list[Any] = [annotation, *metadata]
    while stack:
        item = stack.pop()
        if get_origin(item) is Literal:
            literals.extend(get_args(item))
        elif get_origin(item) in (typing.Union, types.UnionType):
            stack.extend(get_args(item))
        elif hasattr(item, "__metadata__"):
            stack.extend([get_args(item)[0], *item.__metadata__])
        elif hasattr(item, "metadata") and isinstance(item.metadata, list):  # FieldInfo inside Annotated
            stack.extend(item.metadata)
        elif isinstance(item, annotated_types.Ge):
            bounds["minimum"] = item.ge
        elif isinstance(item, annotated_types.Gt):
            bounds["exclusiveMinimum"] = item.gt
        elif isinstance(item, annotated_types.Le):
            bounds["maximum"] = item.le
        elif isinstance(item, annotated_types.MinLen) and item.min_length:
            bounds["minLength"] = item.min_length
        elif isinstance(item, annotated_types.MaxLen):
            bounds["maxLength"] = item.max_length
    return literals, bounds


FIELDS = [
    (section, key)
    for section, model in SECTIONS.items()
    for key in model.model_fields
    if key not in NOT_IN_CONFIG.get(section, set())
]


@pytest.mark.parametrize(("section", "key"), FIELDS, ids=[f"{s}.{k}" for s, k in FIELDS])
def test_each_key_has_the_connectors_choices_and_bounds(section: str, key: str) -> None:
    field = SECTIONS[section].model_fields[key]
    schema = CONFIG_SCHEMA["properties"][section]["properties"][key]
    literals, bounds = _constraints(field.annotation, list(field.metadata))
    # A key that is a word or a number (max_in_flight_calls: auto | 1..256) is a oneOf of the two.
    branches = schema.get("oneOf", [schema])
    if literals:
        words = [w for b in branches for w in (b["enum"] if "enum" in b else [b["const"]] if "const" in b else [])]
        assert sorted(words) == sorted(literals)
    if schema.get("type") == "array" or "items" in schema:
        return  # list bounds (topics' minItems) are checked by test_invalid_values_are_refused
    for name, value in bounds.items():
        if (section, key, name) == ("observability", "metrics_port", "minimum"):
            assert schema[name] == 1  # the chart needs the HTTP server for its probes
        elif (section, key, name) == ("personalize", "tracking_id", "minLength"):
            assert name not in schema  # defaults render (helm lint); the connector refuses "" at start-up
        else:
            assert [b.get(name) for b in branches if name in b] == [value], f"{section}.{key} {name}"
    nullable = field.default is None or type(None) in get_args(field.annotation)
    types_ = schema.get("type", [])
    if nullable and "enum" not in schema:
        assert "null" in types_, f"{section}.{key} may be null in the connector"
    assert field.annotation is not SecretStr


def test_values_yaml_defaults_are_the_connectors_defaults(chart_values: dict[str, Any]) -> None:
    """A key set in values.yaml carries the connector's own default (or is one the connector requires)."""
    required = {("kafka", "bootstrap_servers"), ("kafka", "topics"), ("personalize", "tracking_id"),
                ("schema_registry", "url")}  # url: needed by the default decode.format, so a sample value
    for section, keys in chart_values["config"].items():
        model = SECTIONS[section]
        for key, value in keys.items():
            if (section, key) in required:
                continue
            field = model.model_fields[key]
            default = field.get_default(call_default_factory=True)
            assert value == default, f"values.yaml config.{section}.{key}: {value!r} != connector default {default!r}"


def test_chart_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]


def test_schema_closes_every_object_it_describes() -> None:
    """additionalProperties: false on every object with `properties` (maps of free keys excepted)."""

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if "properties" in node and node.get("type") == "object":
                assert node.get("additionalProperties") is False, path
            for key, child in node.items():
                walk(child, f"{path}/{key}")
        elif isinstance(node, list):
            for n, child in enumerate(node):
                walk(child, f"{path}/{n}")

    walk(SCHEMA, "")
