"""produce --format protobuf: events framed in Confluent's Protobuf format, bad records bad as labelled.

(Confluent's own ProtobufDeserializer would need googleapis-common-protos, a dependency for one
test; the framing is checked byte by byte in test_protobuf_decode.py instead. The integration test
registers against Apicurio.)"""

from __future__ import annotations

import pytest

from connector.decode import ProtobufWireDecoder
from connector.records import DecodeError
from connector.tools.produce import make_protobuf_encoder, register_schema
from connector.tools.protobuf_records import interaction_event_proto
from connector.tools.workload import generate

REGISTRY = "mock://protobuf-produce-test"


def test_every_record_decodes_as_generated_or_fails_as_labelled() -> None:
    schema_id = register_schema(REGISTRY, "t-value", wire_format="protobuf")
    decoder = ProtobufWireDecoder(lambda _id: (interaction_event_proto(), {}), unknown_schema_retry_s=0)
    encode = make_protobuf_encoder(schema_id)
    records = list(generate(400, None, seed=5, bad_ratio=0.3))
    assert {r.bad_kind for r in records} >= {None, "truncated", "not-avro", "unknown-schema-id", "missing-session"}
    for r in records:
        if r.bad_kind in ("truncated", "not-avro", "unknown-schema-id"):
            with pytest.raises(DecodeError):
                decoder.decode(encode(r))
            continue
        assert r.value is not None
        decoded = decoder.decode(encode(r))
        assert decoded["sentAt"].timestamp() * 1000 == pytest.approx(r.value["sentAt"], abs=0.5)
        assert decoded == r.value | {"sentAt": decoded["sentAt"], "eventValue": decoded["eventValue"]}
        if r.value["eventValue"] is None:
            assert decoded["eventValue"] is None
        else:  # a proto float, as an Avro float: single precision
            assert decoded["eventValue"] == pytest.approx(r.value["eventValue"], rel=1e-6)
