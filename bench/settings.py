"""Benchmark parameters (each overridable by a BENCH_* environment variable) and machine facts."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw.replace("_", "")) if raw else default


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


def _names(name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = os.environ.get(name)
    return tuple(x.strip() for x in raw.split(",") if x.strip()) if raw else default


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class BenchSettings:
    """Everything that decides what is measured; printed with the results and written on the page."""

    seed: int = 7
    events: int = 100_000  # the default workload (backlog), produced once
    partitions: int = 4
    repeats: int = 3  # of the side-by-side throughput comparison
    baseline_events: int = 3_000  # the baseline drains this prefix of the same topic (it is ~40x slower)
    live_events: int = 20_000  # live replay: this many events ...
    live_seconds: float = 25.0  # ... replayed in about this long (sentAt gaps compressed)
    lingers_ms: tuple[int, ...] = (0, 250, 1000, 5000)
    quota_rps: float = 1000.0
    quota_latency_ms: float = 50.0
    quota_in_flight: int | None = None  # None: the connector's default (auto); BENCH_QUOTA_IN_FLIGHT=64
    rss_events: int = 1_000_000
    skip_rss: bool = False
    pin: bool = True  # connector on core 0, emulator (+ broker, registry, this runner) on core 1
    connector_core: int = 0
    service_core: int = 1
    idle_exit_s: float = 3.0
    kafka_port: int = 39292
    controller_port: int = 39293
    registry_port: int = 38281
    # Reuse a running stack instead of starting one (never stopped by the runner).
    kafka_bootstrap: str | None = None
    registry_url: str | None = None
    work_dir: Path = field(default_factory=lambda: Path(os.environ.get("TMPDIR", "/tmp")) / "pkc-bench")
    docs: Path = REPO_ROOT / "docs" / "benchmarks.md"
    stages: tuple[str, ...] = ("throughput", "parallel_baseline", "linger", "quota", "group_quota", "profile", "rss",
                               "decode")
    # The connector's personalize.http_client in the stages that run one client: lean is the default;
    # BENCH_HTTP_CLIENT=boto3 the SDK.
    http_client: str = "lean"
    # The clients the throughput and parallel_baseline stages measure side by side (BENCH_HTTP_CLIENTS).
    http_clients: tuple[str, ...] = ("boto3", "lean")
    # parallel_baseline: this backlog (sessions of 10) drained by one worker and by N one-event senders.
    parallel_events: int = 20_000
    parallel_senders: int = 4
    parallel_repeats: int = 1  # the senders take ~30 s a repetition; BENCH_PARALLEL_REPEATS for more
    # decode: best of this many runs of this many in-memory records per format.
    decode_records: int = 20_000
    decode_repeats: int = 3

    @classmethod
    def from_env(cls) -> BenchSettings:
        d = cls()
        return cls(
            seed=_int("BENCH_SEED", d.seed),
            events=_int("BENCH_EVENTS", d.events),
            partitions=_int("BENCH_PARTITIONS", d.partitions),
            repeats=max(1, _int("BENCH_REPEATS", d.repeats)),
            baseline_events=_int("BENCH_BASELINE_EVENTS", d.baseline_events),
            live_events=_int("BENCH_LIVE_EVENTS", d.live_events),
            live_seconds=_float("BENCH_LIVE_SECONDS", d.live_seconds),
            rss_events=_int("BENCH_RSS_EVENTS", d.rss_events),
            quota_in_flight=_int("BENCH_QUOTA_IN_FLIGHT", 0) or d.quota_in_flight,
            skip_rss=_flag("BENCH_SKIP_RSS"),
            pin=not _flag("BENCH_NO_PIN") and shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2,
            kafka_port=_int("BENCH_KAFKA_PORT", d.kafka_port),
            controller_port=_int("BENCH_KAFKA_CONTROLLER_PORT", d.controller_port),
            registry_port=_int("BENCH_REGISTRY_PORT", d.registry_port),
            kafka_bootstrap=os.environ.get("BENCH_KAFKA_BOOTSTRAP") or None,
            registry_url=os.environ.get("BENCH_SCHEMA_REGISTRY_URL") or None,
            work_dir=Path(os.environ["BENCH_WORK_DIR"]) if os.environ.get("BENCH_WORK_DIR") else d.work_dir,
            docs=Path(os.environ["BENCH_DOCS"]) if os.environ.get("BENCH_DOCS") else d.docs,
            stages=_names("BENCH_STAGES", d.stages),
            http_client=os.environ.get("BENCH_HTTP_CLIENT", d.http_client),
            http_clients=_names("BENCH_HTTP_CLIENTS", d.http_clients),
            parallel_events=_int("BENCH_PARALLEL_EVENTS", d.parallel_events),
            parallel_senders=max(1, _int("BENCH_PARALLEL_SENDERS", d.parallel_senders)),
            parallel_repeats=max(1, _int("BENCH_PARALLEL_REPEATS", d.parallel_repeats)),
            decode_records=_int("BENCH_DECODE_RECORDS", d.decode_records),
            decode_repeats=max(1, _int("BENCH_DECODE_REPEATS", d.decode_repeats)),
        )

    def wants(self, stage: str) -> bool:
        if stage == "rss" and self.skip_rss:
            return False
        return stage in self.stages

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["work_dir"] = str(self.work_dir)
        out["docs"] = str(self.docs)
        return out


def default_http_client() -> str:
    """The `personalize.http_client` a user gets without setting it, read from the config model."""
    from connector.config.models import PersonalizeConfig

    return str(PersonalizeConfig.model_fields["http_client"].default)


def machine_facts() -> dict[str, Any]:
    """What the page states about the machine the figures come from."""
    import confluent_kafka

    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    import boto3
    import botocore
    import fastavro

    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_model": cpu_model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "python_impl": platform.python_implementation(),
        "confluent_kafka": _version(confluent_kafka.version()),
        "librdkafka": _version(confluent_kafka.libversion()),
        "boto3": boto3.__version__,
        "botocore": botocore.__version__,
        "fastavro": fastavro.__version__,
        "loadavg_at_start": [round(x, 2) for x in load],
        "argv": " ".join(sys.argv),
    }


def _version(v: Any) -> str:
    """confluent_kafka.version() / libversion() give (str, int); older releases a bare str."""
    return str(v[0]) if isinstance(v, tuple) else str(v)


def command_line() -> str:
    """How this run was started, with the BENCH_* overrides that shaped it."""
    overrides = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items())
                         if k.startswith("BENCH_") and k != "BENCH_COMMAND")
    return f"{overrides} {os.environ.get('BENCH_COMMAND', 'make bench')}".strip()
