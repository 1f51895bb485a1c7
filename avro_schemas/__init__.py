"""Schemas of the records the connector reads (Avro, and their JSON Schema and Protobuf twins), shipped as data."""

from importlib.resources import files

INTERACTION_EVENT = "interaction_event.avsc"
ITEM = "item.avsc"
USER = "user.avsc"
ACTION = "action.avsc"
ACTION_INTERACTION = "action_interaction.avsc"
# The JSON Schema equivalent of INTERACTION_EVENT, for JSON Schema topics (decode.format json_schema).
INTERACTION_EVENT_JSON_SCHEMA = "interaction_event.schema.json"
# The Protobuf equivalent, for Protobuf topics (decode.format protobuf).
INTERACTION_EVENT_PROTO = "interaction_event.proto"

# Each Avro schema's twins, field for field (tests/unit/test_packaged_schemas.py): what
# `produce --format json_schema|protobuf` registers for a kind, and what its producers may use.
JSON_SCHEMAS = {INTERACTION_EVENT: INTERACTION_EVENT_JSON_SCHEMA, ITEM: "item.schema.json", USER: "user.schema.json",
                ACTION: "action.schema.json", ACTION_INTERACTION: "action_interaction.schema.json"}
PROTOS = {INTERACTION_EVENT: INTERACTION_EVENT_PROTO, ITEM: "item.proto", USER: "user.proto",
          ACTION: "action.proto", ACTION_INTERACTION: "action_interaction.proto"}


def read(name: str = INTERACTION_EVENT) -> str:
    """The text of a packaged schema file."""
    return (files(__name__) / name).read_text(encoding="utf-8")
