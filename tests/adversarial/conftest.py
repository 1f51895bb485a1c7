"""The adversarial suite: generated hostile input against the decoder, the mapping, the sink's HTTP
handling and a real worker on the real stack. Figures go to the terminal summary."""

from __future__ import annotations

import pytest
from adversarial import figures


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if figures.LINES:
        terminalreporter.section("adversarial figures (cases tried, outcomes by class)")
        for line in figures.LINES:
            terminalreporter.write_line(line)
