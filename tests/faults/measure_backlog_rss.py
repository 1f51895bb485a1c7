"""Memory under a large backlog: is the connector's RSS flat while it works through a million records?

Not a pytest test (no `test_` prefix): run it by hand against a running local stack.

    KAFKA_BOOTSTRAP=localhost:49192 SCHEMA_REGISTRY_URL=http://localhost:48181/apis/ccompat/v7 \\
        .venv/bin/python tests/faults/measure_backlog_rss.py [--events 1000000] [--partitions 3]

It produces the backlog first (generate(N, ...), ~15 s for a million), then runs
`personalize-connector run --exit-when-idle` in a subprocess against a fresh emulator, samples the
subprocess's VmRSS and VmHWM from /proc/<pid>/status every 0.5 s, and prints the peak and the RSS
at 10 %, 50 % and 90 % of the events delivered.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

from fixtures.emulator import launch_emulator  # noqa: E402
from fixtures.faults import create_topic  # noqa: E402
from fixtures.pipeline import connector_config, write_config  # noqa: E402

from connector.tools.produce import produce  # noqa: E402
from connector.tools.workload import generate  # noqa: E402


@dataclass(frozen=True)
class Sample:
    elapsed_s: float
    rss_kib: int
    hwm_kib: int
    delivered: int


def proc_memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of `pid` in KiB."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between samples")
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "localhost:9092")
    registry = os.environ.get("SCHEMA_REGISTRY_URL", "http://localhost:8081/apis/ccompat/v7")

    topic = create_topic(bootstrap, args.partitions, "rss-backlog")
    dlq = create_topic(bootstrap, 1, "rss-backlog-dlq")
    started = time.monotonic()
    summary = produce(generate(args.events, None, args.seed), bootstrap, registry, topic, progress=False)
    print(f"produced {summary.produced} events to {topic} in {time.monotonic() - started:.1f}s", flush=True)

    emulator = launch_emulator()
    tracking_id = f"rss-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        config = connector_config(bootstrap=bootstrap, registry_url=registry, emulator_url=emulator.url,
                                  topics=[topic], group_id=f"{topic}-group", tracking_id=tracking_id, dlq_topic=dlq)
        path = write_config(Path(tmp), config)
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
               "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
        env.pop("AWS_PROFILE", None)
        exe = Path(sys.executable).with_name("personalize-connector")
        log_path = Path(tmp) / "connector.log"
        samples: list[Sample] = []
        with open(log_path, "w") as log:
            proc = subprocess.Popen([str(exe), "run", "--config", str(path), "--exit-when-idle", "5",
                                     "--log-format", "text", "--log-level", "WARNING"],
                                    stdout=log, stderr=subprocess.STDOUT, env=env)
            t0 = time.monotonic()
            try:
                while proc.poll() is None:
                    try:
                        rss, hwm = proc_memory(proc.pid)
                    except (OSError, KeyError):  # exiting: /proc entry gone or already a zombie
                        break
                    delivered = int(emulator.stats()["accepted_events"])
                    samples.append(Sample(time.monotonic() - t0, rss, hwm, delivered))
                    time.sleep(args.interval)
                code = proc.wait(timeout=120)
            finally:
                if proc.poll() is None:
                    proc.kill()
        elapsed = time.monotonic() - t0
        delivered = int(emulator.stats()["accepted_events"])
        emulator.stop()
        if code != 0:
            print(f"connector exited {code}; log:\n{log_path.read_text()[-3000:]}")
            return 1

    print(f"connector: delivered {delivered}/{args.events} events in {elapsed:.1f}s "
          f"({delivered / elapsed:.0f} events/s), {len(samples)} samples every {args.interval}s")
    print(f"peak RSS (VmHWM): {mib(max(s.hwm_kib for s in samples))}; "
          f"max sampled VmRSS: {mib(max(s.rss_kib for s in samples))}")
    for share in (0.1, 0.5, 0.9):
        at = next((s for s in samples if s.delivered >= share * args.events), None)
        if at is not None:
            print(f"  at {share:.0%} delivered ({at.delivered} events, t={at.elapsed_s:.1f}s): VmRSS {mib(at.rss_kib)}")
    return 0 if delivered == args.events else 1


if __name__ == "__main__":
    sys.exit(main())
