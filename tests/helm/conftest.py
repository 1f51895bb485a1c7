"""Fixtures for the Helm chart tests: a helm binary (scripts/helm) and a renderer over the chart.

``helm`` (session) asks scripts/helm for the cached binary, building it with Go on first use (a few
minutes, once per machine). Without Go and without a cached binary the chart tests are skipped with
scripts/helm's message. ``render`` runs ``helm template`` with values given as dicts and/or files and
returns the parsed manifests (chart_support.Manifests). Importing this module has no side effects.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import CHART, HELM_SCRIPT, Helm, Renderer


@pytest.fixture(scope="session")
def helm() -> Helm:
    proc = subprocess.run([str(HELM_SCRIPT), "--path"], capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        message = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
        if "go not found" in message:
            pytest.skip(f"Helm chart tests need helm: {message}")
        pytest.fail(f"scripts/helm failed: {message}")
    return Helm(Path(proc.stdout.strip()))


@pytest.fixture
def render(helm: Helm, tmp_path: Path) -> Renderer:
    return Renderer(helm, tmp_path)


@pytest.fixture(scope="session")
def chart_values() -> dict[str, Any]:
    """The chart's values.yaml."""
    data: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return data
