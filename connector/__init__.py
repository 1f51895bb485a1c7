"""Stream Avro interaction events from Kafka into Amazon Personalize PutEvents."""

__version__ = "0.1.0"
