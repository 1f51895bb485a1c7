"""Avro schemas of the records the connector reads, shipped with the package as data."""

from importlib.resources import files

INTERACTION_EVENT = "interaction_event.avsc"
ITEM = "item.avsc"
USER = "user.avsc"
ACTION = "action.avsc"
ACTION_INTERACTION = "action_interaction.avsc"
INTERACTION_EVENT_PROTO = "interaction_event.proto"


def read(name: str = INTERACTION_EVENT) -> str:
    """The text of a packaged schema file."""
    return (files(__name__) / name).read_text(encoding="utf-8")
