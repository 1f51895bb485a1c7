"""Everything Kafka: the worker's source, the dead-letter producers, the tools' admin reads and
readers, per client library (confluent-kafka, kafka-python), made by one factory (`clients`)."""

from connector.kafka.base import RebalanceListener, Source

__all__ = ["RebalanceListener", "Source"]
