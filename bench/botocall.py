"""Client-side CPU of one PutEvents call of 10 events, through each of the connector's HTTP clients.

Variants, both exactly as `connector.personalize.sink.make_client` builds them: `make_client`, the
boto3 client (`personalize.http_client: boto3`), and `lean`, the default client. Each is measured
in rounds that alternate between the two, so a drift in machine load hits both alike.

    python -m bench.botocall --endpoint URL [--calls N]

Prints one JSON line: per variant, CPU microseconds per call (calling thread) and calls per second.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any


def sample_batch(tracking_id: str) -> dict[str, Any]:
    """A realistic 10-event PutEvents request, mapped by the connector's EventMapper."""
    from connector.config import MappingConfig
    from connector.destinations.events import EventMapper
    from connector.records import SourceRecord
    from connector.tools.workload import generate

    mapper = EventMapper(MappingConfig(), tracking_id)
    records = list(generate(2_000, 1, 7))[:10]  # one session
    events = [mapper.to_event(r.value or {}, SourceRecord("t", 0, i, r.key, b"")) for i, r in enumerate(records)]
    return events[0].key.request([e.body for e in events]).params  # exactly what the sink sends


def measure(
    clients: dict[str, Any], params: dict[str, Any], calls: int, rounds: int = 5
) -> dict[str, dict[str, float]]:
    for client in clients.values():
        for _ in range(50):  # warm up: connection, lazily loaded model parts
            client.put_events(**params)
    cpu = dict.fromkeys(clients, 0.0)
    wall = dict.fromkeys(clients, 0.0)
    per_round = max(1, calls // rounds)
    for _ in range(rounds):
        for name, client in clients.items():
            cpu0, wall0 = time.thread_time(), time.perf_counter()
            for _ in range(per_round):
                client.put_events(**params)
            cpu[name] += time.thread_time() - cpu0
            wall[name] += time.perf_counter() - wall0
    n = per_round * rounds
    return {name: {"cpu_us_per_call": 1e6 * cpu[name] / n, "calls_per_s": n / wall[name]} for name in clients}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.botocall")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args(argv)

    from connector.personalize.sink import make_client

    clients = {
        "make_client": make_client("us-east-1", args.endpoint, max_pool_connections=16, http_client="boto3"),
        "lean": make_client("us-east-1", args.endpoint, max_pool_connections=16, http_client="lean"),
    }
    params = sample_batch("bench-botocall")
    result: dict[str, Any] = {"events_per_call": len(params["eventList"])}
    result.update(measure(clients, params, args.calls))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
