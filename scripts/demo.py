"""The demo behind `make demo` (run through scripts/demo with the repo's virtualenv).

Phases, each explained on screen as it runs:
  1. start a local Kafka broker + schema registry (scripts/local-stack, on the demo's own ports)
     and the Personalize emulator (a stand-in for AWS, on a free port);
  2. create one topic per Personalize operation (interactions, items, users, actions, action
     interactions; 3 partitions each) and a dead-letter topic, write a connector config with a
     route per topic (scripts/demo_streams.py);
  3. `personalize-connector check` that config;
  4. produce sample records of each kind, ~1% of them deliberately broken;
  5. run the connector until it has been idle for 5 s, with live progress;
  6. summarise per operation, and verify that every produced record was either delivered (its id
     reached the emulator under its operation) or dead-lettered (its position is named in a dead
     letter's headers);
  7. stop everything (also on failure or Ctrl-C).

Every topic carries one value format, `--format avro|json|json_schema|protobuf` (default: DEMO_FORMAT,
else avro; scripts/demo_formats.py): the records are produced in it, the config's decode.format
reads it, and the verification decodes with that same configuration.

Exit code 0 only when the verification holds.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.resources
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

# scripts/ is on sys.path: the demo runs as a script.
from demo_formats import DEFAULT, FORMATS, DemoFormat, demo_format
from demo_streams import Stream, StreamCheck, check_stream, demo_streams
from rich.console import Console
from rich.table import Table

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCAL_STACK = REPO_ROOT / "scripts" / "local-stack"
CLI = Path(sys.executable).with_name("personalize-connector")

_stdout_is_terminal = Console().is_terminal
# Logs and CI capture are not terminals: a fixed, comfortable width instead of rich's 80 columns.
console = Console(highlight=False, width=None if _stdout_is_terminal else 110)


class DemoFailed(Exception):
    pass


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise DemoFailed(f"{name} must be a number, got {value!r}") from None


@dataclass
class Demo:
    value_format: DemoFormat = field(default_factory=lambda: FORMATS[DEFAULT])
    events: int = field(default_factory=lambda: env_int("DEMO_EVENTS", 20_000))
    bad_ratio: float = field(default_factory=lambda: float(os.environ.get("DEMO_BAD_RATIO", "0.01")))
    kafka_port: int = field(default_factory=lambda: env_int("DEMO_KAFKA_PORT", 19092))
    controller_port: int = 0
    registry_port: int = field(default_factory=lambda: env_int("DEMO_REGISTRY_PORT", 18081))
    run_id: str = field(default_factory=lambda: time.strftime("%Y%m%d-%H%M%S"))
    tracking_id: str = field(default_factory=lambda: f"demo-tracker-{uuid.uuid4().hex[:8]}")
    # PutActionInteractions goes to an action interaction event tracker, not PutEvents' tracker.
    action_tracking_id: str = field(default_factory=lambda: f"demo-action-tracker-{uuid.uuid4().hex[:8]}")
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pkc-demo-")))
    stack_was_running: bool = False
    stack_started: bool = False
    emulator: subprocess.Popen[bytes] | None = None
    emulator_url: str = ""
    connector: subprocess.Popen[bytes] | None = None
    bootstrap: str = ""
    registry_url: str = ""
    metrics_port: int = 0
    produced_count: int = 0
    elapsed_s: float = 0.0
    drained_s: float = 0.0  # from the run start until every record was handled
    last_metrics: dict[str, float] = field(default_factory=dict)
    tls_ports: dict[str, int] = field(init=False)  # local-stack's variable -> port
    streams: list[Stream] = field(init=False)
    dlq_topic: str = field(init=False)
    group: str = field(init=False)
    config_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.controller_port = env_int("DEMO_KAFKA_CONTROLLER_PORT", self.kafka_port + 1)
        # The stack's TLS listeners, which scripts/local-stack puts next to the two ports above.
        self.tls_ports = {"KAFKA_SASL_SSL_PORT": env_int("DEMO_KAFKA_SASL_SSL_PORT", self.kafka_port + 2),
                          "KAFKA_SSL_PORT": env_int("DEMO_KAFKA_SSL_PORT", self.kafka_port + 3),
                          "REGISTRY_TLS_PORT": env_int("DEMO_REGISTRY_TLS_PORT", self.registry_port + 1)}
        self.streams = demo_streams(self.events, self.run_id, self.tracking_id, self.action_tracking_id)
        self.dlq_topic = f"demo-dead-letters-{self.run_id}"
        self.group = f"demo-connector-{self.run_id}"
        self.config_path = self.workdir / "connector.yaml"

    # ------------------------------------------------------------------------------ helpers

    def stack_env(self) -> dict[str, str]:
        env = {**os.environ, "KAFKA_PORT": str(self.kafka_port), "REGISTRY_PORT": str(self.registry_port),
               "KAFKA_CONTROLLER_PORT": str(self.controller_port),
               **{name: str(port) for name, port in self.tls_ports.items()}}
        if os.environ.get("DEMO_STACK_DIR"):
            env["LOCAL_STACK_DIR"] = os.environ["DEMO_STACK_DIR"]
        else:
            env.pop("LOCAL_STACK_DIR", None)
        return env

    def local_stack(self, command: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(LOCAL_STACK), command], env=self.stack_env(), capture_output=True, text=True,
                              timeout=timeout, check=False, stdin=subprocess.DEVNULL)

    # ------------------------------------------------------------------------------ phases

    def start_stack(self) -> None:
        phase("1/6", "Starting the local stack")
        explain(
            f"The connector reads from Apache Kafka and {self.value_format.decoding}. We start both as",
            f"local Java processes (scripts/local-stack) on the demo's own ports: Kafka :{self.kafka_port}, "
            f"registry :{self.registry_port},",
            "so they do not collide with a test run. The first run downloads the jars (~170 MB, cached).",
        )
        self.stack_was_running = self.local_stack("status", 60).returncode == 0
        started = time.monotonic()
        up = self.local_stack("up", float(os.environ.get("LOCAL_STACK_TIMEOUT", "120")) + 900)
        self.stack_started = not self.stack_was_running
        if up.returncode != 0:
            raise DemoFailed(f"scripts/local-stack up failed:\n{up.stderr.strip()}")
        info = dict(line.split("=", 1) for line in up.stdout.splitlines() if "=" in line)
        self.bootstrap, self.registry_url = info["KAFKA_BOOTSTRAP"], info["SCHEMA_REGISTRY_URL"]
        note = " (it was already running: the demo leaves it running)" if self.stack_was_running else ""
        done(f"Kafka at {self.bootstrap}, schema registry at {self.registry_url} "
             f"({time.monotonic() - started:.0f} s){note}")

        explain(
            "Amazon Personalize is replaced by the emulator that ships with the connector: it serves the",
            "five Personalize Events APIs exactly as boto3 calls them, enforces the service's limits, and records",
            "what it accepts.",
        )
        self.emulator = subprocess.Popen(
            [str(CLI), "emulator", "--port", "0", "--tracking-id", self.tracking_id,
             "--tracking-id", self.action_tracking_id],
            stdout=subprocess.PIPE, stderr=(self.workdir / "emulator.log").open("wb"), stdin=subprocess.DEVNULL,
        )
        line = read_line(self.emulator, 30)
        match = re.search(r"listening on (http://\S+)", line)
        if match is None:
            raise DemoFailed(f"the emulator did not start: {line!r} (log {self.workdir / 'emulator.log'})")
        self.emulator_url = match.group(1)
        done(f"Personalize emulator at {self.emulator_url}, event trackers {self.tracking_id} (PutEvents) and "
             f"{self.action_tracking_id} (PutActionInteractions)")

    def create_topics(self) -> None:
        from confluent_kafka.admin import AdminClient
        from confluent_kafka.cimpl import NewTopic

        phase("2/6", "Creating topics and the connector configuration")
        explain(
            "One topic per Personalize operation, 3 partitions each: records are keyed by session (interactions)",
            "or by id (items, users, actions), so a session's events and an entity's updates stay in order. One",
            "worker reads all five: kafka.topics go to PutEvents, `routes` send each other topic to its operation.",
            f"Records the connector cannot deliver go to the dead-letter topic {self.dlq_topic},",
            "with headers saying why and where they came from; they never block the good ones.",
        )
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        topics = [NewTopic(stream.topic, num_partitions=3, replication_factor=1) for stream in self.streams]
        futures = admin.create_topics([*topics, NewTopic(self.dlq_topic, num_partitions=1, replication_factor=1)],
                                      operation_timeout=30)
        for future in futures.values():
            future.result(timeout=60)
        self.metrics_port = free_port()
        interactions, *others = self.streams
        config = {
            "kafka": {"bootstrap_servers": self.bootstrap, "group_id": self.group, "topics": [interactions.topic]},
            "schema_registry": {"url": self.registry_url},
            # One format on all five topics: the global decode.format serves every route (routes have none).
            # The workload's "unknown schema id" records use an id nobody registers: dead-letter them
            # at once rather than after the default minute of waiting for the registry to learn it.
            "decode": {"format": self.value_format.decode_format, "unknown_schema_retry_s": 0},
            "personalize": {"tracking_id": self.tracking_id, "region": "us-east-1",
                            "endpoint_url": self.emulator_url},
            "dlq": {"topic": self.dlq_topic},
            "observability": {"metrics_port": self.metrics_port, "log_format": "text"},
            # Each with its packaged schema and mapping, the dead-letter topic above and its default rate.
            "routes": [stream.route() for stream in others],
        }
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        done(f"config written to {self.config_path}:")
        console.print(self.config_path.read_text(), style="dim")

    def check(self) -> None:
        phase("3/6", "Checking the setup: personalize-connector check")
        explain(
            "Before running, `check` probes everything the connector needs: the topics and the consumer group,",
            "the schema registry, the dead-letter topic, AWS credentials and a harmless PutEvents call that the",
            "service must refuse (it proves the endpoint, the credentials and the tracker without recording anything).",
        )
        result = subprocess.run([str(CLI), "check", "--config", str(self.config_path)],
                                env={**aws_env(), "COLUMNS": str(console.width)},
                                capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL)
        sys.stdout.write(result.stdout)
        if result.returncode != 0:
            raise DemoFailed(f"personalize-connector check failed (exit {result.returncode})")

    def produce(self) -> None:
        from connector.tools.produce import produce

        phase("4/6", f"Producing {sum(s.count for s in self.streams):,} sample records of five kinds "
                     f"in {self.value_format.label}")
        explain(
            "Realistic shop traffic: sessions of views, clicks, add-to-carts and purchases, the catalogue and the",
            "profiles they refer to, a few actions (sign-up, app install ...) and interactions with them, each",
            f"{self.value_format.written_as}.",
            f"About {self.bad_ratio:.0%} are deliberately broken (not {self.value_format.short}, truncated, no "
            "session id, reserved property, an id too long, a delete marker ...) to show dead-lettering.",
        )
        table = Table(title="sample records produced", title_justify="left")
        table.add_column("operation", no_wrap=True)
        table.add_column("topic", no_wrap=True)
        table.add_column("records", justify="right")
        table.add_column("broken on purpose")
        for stream in self.streams:
            records = stream.kind.generate(stream.count, None, 7, self.bad_ratio)
            summary = produce(records, self.bootstrap, self.registry_url, stream.topic, total=stream.count,
                              schema=stream.kind.schema, value_format=self.value_format.name)
            self.produced_count += summary.produced
            broken = ", ".join(f"{kind} {n}" for kind, n in summary.bad.items()) or "-"
            table.add_row(stream.operation, stream.topic, f"{summary.produced:,}", broken)
        console.print(table)

    def run_connector(self) -> None:
        phase("5/6", "Running the connector: personalize-connector run --exit-when-idle 5")
        explain(
            "The connector joins the consumer group with all five topics, decodes each record, maps it to its",
            "operation's entry, batches entries (by session for PutEvents and PutActionInteractions, by dataset and",
            "partition for the others; up to 10 per call), sends them, and commits offsets only after delivery or",
            "dead-lettering. It stops after 5 s with nothing to do. Progress below comes from the emulator",
            f"(entries accepted) and the connector's own Prometheus metrics (http://127.0.0.1:{self.metrics_port}"
            "/metrics).",
        )
        log_path = self.workdir / "connector.log"
        command = [str(CLI), "run", "--config", str(self.config_path), "--exit-when-idle", "5",
                   "--log-format", "text", "--log-level", "INFO"]
        started = time.monotonic()
        with log_path.open("wb") as log:
            self.connector = subprocess.Popen(command, stdout=log, stderr=log, env=aws_env(), stdin=subprocess.DEVNULL)
            self.follow_progress(self.connector)
        self.elapsed_s = time.monotonic() - started
        code = self.connector.returncode
        self.connector = None
        if code != 0:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
            raise DemoFailed(f"the connector exited with {code}; last log lines ({log_path}):\n{tail}")
        done(f"the connector drained, committed and exited 0 after {self.elapsed_s:.1f} s (log {log_path})")

    def follow_progress(self, process: subprocess.Popen[bytes]) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        total = self.produced_count
        started = time.monotonic()

        def poll() -> tuple[int, str]:
            handled, detail = self.progress()
            if handled >= total and not self.drained_s:
                self.drained_s = time.monotonic() - started
            return handled, detail

        if console.is_terminal:
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          TextColumn("{task.fields[detail]}"), console=console) as bar:
                task = bar.add_task("records handled", total=total, detail="")
                while process.poll() is None:
                    handled, detail = poll()
                    bar.update(task, completed=min(handled, total), detail=detail)
                    time.sleep(0.25)
                handled, detail = poll()
                bar.update(task, completed=min(handled, total), detail=detail)
            return
        last = 0.0
        while process.poll() is None:
            handled, detail = poll()
            if time.monotonic() - last >= 2.0:
                last = time.monotonic()
                console.print(f"  progress: {handled:,}/{total:,} records handled; {detail}")
            time.sleep(0.25)

    def progress(self) -> tuple[int, str]:
        """(records delivered or dead-lettered, a one-line detail) from the emulator and /metrics."""
        metrics = scrape(f"http://127.0.0.1:{self.metrics_port}/metrics") or self.last_metrics
        self.last_metrics = metrics  # the endpoint goes away when the connector exits
        stats = emulator_json(self.emulator_url, "/_emulator/stats")
        accepted = sum(int(v) for k, v in (stats or {}).items() if k.startswith("accepted_") and k != "accepted_calls")
        consumed = int(metrics.get("pkc_records_consumed_total", 0))
        delivered = int(metrics.get("pkc_entries_delivered_total", 0))  # every route's, PutEvents' included
        dead = int(metrics.get("pkc_dead_letters_total", 0))
        return delivered + dead, f"consumed {consumed:,}, at Personalize {accepted:,}, dead letters {dead:,}"

    def verify(self) -> int:
        from confluent_kafka import Consumer

        from connector.app import registry_client
        from connector.config import load_settings
        from connector.decode import build_decoder
        from connector.dlq import parse_error_headers

        phase("6/6", "Summary and verification")
        explain(
            "Every produced record must have either reached Personalize under its operation (an item's itemId, a",
            "user's userId, an action's actionId; an event's or action interaction's own eventId, or the id derived",
            "from topic/partition/offset) or been dead-lettered (its topic/partition/offset is named in a dead",
            "letter's pkc.source.* headers). Nothing may be missing. Each record is read back as the connector",
            f"reads it: the config's decode.format ({self.value_format.decode_format}) and the route's schema.",
        )
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"demo-verify-{uuid.uuid4().hex}",
                             "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        try:
            letters = list(read_all(consumer, self.dlq_topic))
            produced = {stream.topic: list(read_all(consumer, stream.topic)) for stream in self.streams}
        finally:
            consumer.close()
        reasons: Counter[tuple[str, str]] = Counter()  # (source topic, stage/class)
        dead_positions: set[tuple[str, int, int]] = set()
        for record in letters:
            headers = parse_error_headers(list(record.headers))
            topic = headers.get("pkc.source.topic", "")
            reasons[(topic, f"{headers.get('pkc.error.stage')}/{headers.get('pkc.error.class')}")] += 1
            dead_positions.add((topic, int(headers.get("pkc.source.partition", -1)),
                                int(headers.get("pkc.source.offset", -1))))

        settings = load_settings(self.config_path)
        registry = registry_client(settings)
        checks = []
        for stream in self.streams:
            # Read as the connector reads the stream's route: its decode.format, its destination's packaged
            # schema (the reader schema of Avro and JSON; Protobuf's fields are the registered message's).
            reader = Path(str(importlib.resources.files("avro_schemas") / stream.kind.schema))
            decode = settings.decode.model_copy(update={"reader_schema": reader})
            decoder = build_decoder(settings.model_copy(update={"decode": decode}), registry)
            stored = (str(entry.get(stream.kind.id_field))
                      for entry in emulator_lines(self.emulator_url, stream.inspect_path()))
            checks.append(check_stream(stream, produced[stream.topic], stored, dead_positions, decoder.decode))
        operations = (emulator_json(self.emulator_url, "/_emulator/stats") or {}).get("operations", {})
        self.print_summary(checks, reasons, operations)

        missing = [line for check in checks for line in check.missing]
        for check in checks:
            mark = "[red]✗[/]" if check.missing else "[green]✓[/]"
            console.print(f"  {mark} {check.stream.operation}: {check.produced:,} produced = {check.delivered:,} "
                          f"delivered + {check.dead_lettered:,} dead-lettered"
                          + (f", [red]{len(check.missing):,} missing[/]" if check.missing else ""))
        if missing:
            console.print(f"[bold red]verification FAILED: {len(missing)} record(s) are missing[/]")
            for line in missing[:20]:
                print(f"  missing: {line}")
            return 1
        total = sum(check.produced for check in checks)
        delivered = sum(check.delivered for check in checks)
        console.print(f"[bold green]verified:[/] all {total:,} records were delivered ({delivered:,}) or "
                      f"dead-lettered ({total - delivered:,}); nothing lost.")
        explain(
            "Next: `personalize-connector dlq inspect --config FILE` lists dead letters by reason, and",
            "`personalize-connector dlq replay --config FILE [--route NAME]` sends them again after a fix",
            "(docs/operations.md).",
        )
        return 0

    def print_summary(self, checks: list[StreamCheck], reasons: Counter[tuple[str, str]],
                      operations: dict[str, dict[str, int]]) -> None:
        """One row per operation, the dead letters by reason, then the run's timings."""
        table = Table(title=f"demo summary ({self.value_format.label})", title_justify="left", caption_justify="left",
                      caption="delivered (distinct ids at Personalize): what the emulator stored under the stream's "
                              "tracker or dataset; calls: accepted calls; duplicates: ids stored twice")
        table.add_column("operation", no_wrap=True)
        for column in ("records produced", "delivered", "dead letters", "calls", "entries per call", "duplicates"):
            table.add_column(column, justify="right")
        for check in checks:
            counts = operations.get(check.stream.operation, {})
            calls, entries = counts.get("accepted", 0), counts.get("accepted_entries", 0)
            table.add_row(check.stream.operation, f"{check.produced:,}", f"{check.at_personalize:,}",
                          f"{check.dead_lettered:,}", f"{calls:,}", f"{entries / calls:.2f}" if calls else "-",
                          f"{check.duplicates:,}")
        table.add_row("all five", *(f"{sum(values):,}" for values in (
            [c.produced for c in checks], [c.at_personalize for c in checks], [c.dead_lettered for c in checks],
            [operations.get(c.stream.operation, {}).get("accepted", 0) for c in checks])), "",
            f"{sum(c.duplicates for c in checks):,}", style="bold")
        console.print(table)

        operation_of = {stream.topic: stream.operation for stream in self.streams}
        order = {stream.topic: i for i, stream in enumerate(self.streams)}
        letters = Table(title="dead letters by reason (pkc.error.* headers)", title_justify="left")
        for column in ("operation", "stage/error class", "records"):
            letters.add_column(column, justify="right" if column == "records" else "left")
        for (topic, reason), n in sorted(reasons.items(), key=lambda kv: (order.get(kv[0][0], -1), -kv[1], kv[0][1])):
            letters.add_row(operation_of.get(topic, topic), reason, f"{n:,}")
        console.print(letters)

        total = sum(check.produced for check in checks)
        timings = Table(title="run", title_justify="left", show_header=False)
        timings.add_column("metric")
        timings.add_column("value", justify="right")
        timings.add_row("connector run time (incl. start-up and the 5 s idle wait)", f"{self.elapsed_s:.1f} s")
        if self.drained_s:
            timings.add_row("time until every record was handled", f"{self.drained_s:.1f} s")
            timings.add_row("throughput", f"{total / self.drained_s:,.0f} records/s")
        console.print(timings)

    def stop(self) -> None:
        phase("end", "Stopping everything")
        if self.connector is not None and self.connector.poll() is None:
            self.connector.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.connector.wait(30)
            if self.connector.poll() is None:
                self.connector.kill()
        if self.emulator is not None:
            if self.emulator.poll() is None:
                self.emulator.send_signal(signal.SIGTERM)
                try:
                    self.emulator.wait(15)
                except subprocess.TimeoutExpired:
                    self.emulator.kill()
                    self.emulator.wait()
            if self.emulator.stdout is not None:
                self.emulator.stdout.close()
            done("emulator stopped")
        if self.stack_was_running:
            done("the local stack was running before the demo: left running (scripts/local-stack down stops it)")
            return
        if self.stack_started:
            down = self.local_stack("down", 180)
            if down.returncode != 0:
                print(f"  scripts/local-stack down failed: {down.stderr.strip()}", file=sys.stderr)
            else:
                done(f"local stack on :{self.kafka_port}/:{self.registry_port} stopped; files in {self.workdir}")


# -------------------------------------------------------------------------------------- utilities


def phase(number: str, title: str) -> None:
    console.print()
    console.rule(f"[bold]{number}  {title}", align="left")


def explain(*lines: str) -> None:
    """One paragraph, indented, wrapped to the console's width."""
    from rich.padding import Padding
    from rich.text import Text

    console.print(Padding(Text(" ".join(lines), style="cyan"), (0, 0, 0, 2), expand=False))


def done(text: str) -> None:
    console.print(f"  [green]✓[/] {text}")


def aws_env() -> dict[str, str]:
    """The emulator checks that calls are signed, not by whom: dummy credentials unless some are set."""
    env = dict(os.environ)
    if not (env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY")):
        env.update(AWS_ACCESS_KEY_ID="demo", AWS_SECRET_ACCESS_KEY="demo")
        env.pop("AWS_SESSION_TOKEN", None)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def read_line(process: subprocess.Popen[bytes], timeout_s: float) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout_s
    line = b""
    while not line.endswith(b"\n") and time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(process.stdout.fileno(), 1) if ready else b""
        if not chunk:
            break
        line += chunk
    return line.decode(errors="replace")


def scrape(url: str) -> dict[str, float]:
    """Prometheus samples summed over their labels, by sample name ({} when not reachable yet)."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return {}
    totals: defaultdict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] += sample.value
    return dict(totals)


def emulator_json(base: str, path: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(base + path, timeout=5) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result
    except OSError:
        return None


def emulator_lines(base: str, path: str) -> Iterator[dict[str, Any]]:
    with urllib.request.urlopen(base + path, timeout=60) as response:
        for line in response:
            if line.strip():
                yield json.loads(line)


def read_all(consumer: Any, topic: str, timeout_s: float = 120) -> Iterator[Any]:
    """Every record of `topic` from the start to its current end, as SourceRecords."""
    from confluent_kafka import TopicPartition as KafkaTopicPartition

    from connector.records import SourceRecord

    partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    ends = {p: consumer.get_watermark_offsets(KafkaTopicPartition(topic, p), timeout=10)[1] for p in partitions}
    consumer.assign([KafkaTopicPartition(topic, p, 0) for p in partitions])
    position = dict.fromkeys(partitions, 0)
    deadline = time.monotonic() + timeout_s
    while any(position[p] < ends[p] for p in partitions):
        if time.monotonic() > deadline:
            raise DemoFailed(f"reading {topic} back timed out at {position} of {ends}")
        for msg in consumer.consume(5000, 0.5):
            if msg.error() is not None or msg.offset() >= ends[msg.partition()]:
                continue
            position[msg.partition()] = msg.offset() + 1
            yield SourceRecord(topic, msg.partition(), msg.offset(), msg.key(), msg.value(),
                               tuple((k, v or b"") for k, v in msg.headers() or []))
    consumer.unassign()


def chosen_format(option: str | None) -> DemoFormat:
    """--format, else DEMO_FORMAT (what `make demo DEMO_FORMAT=protobuf` sets: make passes no arguments)."""
    try:
        return demo_format(option or os.environ.get("DEMO_FORMAT") or DEFAULT)
    except ValueError as exc:
        raise DemoFailed(f"DEMO_FORMAT: {exc}") from None


def main() -> int:
    def interrupted(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    parser = argparse.ArgumentParser(prog="scripts/demo", description="make demo: all five operations end to end")
    parser.add_argument("--format", choices=list(FORMATS), default=None,
                        help=f"the records' value format (default: $DEMO_FORMAT, else {DEFAULT})")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)
    try:
        demo = Demo(value_format=chosen_format(args.format))
    except DemoFailed as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    from connector.tools.replay import quiet_registry_imports

    quiet_registry_imports()
    console.rule("[bold]personalize-connector demo")
    explain(
        "Kafka -> personalize-connector -> Amazon Personalize (emulated), all on this machine, then all stopped.",
        f"All five operations: {demo.events:,} interaction events plus items, users, actions and action",
        f"interactions in {demo.value_format.label}, ~{demo.bad_ratio:.0%} deliberately broken.",
        f"Working files: {demo.workdir}",
    )
    code = 1
    try:
        demo.start_stack()
        demo.create_topics()
        demo.check()
        demo.produce()
        demo.run_connector()
        code = demo.verify()
    except DemoFailed as exc:
        console.print(f"[bold red]demo failed:[/] {exc}")
        code = 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; cleaning up[/]")
        code = 130
    finally:
        with contextlib.suppress(KeyboardInterrupt):
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the clean-up finish
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            demo.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
