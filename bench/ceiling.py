"""The machine's ceiling for the non-sink part of the pipeline: consume + decode + map, no sink.

The same ConfluentSource (same consumer settings as the connector), the same decoder built by
`build_decoder` and the same EventMapper, in a tight loop with no batching, no PutEvents and no
commits. Its CPU per event is the floor the full connector is compared with.

    python -m bench.ceiling --config connector.yaml --events N

Prints one JSON line: events, wall and process CPU seconds from the first record to the last.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from connector.records import TopicPartition


class _Listener:
    def __init__(self) -> None:
        self.assigned: set[TopicPartition] = set()

    def on_assigned(self, tps: list[TopicPartition]) -> None:
        self.assigned.update(tps)

    def on_revoked(self, tps: list[TopicPartition]) -> None:
        self.assigned.difference_update(tps)

    def on_lost(self, tps: list[TopicPartition]) -> None:
        self.assigned.difference_update(tps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling")
    parser.add_argument("--config", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--timeout-s", type=float, default=600.0)
    args = parser.parse_args(argv)

    from connector.app import registry_client
    from connector.config import load_settings
    from connector.decode import build_decoder
    from connector.destinations.events import EventMapper
    from connector.kafka.clients import KafkaClients

    settings = load_settings(args.config)
    k = settings.kafka
    source = KafkaClients.from_settings(settings).source()  # the worker's own consumer
    decoder = build_decoder(settings, registry_client(settings))
    mapper = EventMapper(settings.mapping, settings.personalize.tracking_id or "")
    source.subscribe(list(k.topics), _Listener())
    decode, to_event = decoder.decode, mapper.to_event
    seen = 0
    mapped = 0
    cpu0 = wall0 = 0.0
    deadline = time.monotonic() + args.timeout_s
    try:
        while seen < args.events and time.monotonic() < deadline:
            records = source.poll(k.poll_batch_size, k.poll_timeout_ms / 1000)
            if not records:
                continue
            if not seen:
                cpu0, wall0 = time.process_time(), time.time()
            for record in records:
                to_event(decode(record.value), record)
                mapped += 1
            seen += len(records)
        cpu1, wall1 = time.process_time(), time.time()
    finally:
        source.close()
    print(json.dumps({"events": mapped, "cpu_s": cpu1 - cpu0, "wall_s": wall1 - wall0, "first": wall0, "last": wall1}))
    return 0 if seen >= args.events else 1


if __name__ == "__main__":
    sys.exit(main())
