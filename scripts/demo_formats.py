"""The value formats `make demo` can stream in (`scripts/demo --format F`, or DEMO_FORMAT=F).

All five topics carry one format, so the connector's one `decode.format` covers every route, and
the verification reads the topics back with the decoder that configuration builds. Each format's
sample records come from `connector.tools.produce` with the kind's packaged schema or its twin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class DemoFormat:
    name: str  # the demo's --format and produce's --format
    decode_format: str  # the connector's decode.format for it
    label: str  # what the on-screen explanation calls it
    short: str  # ... in "broken on purpose (not Avro, truncated ...)"
    written_as: str  # how each sample record is written, for the explanation of phase 4
    registry: bool = True  # whether its schemas come from the schema registry

    @property
    def decoding(self) -> str:
        """How the connector reads it, for the explanation of phase 1."""
        via = "through a schema registry" if self.registry else "(no registry needed: the stack starts one anyway)"
        return f"decodes {self.label} {via}"


FORMATS: Final[dict[str, DemoFormat]] = {f.name: f for f in (
    DemoFormat("avro", "confluent", "Avro (Confluent wire format)", "Avro",
               "Avro-encoded with its packaged schema (avro_schemas/*.avsc) registered in the registry"),
    DemoFormat("json", "json", "plain JSON", "JSON",
               "a plain JSON object, fields named as in its packaged Avro schema (no registry involved)",
               registry=False),
    DemoFormat("json_schema", "json_schema", "JSON Schema (Confluent wire format)", "JSON",
               "a JSON object framed with the id of its packaged JSON Schema (avro_schemas/*.schema.json) "
               "registered in the registry"),
    DemoFormat("protobuf", "protobuf", "Protobuf (Confluent wire format)", "Protobuf",
               "a Protobuf message of its packaged .proto (avro_schemas/*.proto) registered in the registry"),
)}
DEFAULT: Final = "avro"


def demo_format(name: str) -> DemoFormat:
    """The format called `name`; ValueError naming the choices for anything else."""
    found = FORMATS.get(name)
    if found is None:
        raise ValueError(f"unknown format {name!r}; choose one of {', '.join(FORMATS)}")
    return found
