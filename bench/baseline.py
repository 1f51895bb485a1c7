"""The baseline: what the common Kafka -> Personalize tools do today.

AWS's Kafka Connect sink for Personalize and the Lambda samples send one PutEvents call per record
and move the offset on only after that call returned. This loop does exactly that with the usual
clients: a confluent-kafka consumer, `put_events` with a single event through a default boto3
client, then a synchronous commit of that message's offset. It decodes and maps records with the
connector's own decoder and EventMapper, so the difference measured is the delivery strategy alone.

`--senders N` (N > 1) plays Kafka Connect's N tasks: N threads in this process, each with its own
consumer of one consumer group (partition i goes to sender i mod N, assigned, so no rebalance
interrupts the run), its own boto3 client, decoder and mapper, each sending one event per call
with a sync commit after it, until every partition is drained to the end it had at the start
(or --max-events in all).

    python -m bench.baseline --bootstrap HOST:PORT --registry URL --topic T --group G \
        --endpoint URL --tracking-id ID --max-events N [--senders N]

Prints one JSON line: events delivered, first/last call times, senders.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

from confluent_kafka import Consumer, TopicPartition


class Budget:
    """The events still to send, shared by the senders (each takes one before its call)."""

    def __init__(self, events: int) -> None:
        self._left = events
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self._left <= 0:
                return False
            self._left -= 1
            return True

    def spent(self) -> bool:
        with self._lock:
            return self._left <= 0


class Sender:
    """One task: consume, decode, map, one PutEvents call, one sync commit; per message."""

    def __init__(self, args: argparse.Namespace, budget: Budget) -> None:
        import boto3
        from confluent_kafka.schema_registry import SchemaRegistryClient

        from connector.config import MappingConfig
        from connector.decode import ConfluentWireDecoder, load_schema
        from connector.destinations.events import EventMapper

        self._args = args
        self._budget = budget
        self.decoder = ConfluentWireDecoder.from_registry(SchemaRegistryClient({"url": args.registry}),
                                                          load_schema(None))
        self.mapper = EventMapper(MappingConfig(), args.tracking_id)
        # A session per sender: boto3's default session is not safe to share across threads.
        self.client = boto3.session.Session().client("personalize-events", region_name="us-east-1",
                                                     endpoint_url=args.endpoint)
        self.consumer = Consumer({
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        })
        self.delivered = 0
        self.first: float | None = None
        self.last = 0.0
        self.error: BaseException | None = None

    def run(self, ends: dict[int, int] | None = None) -> None:
        """Send until the budget is spent, every partition in `ends` reached its end, or idle."""
        from connector.records import SourceRecord

        idle_since = time.monotonic()
        try:
            while (ends is None or ends) and not self._budget.spent():
                msg = self.consumer.poll(0.5)
                if msg is None:
                    if time.monotonic() - idle_since > self._args.idle_s and (self.first is not None or ends):
                        break
                    continue
                if msg.error():
                    print(f"consumer error: {msg.error()}", file=sys.stderr)
                    continue
                idle_since = time.monotonic()
                if not self._budget.take():
                    break
                source = SourceRecord(str(msg.topic()), int(msg.partition() or 0), int(msg.offset() or 0),
                                      msg.key(), msg.value())
                event = self.mapper.to_event(self.decoder.decode(msg.value()), source)
                self.client.put_events(**event.key.request([event.body]).params)
                self.consumer.commit(message=msg, asynchronous=False)
                self.delivered += 1
                now = time.time()
                self.first = now if self.first is None else self.first
                self.last = now
                if ends is not None and source.offset + 1 >= ends.get(source.partition, 0):
                    ends.pop(source.partition, None)
        except BaseException as exc:  # reported by main(), which exits non-zero
            self.error = exc
        finally:
            self.consumer.close()


def partition_ends(consumer: Consumer, topic: str) -> dict[int, int]:
    """Each partition's end offset now (the backlog the senders drain), empty partitions left out."""
    partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
    ends = {}
    for p in sorted(partitions):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
        if high > low:
            ends[p] = high
    return ends


def run_parallel(args: argparse.Namespace, budget: Budget) -> list[Sender]:
    senders = [Sender(args, budget) for _ in range(args.senders)]
    ends = partition_ends(senders[0].consumer, args.topic)
    threads = []
    for i, sender in enumerate(senders):
        mine = {p: end for p, end in ends.items() if p % args.senders == i}
        sender.consumer.assign([TopicPartition(args.topic, p) for p in mine])
        threads.append(threading.Thread(target=sender.run, args=(mine,), name=f"sender-{i}"))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return senders


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
    parser.add_argument("--senders", type=int, default=1)
    args = parser.parse_args(argv)

    budget = Budget(args.max_events)
    if args.senders > 1:
        senders = run_parallel(args, budget)
    else:
        sender = Sender(args, budget)
        sender.consumer.subscribe([args.topic])
        sender.run()
        senders = [sender]
    for failed in (s for s in senders if s.error is not None):
        print(f"sender failed: {type(failed.error).__name__}: {failed.error}", file=sys.stderr)
        return 1
    firsts = [s.first for s in senders if s.first is not None]
    out: dict[str, Any] = {"delivered": sum(s.delivered for s in senders), "first": min(firsts, default=None),
                           "last": max(s.last for s in senders), "senders": len(senders)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
