"""Measure the emulator's sustained PutEvents throughput and CPU cost per call (not a test).

Starts `personalize-connector emulator` (pinned to one CPU when there are several), then drives it
with 10-event PutEvents calls from a separate load-generator process: raw keep-alive HTTP/1.1
over many connections (cheap per call, so the emulator is what gets measured), or real boto3
clients in threads with `--client boto3`. Reports calls/s, events/s and the emulator's CPU
seconds per call (utime+stime from /proc).

    .venv/bin/python tests/emulator/measure_throughput.py --seconds 10 --connections 32
    .venv/bin/python tests/emulator/measure_throughput.py --client boto3 --threads 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / ".venv" / "bin" / "personalize-connector"
TRACKING_ID = "11111111-2222-3333-4444-555555555555"


def sample_events(n: int = 10) -> list[dict[str, Any]]:
    return [
        {
            "eventId": f"evt-{i:06d}",
            "eventType": "click",
            "eventValue": 1.5,
            "itemId": f"item-{i * 7919 % 100000}",
            "properties": json.dumps({"numberOfRatings": str(i), "device": "ios"}),
            "sentAt": 1717171717.123 + i,
            "impression": [f"item-{j}" for j in range(5)],
        }
        for i in range(n)
    ]


def raw_request(host: str, port: int) -> bytes:
    body = json.dumps(
        {
            "trackingId": TRACKING_ID,
            "sessionId": "session-1",
            "userId": "user-1",
            "eventList": sample_events(),
        }
    ).encode()
    head = (
        f"POST /events HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        "Authorization: AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/personalize/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=0\r\nX-Amz-Date: 20240101T000000Z\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _raw_connection(host: str, port: int, request: bytes, deadline: float, counts: dict[str, int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.monotonic() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            counts["ok" if status == 200 else "errors"] += 1
    finally:
        writer.close()


def raw_load(host: str, port: int, connections: int, seconds: float, out: Any) -> None:
    async def main() -> dict[str, int]:
        counts = {"ok": 0, "errors": 0}
        deadline = time.monotonic() + seconds
        request = raw_request(host, port)
        await asyncio.gather(*(_raw_connection(host, port, request, deadline, counts) for _ in range(connections)))
        return counts

    out.put(asyncio.run(main()))


def boto3_load(url: str, threads: int, seconds: float, out: Any) -> None:
    import boto3
    from botocore.config import Config

    counts = {"ok": 0, "errors": 0}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    events = sample_events()

    def worker() -> None:
        client = boto3.session.Session().client(
            "personalize-events",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(retries={"total_max_attempts": 1}, max_pool_connections=2),
        )
        ok = errors = 0
        while time.monotonic() < deadline:
            try:
                client.put_events(trackingId=TRACKING_ID, sessionId="s", userId="u", eventList=events)
                ok += 1
            except Exception:
                errors += 1
        with lock:
            counts["ok"] += ok
            counts["errors"] += errors

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put(counts)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--client", choices=("raw", "boto3"), default="raw")
    parser.add_argument("--connections", type=int, default=32, help="raw client: keep-alive connections")
    parser.add_argument("--threads", type=int, default=16, help="boto3 client: threads")
    parser.add_argument("--processes", type=int, default=1, help="load-generator processes")
    parser.add_argument("--db", help="pass --db FILE to the emulator (measure SQLite persistence)")
    args = parser.parse_args()

    cmd = [str(CLI), "emulator", "--port", "0", "--max-requests-per-second", "1e9"]
    if args.db:
        cmd += ["--db", args.db]
    emulator = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert emulator.stdout is not None
        line = emulator.stdout.readline()
        match = re.search(r"http://([\d.]+):(\d+)", line)
        if not match:
            print(f"emulator did not start: {line!r}", file=sys.stderr)
            return 1
        host, port = match.group(1), int(match.group(2))
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) > 1:  # the emulator gets one CPU to itself; the load generator the rest
            os.sched_setaffinity(emulator.pid, {cpus[0]})
            os.sched_setaffinity(0, set(cpus[1:]))

        out: Any = mp.Queue()
        if args.client == "raw":
            target, extra = raw_load, (host, port, args.connections)
        else:
            target, extra = boto3_load, (f"http://{host}:{port}", args.threads)  # type: ignore[assignment]
        procs = [mp.Process(target=target, args=(*extra, args.seconds, out)) for _ in range(args.processes)]
        cpu0, t0 = cpu_seconds(emulator.pid), time.monotonic()
        for p in procs:
            p.start()
        results = [out.get() for _ in procs]
        elapsed, cpu = time.monotonic() - t0, cpu_seconds(emulator.pid) - cpu0
        for p in procs:
            p.join()
        ok = sum(r["ok"] for r in results)
        errors = sum(r["errors"] for r in results)
        calls = ok + errors
        report = {
            "client": args.client,
            "db": bool(args.db),
            "seconds": round(elapsed, 2),
            "calls": calls,
            "errors": errors,
            "calls_per_second": round(calls / elapsed),
            "events_per_second": round(ok * 10 / elapsed),
            "emulator_cpu_seconds": round(cpu, 2),
            "emulator_cpu_us_per_call": round(cpu / calls * 1e6, 1) if calls else None,
            "emulator_cpu_utilisation": round(cpu / elapsed, 2),
        }
        print(json.dumps(report, indent=2))
        return 0
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
