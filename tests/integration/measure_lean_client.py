"""CPU microseconds per 10-event PutEvents call: boto3 (as connector.personalize.sink.make_client builds it) vs
LeanPersonalizeClient, against a local emulator this script starts.

    .venv/bin/python tests/integration/measure_lean_client.py [--calls 3000] [--rounds 3]

Calling-thread CPU (time.thread_time) over `calls` sequential calls per client, the clients
interleaved round by round; prints the median of the rounds and the ratio. The emulator runs in
its own process, so its CPU is not counted.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from connector.personalize.lean_client import LeanPersonalizeClient
from connector.personalize.sink import make_client


def start_emulator() -> tuple[subprocess.Popen[bytes], str]:
    script = Path(sys.executable).with_name("personalize-connector")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "connector.cli"]
    process = subprocess.Popen(
        [*command, "emulator", "--port", "0", "--max-requests-per-second", "1000000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    match = re.search(r"listening on (http://\S+)", line)
    if match is None:
        process.kill()
        raise RuntimeError(f"emulator did not start: {line!r}")
    return process, match.group(1)


def payload(n: int) -> dict[str, Any]:
    now = datetime.datetime.now(datetime.UTC)
    events = [
        {
            "eventId": f"e-{n}-{i}",
            "eventType": "click",
            "itemId": f"item-{i}",
            "sentAt": now,
            "properties": '{"device": "mobile", "price": 12.5}',
        }
        for i in range(10)
    ]
    return {"trackingId": "bench", "sessionId": f"s-{n}", "userId": "u-1", "eventList": events}


def measure(client: Any, calls: int) -> float:
    payloads = [payload(n) for n in range(calls)]
    started = time.thread_time()
    for params in payloads:
        client.put_events(**params)
    return (time.thread_time() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    process, url = start_emulator()
    try:
        clients = {
            "boto3": make_client("us-east-1", url, max_pool_connections=4),
            "lean": LeanPersonalizeClient("us-east-1", url, max_pool_connections=4),
        }
        for client in clients.values():  # warm up: connections, lazy imports, caches
            measure(client, 200)
        results: dict[str, list[float]] = {name: [] for name in clients}
        for _ in range(args.rounds):
            for name, client in clients.items():
                results[name].append(measure(client, args.calls))
        medians = {name: statistics.median(values) for name, values in results.items()}
        for name, values in results.items():
            print(f"{name:6s} CPU us/call: median {medians[name]:7.1f}  rounds {[round(v, 1) for v in values]}")
        print(f"ratio boto3/lean: {medians['boto3'] / medians['lean']:.2f}x")
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
