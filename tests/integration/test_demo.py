"""`make demo` (scripts/demo) runs all five operations end to end on its own ports and leaves nothing running.

The demo starts and stops its own local stack, so it gets free ports of its own for every listener
the stack opens (never the test stack's, nor the demo's defaults 19092/18081 and their neighbours,
which a developer may be using) and its own state dir.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
# DEMO_EVENTS=2000 interactions; the other kinds are sized from it (scripts/demo_streams.py).
PRODUCED = {"PutEvents": 2000, "PutItems": 50, "PutUsers": 25, "PutActions": 20, "PutActionInteractions": 200}


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def stack_processes(state_dir: Path) -> str:
    found = subprocess.run(["pgrep", "-af", "--", f"-Dlocal.stack.dir={state_dir} "],
                           capture_output=True, text=True, check=False)
    return found.stdout.strip()


def run_demo(tmp_path: Path, events: int, *args: str, **env_vars: str) -> str:
    """scripts/demo on free ports of its own; its stdout once it exited 0 and left no process behind."""
    kafka, controller, registry, sasl_ssl, ssl, registry_tls = free_ports(6)
    state_dir = tmp_path / "demo-stack"
    env = {
        **os.environ,
        "DEMO_EVENTS": str(events),
        "DEMO_KAFKA_PORT": str(kafka),
        "DEMO_KAFKA_CONTROLLER_PORT": str(controller),
        "DEMO_REGISTRY_PORT": str(registry),
        "DEMO_KAFKA_SASL_SSL_PORT": str(sasl_ssl),
        "DEMO_KAFKA_SSL_PORT": str(ssl),
        "DEMO_REGISTRY_TLS_PORT": str(registry_tls),
        "DEMO_STACK_DIR": str(state_dir),
        **env_vars,
    }
    stack_ports = {"KAFKA_PORT": kafka, "KAFKA_CONTROLLER_PORT": controller, "REGISTRY_PORT": registry,
                   "KAFKA_SASL_SSL_PORT": sasl_ssl, "KAFKA_SSL_PORT": ssl, "REGISTRY_TLS_PORT": registry_tls}
    for name in (*stack_ports, "LOCAL_STACK_DIR", *(() if "DEMO_FORMAT" in env_vars else ("DEMO_FORMAT",))):
        env.pop(name, None)
    try:
        result = subprocess.run([str(REPO_ROOT / "scripts" / "demo"), *args], env=env, capture_output=True,
                                text=True, timeout=1400, check=False, stdin=subprocess.DEVNULL)
        print(result.stdout[-6000:])
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        assert "local stack on" in result.stdout and "stopped" in result.stdout
        assert stack_processes(state_dir) == ""
    finally:
        leftover = stack_processes(state_dir)
        if leftover:  # never leave JVMs behind, even when an assertion above failed
            subprocess.run([str(REPO_ROOT / "scripts" / "local-stack"), "down"], check=False, timeout=180,
                           env={**env, **{name: str(port) for name, port in stack_ports.items()},
                                "LOCAL_STACK_DIR": str(state_dir)})
        assert leftover == "", f"demo left processes running:\n{leftover}"
    return result.stdout


def assert_every_operation_verified(out: str, produced_by_operation: dict[str, int]) -> None:
    """Each operation: every record produced was delivered or dead-lettered, and some were delivered."""
    for operation, produced in produced_by_operation.items():
        line = re.search(rf"✓ {operation}: {produced:,} produced = ([\d,]+) delivered \+ ([\d,]+) dead-lettered",
                         out)
        assert line is not None, operation
        delivered, dead = (int(n.replace(",", "")) for n in line.groups())
        assert delivered + dead == produced and delivered > 0, operation
    assert f"verified: all {sum(produced_by_operation.values()):,} records were delivered" in out


@pytest.mark.timeout(1500)
def test_demo_runs_end_to_end_and_cleans_up(tmp_path: Path) -> None:
    out = run_demo(tmp_path, 2000)
    assert "demo summary (Avro (Confluent wire format))" in out
    assert "delivered (distinct ids at Personalize)" in out
    assert "dead letters" in out and ("decode/" in out or "validate/" in out)
    assert "records produced" in out and "2,000" in out
    assert_every_operation_verified(out, PRODUCED)


# DEMO_EVENTS=500: 500 interactions, the others at their minimum of 20 or a tenth (scripts/demo_streams.py).
PRODUCED_500 = {"PutEvents": 500, "PutItems": 20, "PutUsers": 20, "PutActions": 20, "PutActionInteractions": 50}
# A tenth broken, so that the small streams have bad records in the format too (1% of 20 is none).
BAD = {"DEMO_BAD_RATIO": "0.1"}


@pytest.mark.timeout(1500)
@pytest.mark.parametrize(("value_format", "label", "undecodable"), [
    # --format on the command line; bytes without the magic byte, a message cut short
    ("protobuf", "Protobuf (Confluent wire format)", ("decode/WrongMagicByte", "decode/CorruptBody")),
    # DEMO_FORMAT, as `make demo DEMO_FORMAT=json_schema` passes it; JSON cut short or missing its brace
    ("json_schema", "JSON Schema (Confluent wire format)", ("decode/MalformedJson",)),
])
def test_demo_runs_in_another_format(tmp_path: Path, value_format: str, label: str,
                                     undecodable: tuple[str, ...]) -> None:
    """The records are produced in the format, the config decodes it, the verification reads it back."""
    if value_format == "protobuf":
        out = run_demo(tmp_path, 500, "--format", value_format, DEMO_FORMAT="json", **BAD)  # the option wins
    else:
        out = run_demo(tmp_path, 500, DEMO_FORMAT=value_format, **BAD)
    assert f"format: {value_format}" in out  # the config's decode.format, as printed
    assert f"in {label}" in out and f"demo summary ({label})" in out
    for reason in undecodable:
        assert reason in out, reason
    assert_every_operation_verified(out, PRODUCED_500)
