"""The Kafka side of the pipeline, behind one small protocol so client libraries are swappable."""

from connector.source.base import RebalanceListener, Source

__all__ = ["RebalanceListener", "Source"]
