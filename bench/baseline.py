"""The baseline: what the common Kafka -> Personalize tools do today.

AWS's Kafka Connect sink for Personalize and the Lambda samples send one PutEvents call per record
and move the offset on only after that call returned. This loop does exactly that with the usual
clients: a confluent-kafka consumer, `put_events` with a single event through a default boto3
client, then a synchronous commit of that message's offset. It decodes and maps records with the
connector's own decoder and EventMapper, so the difference measured is the delivery strategy alone.

    python -m bench.baseline --bootstrap HOST:PORT --registry URL --topic T --group G \
        --endpoint URL --tracking-id ID --max-events N

Prints one JSON line: events delivered, first/last call times.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--registry", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--tracking-id", required=True)
    parser.add_argument("--max-events", type=int, required=True)
    parser.add_argument("--idle-s", type=float, default=5.0)
    args = parser.parse_args(argv)

    import boto3
    from confluent_kafka import Consumer
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from connector.config import MappingConfig
    from connector.decode import ConfluentWireDecoder, load_schema
    from connector.destinations.events import EventMapper
    from connector.records import SourceRecord

    decoder = ConfluentWireDecoder.from_registry(SchemaRegistryClient({"url": args.registry}), load_schema(None))
    mapper = EventMapper(MappingConfig(), args.tracking_id)
    client = boto3.client("personalize-events", region_name="us-east-1", endpoint_url=args.endpoint)
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    consumer.subscribe([args.topic])
    delivered = 0
    first: float | None = None
    last = 0.0
    idle_since = time.monotonic()
    try:
        while delivered < args.max_events:
            msg = consumer.poll(0.5)
            if msg is None:
                if time.monotonic() - idle_since > args.idle_s and first is not None:
                    break
                continue
            if msg.error():
                print(f"consumer error: {msg.error()}", file=sys.stderr)
                continue
            idle_since = time.monotonic()
            source = SourceRecord(str(msg.topic()), int(msg.partition() or 0), int(msg.offset() or 0), msg.key(),
                                  msg.value())
            event = mapper.to_event(decoder.decode(msg.value()), source)
            client.put_events(**event.key.request([event.body]).params)
            consumer.commit(message=msg, asynchronous=False)
            delivered += 1
            now = time.time()
            first = now if first is None else first
            last = now
    finally:
        consumer.close()
    print(json.dumps({"delivered": delivered, "first": first, "last": last}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
