"""A registered .proto schema (and the files it imports) compiled into message descriptors.

Why protoc, from grpcio-tools: Python's protobuf runtime builds messages from FileDescriptorProtos
but cannot parse .proto text. grpcio-tools ships the real protoc (and the well-known types such as
google/protobuf/timestamp.proto) as a PyPI wheel, so a schema compiles exactly as its producer's
did, with protoc's own error messages. The pure-Python parsers (proto-schema-parser, considered, not adopted) give an
AST that we would have to resolve into descriptors ourselves: type lookup across packages and
imports, json names, proto3 optional — protoc's job, easy to get subtly wrong. protoc runs as a
child process, once per schema id: its errors arrive on stderr there (in process they go to the
worker's fd 2, uncapturable), a hostile schema cannot crash or stall the worker (timeout), and
the cost is paid once per id, not per record.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FileDescriptor
from google.protobuf.message import Message

from connector.records import DecodeError

# The name the registered schema itself is compiled under: not a valid import of any reference.
ROOT_FILE = "pkc-registered-schema.proto"
PROTOC_TIMEOUT_S = 30.0
# Message indexes deeper than this name no message anyone declares; also bounds the index list.
MAX_INDEX_DEPTH = 32


def invalid_schema(schema_id: int, why: str) -> DecodeError:
    return DecodeError(f"schema id {schema_id} does not compile as Protobuf: {why}",
                       error_class="InvalidProtobufSchema")


@dataclass
class CompiledSchema:
    """One schema id's file: its message classes, looked up by Confluent message index path."""

    schema_id: int
    file: FileDescriptor
    _classes: dict[tuple[int, ...], type[Message]] = field(default_factory=dict)

    def message_class(self, indexes: tuple[int, ...]) -> type[Message]:
        cls = self._classes.get(indexes)
        if cls is None:
            cls = message_factory.GetMessageClass(self._descriptor(indexes))
            self._classes[indexes] = cls
        return cls

    def _descriptor(self, indexes: tuple[int, ...]) -> Descriptor:
        messages: list[Descriptor] = list(self.file.message_types_by_name.values())
        found: Descriptor | None = None
        for depth, index in enumerate(indexes):
            if not 0 <= index < len(messages):
                where = found.full_name if found is not None else "the file"
                raise DecodeError(f"schema id {self.schema_id}: message index {list(indexes)} names no message "
                                  f"(position {depth}: {index}, but {where} declares {len(messages)})",
                                  error_class="UnknownMessageIndex")
            found = messages[index]
            messages = list(found.nested_types)
        if found is None:  # the wire format never yields an empty path ([] is written as [0])
            raise DecodeError(f"schema id {self.schema_id}: empty message index", error_class="UnknownMessageIndex")
        return found


def compile_schema(schema_id: int, text: str, imports: Mapping[str, str]) -> CompiledSchema:
    """Compile `text` with `imports` (import path -> .proto text); DecodeError InvalidProtobufSchema.

    Each schema id gets a pool of its own: two versions of one message (same full name, other
    fields) are two ids, and must not collide.
    """
    with tempfile.TemporaryDirectory(prefix="pkc-proto-") as tmp:
        root = Path(tmp)
        for name, source in {**imports, ROOT_FILE: text}.items():
            path = PurePosixPath(name)
            if path.is_absolute() or ".." in path.parts or not name.endswith(".proto"):
                raise invalid_schema(schema_id, f"reference name {name!r:.80} is not a relative .proto path")
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(source, "utf-8")
        out = root / "descriptor-set.pb"
        try:
            done = subprocess.run(
                [sys.executable, "-m", "grpc_tools.protoc", f"-I{root}", f"-I{_well_known_types()}",
                 "--include_imports", f"--descriptor_set_out={out}", str(root / ROOT_FILE)],
                capture_output=True, text=True, timeout=PROTOC_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise invalid_schema(schema_id, f"protoc took over {PROTOC_TIMEOUT_S:g} s") from None
        if done.returncode != 0:
            why = done.stderr.replace(str(root) + "/", "").strip() or f"protoc exited with {done.returncode}"
            raise invalid_schema(schema_id, why[:500])
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    pool = descriptor_pool.DescriptorPool()
    for proto in files:  # --include_imports lists every file after the files it imports
        pool.Add(proto)
    return CompiledSchema(schema_id, pool.FindFileByName(ROOT_FILE))


def _well_known_types() -> str:
    import grpc_tools  # the wheel's include directory holds google/protobuf/*.proto

    return str(Path(grpc_tools.__file__).parent / "_proto")
