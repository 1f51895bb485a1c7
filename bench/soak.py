"""`make soak`: the real `personalize-connector run` for SOAK_MINUTES (default 10) under steady live
traffic near the quota, with 1 % bad records, periodic throttling bursts and one broker restart.

    SOAK_MINUTES=2 python -m bench.soak

It starts its own Kafka + registry (on ports of its own, so it never restarts a broker anyone else
uses) and a disk-backed emulator with the quota (SOAK_QUOTA_RPS, default 200 req/s), and produces
sessions of ~10 events at a steady rate chosen so that the ideal number of calls is SOAK_LOAD (80 %)
of the quota. Every second it samples the worker's RSS (/proc/PID/status), open file descriptors
(/proc/PID/fd) and threads; at the end it reads every accepted event back from the emulator and
counts the dead-letter topic. The verdicts (bench/soak_analysis.py) and a table over time are
written to docs/benchmarks.md between the soak's markers (bench/soak_report.py); the exit code is 1
if a resource grew or a record was lost, and the page is then still written, so the failure shows.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from bench.procs import (
    Cleanup,
    Emulator,
    Running,
    aws_env,
    bin_path,
    pin_pid,
    pinned,
    restart_broker,
    start_emulator,
    start_stack,
    tail,
)
from bench.settings import REPO_ROOT, BenchSettings, machine_facts
from bench.soak_analysis import LiveCallCounter, account, flatness
from bench.soak_report import write_section
from bench.stages import free_port, log, metrics_value, percentile
from bench.workload import create_topic, ideal_backlog_calls
from connector.config.models import BatchingConfig
from connector.dlq import parse_error_headers
from connector.tools.produce import produce
from connector.tools.workload import SampleRecord, generate


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


@dataclass(frozen=True)
class SoakSettings:
    minutes: float = 10.0
    quota_rps: float = 200.0  # the emulator's PutEvents quota and the connector's max_requests_per_second
    # Offered traffic, as the ideal calls' share of the quota. Not 90 %: a 5 s storm of throttling
    # every minute takes 5-7 s of the minute's capacity from any client that backs off when told
    # it is over quota (8-12 %), so at 90 % no such client keeps up and the backlog, not a leak,
    # makes the memory grow. 80 % leaves the headroom a production deployment would have.
    load: float = 0.8
    bad_ratio: float = 0.01
    session_length: int = 10  # mean events per session
    burst_every_s: float = 60.0  # a throttling burst every minute, half a period off the minute ...
    burst_s: float = 5.0  # ... this long ...
    burst_throttle_ratio: float = 0.5  # ... throttling this share of the calls
    broker_down_s: float = 5.0  # the broker restart in the middle of the run
    partitions: int = 4
    seed: int = 17
    drain_timeout_s: float = 600.0  # a starved worker can be minutes behind
    sample_interval_s: float = 1.0
    kafka_port: int = 39392  # not make bench's ports: a bench may run beside the soak
    controller_port: int = 39393
    registry_port: int = 38381
    work_dir: Path = field(default_factory=lambda: Path(os.environ.get("TMPDIR", "/tmp")) / "pkc-soak")
    docs: Path = REPO_ROOT / "docs" / "benchmarks.md"

    @classmethod
    def from_env(cls) -> SoakSettings:
        d = cls()
        return cls(
            minutes=_env_float("SOAK_MINUTES", d.minutes),
            quota_rps=_env_float("SOAK_QUOTA_RPS", d.quota_rps),
            load=_env_float("SOAK_LOAD", d.load),
            bad_ratio=_env_float("SOAK_BAD_RATIO", d.bad_ratio),
            broker_down_s=_env_float("SOAK_BROKER_DOWN_S", d.broker_down_s),
            kafka_port=int(_env_float("SOAK_KAFKA_PORT", d.kafka_port)),
            controller_port=int(_env_float("SOAK_KAFKA_CONTROLLER_PORT", d.controller_port)),
            registry_port=int(_env_float("SOAK_REGISTRY_PORT", d.registry_port)),
            work_dir=Path(os.environ["SOAK_WORK_DIR"]) if os.environ.get("SOAK_WORK_DIR") else d.work_dir,
            docs=Path(os.environ["SOAK_DOCS"]) if os.environ.get("SOAK_DOCS") else d.docs,
        )

    @property
    def duration_s(self) -> float:
        return self.minutes * 60

    def bench(self) -> BenchSettings:
        """The bench's settings with the soak's ports and state dir (for the procs helpers)."""
        return dataclasses.replace(BenchSettings.from_env(), kafka_port=self.kafka_port,
                                   controller_port=self.controller_port, registry_port=self.registry_port,
                                   kafka_bootstrap=None, registry_url=None, work_dir=self.work_dir)

    def fault_plan(self) -> list[tuple[float, str]]:
        """(seconds into the run, what): bursts every `burst_every_s`, none within 15 s of the restart."""
        restart = self.duration_s / 2
        plan = [(restart, "broker restart")]
        t = self.burst_every_s / 2
        while t + self.burst_s < self.duration_s:
            if abs(t - restart) > 15 and abs(t + self.burst_s - restart) > 15:
                plan.append((t, "throttling burst"))
            t += self.burst_every_s
        return sorted(plan)


# ------------------------------------------------------------------------------ the live traffic


@dataclass
class SteadyStream:
    """Paces `records` at `events_per_s`, stamping sentAt with the time each is produced (the same
    millisecond as its Kafka CreateTime timestamp, so receivedAt - sentAt is Kafka -> Personalize),
    and counts what the worker should do with it: the ideal calls and the good event ids."""

    records: Iterator[SampleRecord]
    events_per_s: float
    ideal: LiveCallCounter
    expected_ids: set[str] = field(default_factory=set)
    bad: int = 0
    started: float = 0.0
    produced_per_s: dict[int, int] = field(default_factory=dict)

    def __iter__(self) -> Iterator[SampleRecord]:
        self.started = time.time()
        for i, record in enumerate(self.records):
            ahead = self.started + i / self.events_per_s - time.time()
            if ahead > 0.002:
                time.sleep(ahead)
            now = time.time()
            second = int(now - self.started)
            self.produced_per_s[second] = self.produced_per_s.get(second, 0) + 1
            value = None if record.value is None else {**record.value, "sentAt": int(now * 1000)}
            if record.bad_kind is not None:
                self.bad += 1
            elif value is not None:
                # The generator leaves eventId out of some events (the connector then derives one);
                # every good soak event names its own, so the delivered ones can be checked by id.
                value["eventId"] = value.get("eventId") or f"soak-{i}"
                self.ideal.add(record.session_id, now)
                self.expected_ids.add(value["eventId"])
            yield SampleRecord(record.key, value, record.raw, record.bad_kind, record.session_id, record.event_id)


def events_per_second(s: SoakSettings) -> float:
    """The steady rate whose ideal calls are `load` x the quota, from a sample of the same sessions."""
    sample = list(generate(20_000, 20_000 // s.session_length, s.seed))
    calls_per_event = ideal_backlog_calls(sample) / len(sample)
    return s.load * s.quota_rps / calls_per_event


# ------------------------------------------------------------------------------ sampling


@dataclass
class ProcessCounts:
    """Open fds and threads of the worker, sampled beside `Running`'s RSS samples."""

    pid: int | None = None
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (time, fds, threads)

    def sample(self, _rss_sample: Any) -> None:
        if self.pid is None:
            return
        try:
            fds = len(os.listdir(f"/proc/{self.pid}/fd"))
            threads = next(int(line.split()[1]) for line in Path(f"/proc/{self.pid}/status").read_text().splitlines()
                           if line.startswith("Threads:"))
        except (OSError, StopIteration):
            return
        self.samples.append((time.time(), fds, threads))


def poll(every_s: float, stop: threading.Event, probe: Callable[[], Any], into: list[Any]) -> threading.Thread:
    def loop() -> None:
        while not stop.wait(every_s):
            try:
                into.append((time.time(), probe()))
            except OSError:
                continue

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def dead_letter_count(bootstrap: str, topic: str) -> int:
    """Records on the (one-partition) dead-letter topic, from its watermarks."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"soak-probe-{uuid.uuid4().hex[:6]}"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        return int(high - low)
    finally:
        consumer.close()


def dead_lettered_sources(bootstrap: str, topic: str) -> list[tuple[int, int]]:
    """(source partition, source offset) of every dead letter, from its pkc.source.* headers: a
    record dead-lettered twice (redelivered after the broker restart) appears twice."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    high = dead_letter_count(bootstrap, topic)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"soak-probe-{uuid.uuid4().hex[:6]}",
                         "enable.auto.commit": False})
    out: list[tuple[int, int]] = []
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 120
        while len(out) < high and time.monotonic() < deadline:
            for msg in consumer.consume(1000, timeout=1.0):
                if msg.error() is None:
                    raw = msg.headers() or []
                    pairs = raw.items() if isinstance(raw, dict) else raw
                    h = parse_error_headers([(k, v) for k, v in pairs if isinstance(v, bytes)])
                    out.append((int(h["pkc.source.partition"]), int(h["pkc.source.offset"])))
    finally:
        consumer.close()
    return out


# ------------------------------------------------------------------------------ the run


def connector_config(s: SoakSettings, bootstrap: str, registry_url: str, emulator: Emulator, topic: str, dlq: str,
                     tracking_id: str, metrics_port: int) -> Path:
    """Default settings apart from where things are, the quota, the dead-letter topic, and one more:
    an unknown schema id is dead-lettered at once, not after the default 60 s wait, which would hold
    a partition for a minute at the first such record and make the first minutes a backlog drain."""
    config = {
        "kafka": {"bootstrap_servers": bootstrap, "group_id": f"{topic}-group", "topics": [topic]},
        "schema_registry": {"url": registry_url},
        "decode": {"unknown_schema_retry_s": 0},
        "personalize": {"tracking_id": tracking_id, "region": "us-east-1", "endpoint_url": emulator.url,
                        "max_requests_per_second": s.quota_rps},
        "dlq": {"topic": dlq},
        "observability": {"metrics_port": metrics_port, "log_format": "text"},
    }
    path = s.work_dir / f"{tracking_id}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def inject_faults(s: SoakSettings, bench: BenchSettings, emulator: Emulator, t0: float, stop: threading.Event,
                  timeline: list[tuple[float, str]]) -> threading.Thread:
    def run() -> None:
        for at, what in s.fault_plan():
            if stop.wait(max(0.0, t0 + at - time.time())):
                return
            timeline.append((time.time() - t0, f"{what} starts"))
            if what == "broker restart":
                kafka = restart_broker(bench, s.broker_down_s)
                if bench.pin:
                    pin_pid(kafka, bench.service_core)
            else:
                emulator.set_faults(throttle_ratio=s.burst_throttle_ratio)
                stop.wait(s.burst_s)
                emulator.set_faults(throttle_ratio=0.0)
            timeline.append((time.time() - t0, f"{what} ends"))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def soak(s: SoakSettings, cleanup: Cleanup) -> dict[str, Any]:
    bench = s.bench()
    s.work_dir.mkdir(parents=True, exist_ok=True)
    if bench.pin:
        os.sched_setaffinity(0, {bench.service_core})  # the runner (producer, sampling) on the service core
    service_core = bench.service_core if bench.pin else None
    try:
        stack = start_stack(bench, cleanup)
    except RuntimeError as exc:
        # Its ports sit in the ephemeral range: another process's outgoing connection can hold one
        # for a moment (seen once: the SASL port). A second try starts from a clean state dir.
        log(f"soak: the stack did not start ({str(exc).splitlines()[-1]}); trying once more")
        stack = start_stack(bench, cleanup)
    for pid in stack.pids if bench.pin else ():
        pin_pid(pid, bench.service_core)
    emulator = start_emulator(bench, cleanup, "soak", "--max-requests-per-second", str(s.quota_rps),
                              "--db", str(s.work_dir / "soak-emulator.sqlite"), core=service_core)
    run_id = time.strftime("%H%M%S") + "-" + uuid.uuid4().hex[:4]
    topic, dlq, tracking = f"soak-{run_id}", f"soak-{run_id}-dlq", f"soak-{run_id}"
    create_topic(stack.bootstrap, topic, s.partitions)
    create_topic(stack.bootstrap, dlq, 1)
    port = free_port()
    config = connector_config(s, stack.bootstrap, stack.registry_url, emulator, topic, dlq, tracking, port)

    counts = ProcessCounts()
    cmd = [bin_path("personalize-connector"), "run", "--config", str(config), "--log-format", "text"]
    running = Running(pinned(cmd, bench.connector_core if bench.pin else None), config.with_suffix(".log"),
                      env=aws_env(), interval_s=s.sample_interval_s, on_sample=counts.sample)
    counts.pid = running.pid
    cleanup.add(f"connector (pid {running.pid})", running.terminate)
    deadline = time.monotonic() + 120
    while (metrics_value(port, "pkc_partitions_assigned") or 0) < s.partitions:
        if time.monotonic() > deadline or not running.alive():
            raise RuntimeError(f"the soak's connector never got its partitions; log:\n{tail(running.log_path)}")
        time.sleep(0.2)

    rate = events_per_second(s)
    n_events = round(rate * s.duration_s)
    linger_s = BatchingConfig().linger_ms / 1000
    stream = SteadyStream(generate(n_events, max(1, n_events // s.session_length), s.seed, s.bad_ratio),
                          rate, LiveCallCounter(linger_s))
    log(f"soak: {s.minutes:g} min at {rate:,.0f} events/s ({n_events:,} events, {100 * s.bad_ratio:g} % bad), "
        f"quota {s.quota_rps:g} req/s; worker pid {running.pid}, log {running.log_path}")
    load_at_start = os.getloadavg()
    stop = threading.Event()
    stats: list[tuple[float, dict[str, Any]]] = []
    timeline: list[tuple[float, str]] = []
    t0 = time.time()
    threads = [poll(5.0, stop, emulator.stats, stats), inject_faults(s, bench, emulator, t0, stop, timeline)]
    try:
        # linger.ms 1: a live producer sends about as soon as the event happens. log_level 2: not
        # a line per refused reconnect while the broker is down on purpose (failed deliveries raise).
        summary = produce(stream, stack.bootstrap, stack.registry_url, topic, progress=False,
                          extra_config={"linger.ms": 1, "log_level": 2}, total=n_events)
        produced_s = time.time() - t0
        log(f"soak: produced {summary.produced:,} records in {produced_s:.0f}s; waiting for the worker to drain")
        load_at_end = os.getloadavg()
        drained_at = drain(s, stack.bootstrap, topic, f"{topic}-group")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=s.broker_down_s + 120)
    running.terminate()
    m = running.finish(timeout_s=120)
    if m.returncode != 0:
        raise RuntimeError(f"the soak's connector exited with {m.returncode}; log {m.log_path}:\n{tail(m.log_path)}")

    received = emulator.received(tracking)
    final = emulator.stats()
    latencies = sorted(max(0.0, r[0] - r[2]) for r in received)
    books = account(stream.expected_ids, [r[3] for r in received], summary.produced, stream.bad,
                    dead_lettered_sources(stack.bootstrap, dlq))
    rss = [(x.t - t0, x.rss_kb / 1024) for x in m.samples]
    fds = [(t - t0, float(n)) for t, n, _ in counts.samples]
    nthreads = [(t - t0, float(n)) for t, _, n in counts.samples]
    resources = [flatness("RSS", "MB", rss, s.duration_s), flatness("open fds", "", fds, s.duration_s),
                 flatness("threads", "", nthreads, s.duration_s)]
    accepted_calls = int(final["accepted_calls"])
    return {
        "settings": {**dataclasses.asdict(s), "work_dir": str(s.work_dir), "docs": str(s.docs)},
        "machine": machine_facts(),
        "command": "make soak" + (f" SOAK_MINUTES={s.minutes:g}" if s.minutes != SoakSettings.minutes else ""),
        "events_per_s": rate,
        "produced_s": produced_s,
        "drain_s": drained_at - t0 - produced_s if drained_at else None,
        "load_at_start": [round(x, 2) for x in load_at_start],
        "load_at_end": [round(x, 2) for x in load_at_end],
        "worker_cpu_share": m.cpu_between(t0, t0 + produced_s) / max(1e-6, produced_s),
        "resources": [dataclasses.asdict(r) | {"growth": r.growth, "flat": r.flat} for r in resources],
        "accounting": dataclasses.asdict(books) | {"missing": books.missing, "balanced": books.balanced},
        "ideal_calls": stream.ideal.calls,
        "accepted_calls": accepted_calls,
        "throttled_calls": int(final["throttled_calls"]),
        "calls_per_event": accepted_calls / max(1, books.delivered),
        "ideal_calls_per_event": stream.ideal.calls / max(1, stream.ideal.events),
        "latency_p50_ms": 1000 * percentile(latencies, 50),
        "latency_p99_ms": 1000 * percentile(latencies, 99),
        "latency_max_ms": 1000 * latencies[-1] if latencies else float("nan"),
        "timeline": timeline,
        "per_minute": per_minute(s, t0, rss, counts.samples, stats, stream.produced_per_s),
    }


def drain(s: SoakSettings, bootstrap: str, topic: str, group: str) -> float | None:
    """Wait until the worker's group has committed every partition to its end (each record then
    delivered or dead-lettered: the worker commits only after that), then a few quiet seconds more
    (a late duplicate would still be counted); the time everything was in, or None.

    Not the emulator's accepted-event count: redeliveries after the broker restart inflate it, so it
    reaches the number of good events before every one of them is in."""
    deadline = time.monotonic() + s.drain_timeout_s
    while time.monotonic() < deadline:
        if uncommitted(bootstrap, topic, group, s.partitions) == 0:
            done = time.time()
            time.sleep(3)
            return done
        time.sleep(2)
    log("soak: WARNING: the worker did not drain within the timeout")
    return None


def uncommitted(bootstrap: str, topic: str, group: str, partitions: int) -> int:
    """Records of `topic` past the group's committed offsets (its end offsets count when none is)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        committed = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        behind = 0
        for tp in committed:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
            behind += high - (tp.offset if tp.offset >= 0 else low)
        return int(behind)
    finally:
        consumer.close()


def per_minute(s: SoakSettings, t0: float, rss: list[tuple[float, float]], counts: list[tuple[float, int, int]],
               stats: list[tuple[float, dict[str, Any]]], produced_per_s: dict[int, int]) -> list[dict[str, Any]]:
    """One row per minute of the run: peak RSS, fds, threads; events produced and accepted; throttled calls."""

    def at(t: float, key: str) -> int:
        return max((int(st[key]) for ts, st in stats if ts - t0 <= t), default=0)

    rows = []
    minutes = max(1, round(s.duration_s / 60))
    for k in range(minutes):
        lo, hi = 60.0 * k, 60.0 * (k + 1)
        rows.append({
            "minute": k + 1,
            "rss_mb": max((v for t, v in rss if lo <= t < hi), default=float("nan")),
            "fds": max((n for t, n, _ in counts if lo <= t - t0 < hi), default=0),
            "threads": max((n for t, _, n in counts if lo <= t - t0 < hi), default=0),
            "produced": sum(n for sec, n in produced_per_s.items() if lo <= sec < hi),
            "accepted_events": at(hi, "accepted_events") - at(lo, "accepted_events"),
            "throttled_calls": at(hi, "throttled_calls") - at(lo, "throttled_calls"),
        })
    return rows


def passed(result: dict[str, Any]) -> bool:
    return all(r["flat"] for r in result["resources"]) and bool(result["accounting"]["balanced"])


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally block, which stops everything


def main() -> int:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _on_signal)
    s = SoakSettings.from_env()
    cleanup = Cleanup()
    try:
        result = soak(s, cleanup)
    finally:
        cleanup.run()
    (s.work_dir / "soak.json").write_text(json.dumps(result, indent=1, default=str))
    write_section(result, s.docs)
    ok = passed(result)
    log(f"soak: {'PASS' if ok else 'FAIL'}; wrote {s.docs} (raw figures in {s.work_dir / 'soak.json'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
