"""Every fault test runs once per Kafka client: the delivery guarantees hold with either."""

from __future__ import annotations

from collections.abc import Iterator

import fixtures.pipeline
import pytest


@pytest.fixture(autouse=True, params=["confluent", "kafka-python"])
def kafka_client(request: pytest.FixtureRequest) -> Iterator[str]:
    previous = fixtures.pipeline.DEFAULT_CLIENT
    fixtures.pipeline.DEFAULT_CLIENT = request.param
    try:
        yield request.param
    finally:
        fixtures.pipeline.DEFAULT_CLIENT = previous
