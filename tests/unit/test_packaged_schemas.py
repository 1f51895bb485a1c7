"""Every packaged .avsc has a JSON Schema and a .proto twin with the same fields, nullability and types."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf.descriptor import FieldDescriptor

import avro_schemas
from connector.decode.protobuf_schema import compile_schema
from connector.decode.protobuf_values import TIMESTAMP

AVRO_SCHEMAS = sorted(avro_schemas.PROTOS)
_JSON_TYPES = {"null": "null", "string": "string", "long": "integer", "int": "integer", "float": "number",
               "double": "number", "boolean": "boolean", "map": "object", "array": "array"}
_PROTO_TYPES = {"string": FieldDescriptor.TYPE_STRING, "long": FieldDescriptor.TYPE_INT64,
                "float": FieldDescriptor.TYPE_FLOAT, "double": FieldDescriptor.TYPE_DOUBLE,
                "boolean": FieldDescriptor.TYPE_BOOL}


def avro_fields(schema: str) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in json.loads(avro_schemas.read(schema))["fields"]}


def branches(avro_type: Any) -> list[Any]:
    return avro_type if isinstance(avro_type, list) else [avro_type]


def json_types(avro_type: Any) -> set[str]:
    return {_JSON_TYPES[b["type"] if isinstance(b, dict) else b] for b in branches(avro_type)}


def test_every_avro_schema_has_both_twins() -> None:
    assert set(avro_schemas.JSON_SCHEMAS) == set(avro_schemas.PROTOS) == {
        avro_schemas.INTERACTION_EVENT, avro_schemas.ITEM, avro_schemas.USER, avro_schemas.ACTION,
        avro_schemas.ACTION_INTERACTION}


@pytest.mark.parametrize("schema", AVRO_SCHEMAS)
def test_the_json_schema_twin_has_the_avro_fields_types_and_required_fields(schema: str) -> None:
    fields = avro_fields(schema)
    twin = json.loads(avro_schemas.read(avro_schemas.JSON_SCHEMAS[schema]))
    assert twin["title"] == json.loads(avro_schemas.read(schema))["name"]
    assert set(twin["properties"]) == set(fields)
    assert set(twin["required"]) == {name for name, f in fields.items() if "default" not in f}
    for name, field in fields.items():
        declared = twin["properties"][name]
        assert set(branches(declared["type"])) == json_types(field["type"]), name
        container = field["type"] if isinstance(field["type"], dict) else {}
        if container.get("type") == "map":
            assert set(declared["additionalProperties"]["type"]) == json_types(container["values"]), name
        if container.get("type") == "array":
            assert declared["items"] == {"type": container["items"]}, name
        if container.get("logicalType") == "timestamp-millis":
            assert declared["description"] == "epoch milliseconds", name


@pytest.mark.parametrize("schema", AVRO_SCHEMAS)
def test_the_proto_twin_has_the_avro_fields_nullability_and_types(schema: str) -> None:
    """Nullable Avro fields are proto3 `optional`; maps are of the PropertyValue union; timestamps Timestamps."""
    fields = avro_fields(schema)
    compiled = compile_schema(0, avro_schemas.read(avro_schemas.PROTOS[schema]), {})
    message = compiled.message_class((0,)).DESCRIPTOR  # what message index [0] names
    assert message.name == json.loads(avro_schemas.read(schema))["name"]
    assert [fd.name for fd in message.fields] == list(fields)  # the .avsc's order, too
    for name, field in fields.items():
        fd: Any = message.fields_by_name[name]
        types = [b for b in branches(field["type"]) if b != "null"]
        assert len(types) == 1, name  # no packaged schema has a union beyond nullability
        avro_type = types[0]
        nullable = "null" in branches(field["type"])
        kind = (avro_type.get("logicalType") or avro_type["type"]) if isinstance(avro_type, dict) else avro_type
        if kind == "map":
            entry = fd.message_type
            assert entry.GetOptions().map_entry, name
            value = entry.fields_by_name["value"].message_type
            assert len(value.oneofs) == 1 and len(value.oneofs[0].fields) == len(value.fields), name
            assert {f.type for f in value.fields} == {_PROTO_TYPES[t] for t in avro_type["values"]}, name
        elif kind == "array":
            assert fd.is_repeated and fd.type == _PROTO_TYPES[avro_type["items"]], name
        elif kind == "timestamp-millis":
            assert fd.message_type.full_name == TIMESTAMP and not nullable, name
        else:
            assert fd.type == _PROTO_TYPES[kind] and not fd.is_repeated, name
            assert fd.has_presence == nullable, name  # proto3 `optional` exactly where Avro allows null


def test_the_five_protos_compile_together() -> None:
    """One protoc run over all of them (what generated code for a producer of every kind does): no name clashes."""
    imports = {name: avro_schemas.read(name) for name in avro_schemas.PROTOS.values()}
    root = 'syntax = "proto3";\n' + "".join(f'import "{name}";\n' for name in sorted(imports))
    compiled = compile_schema(0, root, imports)
    assert {f.name for f in compiled.file.dependencies} == set(imports)
