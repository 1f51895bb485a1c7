"""Every fault test runs once per Kafka client: the delivery guarantees hold with either.

Tests that stop the broker (test_broker_restart.py, test_log_floods.py) share one dedicated stack,
`own_stack`: its own ports and state dir, so the shared stack of the other tests is never touched.
It is started once per session (a Kafka + Apicurio start-up costs seconds, each module paid it)
and every test gets it with the broker running, whatever the test before it left. Ports: KAFKA_PORT
29092, controller 29093, registry 28081 (override with FAULTS_KAFKA_PORT / FAULTS_CONTROLLER_PORT /
FAULTS_REGISTRY_PORT). All below Linux's ephemeral range (32768-60999): a port in it (the stack
also takes KAFKA_PORT + 2 and + 3) can be held at that moment by any client connection of the
suite, and the broker then fails to bind (seen once: 59094 in use).

Under pytest-xdist (`make test`) every test using `own_stack` is put in one `xdist_group`: they run
in one worker, one after another, in collection order, so two tests never stop the broker under
each other, the fixed ports are bound once, and `own_stack` still sees its last user.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import fixtures.pipeline
import pytest
from fixtures.faults import DedicatedStack

BREAKABLE_STACK_GROUP = "breakable-stack"


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        if "own_stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group(BREAKABLE_STACK_GROUP))


@pytest.fixture(autouse=True, params=["confluent", "kafka-python"])
def kafka_client(request: pytest.FixtureRequest) -> Iterator[str]:
    previous = fixtures.pipeline.DEFAULT_CLIENT
    fixtures.pipeline.DEFAULT_CLIENT = request.param
    try:
        yield request.param
    finally:
        fixtures.pipeline.DEFAULT_CLIENT = previous


@pytest.fixture(scope="session")
def breakable_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DedicatedStack]:
    stack = DedicatedStack(
        tmp_path_factory.mktemp("breakable-stack"),
        kafka_port=int(os.environ.get("FAULTS_KAFKA_PORT", "29092")),
        controller_port=int(os.environ.get("FAULTS_CONTROLLER_PORT", "29093")),
        registry_port=int(os.environ.get("FAULTS_REGISTRY_PORT", "28081")),
    )
    try:
        stack.up()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield stack
    finally:
        stack.down()


@pytest.fixture
def own_stack(breakable_stack: DedicatedStack, request: pytest.FixtureRequest) -> Iterator[DedicatedStack]:
    """The dedicated stack with its broker running (a no-op unless a failed test left it stopped).
    After the last test of the run that uses it, it is stopped: its two JVMs would otherwise idle
    through the rest of the suite."""
    breakable_stack.kafka_start()
    yield breakable_stack
    items = request.session.items
    if not any("own_stack" in item.fixturenames for item in items[items.index(request.node) + 1:]):
        breakable_stack.down()  # again at the session's end: a no-op then
