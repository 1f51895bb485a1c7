"""The actions destination: action records -> PutActions entries of one Actions dataset.

PutActions has the dataset shape of PutItems (`datasetArn` + a list of {actionId, properties}), so
an EntityKind is all it needs; like PutItems it cannot delete (see EntityRoute.on_delete).
"""

from __future__ import annotations

from connector.config import EntityRoute
from connector.destinations.entities import EntityKind, EntityMapper
from connector.destinations.entities import build as build_entity

ACTIONS = EntityKind(name="actions", operation="PutActions", id_field="actionId")
READER_SCHEMA = "action.avsc"  # packaged in avro_schemas, used when the route names none


def build(route: EntityRoute) -> EntityMapper:
    return build_entity(ACTIONS, route)
