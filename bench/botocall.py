"""Client-side CPU of one PutEvents call of 10 events, through the connector's boto3 client.

Variants: the client exactly as `connector.personalize.sink.make_client` builds it, and the same client with
botocore's parameter validation off (`Config(parameter_validation=False)`): the EventMapper has
already checked every event against the same botocore model, so that validation runs twice today.

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


def measure(client: Any, params: dict[str, Any], calls: int) -> dict[str, float]:
    for _ in range(50):  # warm up: connection, lazily loaded model parts
        client.put_events(**params)
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    for _ in range(calls):
        client.put_events(**params)
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
    return {"cpu_us_per_call": 1e6 * cpu / calls, "calls_per_s": calls / wall}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.botocall")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args(argv)

    import boto3
    from botocore.config import Config

    from connector.personalize.sink import make_client

    client = make_client("us-east-1", args.endpoint, max_pool_connections=16)
    unvalidated = boto3.session.Session().client(
        "personalize-events", endpoint_url=args.endpoint,
        config=client.meta.config.merge(Config(parameter_validation=False)),
    )
    params = sample_batch("bench-botocall")
    result = {
        "events_per_call": len(params["eventList"]),
        "make_client": measure(client, params, args.calls),
        "parameter_validation_false": measure(unvalidated, params, args.calls),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
