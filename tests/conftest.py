"""Shared fixtures: the real local stack (Kafka + schema registry) and the Personalize emulator; the
hooks that run the suite on pytest-xdist workers (fixtures/parallel.py).

Fixture modules live in tests/fixtures/ (on sys.path via pyproject's pytest `pythonpath`).
"""

from fixtures.emulator import *  # noqa: F403
from fixtures.parallel import *  # noqa: F403
from fixtures.pipeline import *  # noqa: F403
from fixtures.stack import *  # noqa: F403
from fixtures.workers import pytest_runtest_makereport  # noqa: F401  (a failed test shows its workers' logs)
