"""Schemas of the records the connector reads (Avro, and one JSON Schema twin), shipped as data."""

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


def read(name: str = INTERACTION_EVENT) -> str:
    """The text of a packaged schema file."""
    return (files(__name__) / name).read_text(encoding="utf-8")
