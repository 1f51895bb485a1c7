"""Helpers for the Helm chart tests: run helm, parse what `helm template` renders.

The fixtures that use them are in tests/helm/conftest.py.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "helm" / "personalize-connector"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
# (id, values file) for the default values and every example in ci/
CI_IDS_AND_VALUES: list[tuple[str, Path | None]] = [("default", None), *((p.stem, p) for p in CI_VALUES)]
HELM_SCRIPT = REPO_ROOT / "scripts" / "helm"
KUBE_VERSION = "1.34.0"
RELEASE = "pkc"
NAMESPACE = "streaming"
FULLNAME = f"{RELEASE}-personalize-connector"


class HelmError(Exception):
    """helm exited non-zero; the message is its output (stdout, then stderr)."""


@dataclass(frozen=True)
class Manifests:
    """The documents of one `helm template` run."""

    docs: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [d for d in self.of_kind(kind) if name is None or d["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    def has(self, kind: str) -> bool:
        return bool(self.of_kind(kind))

    @property
    def deployment(self) -> dict[str, Any]:
        return self.one("Deployment")

    @property
    def pod(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.deployment["spec"]["template"]["spec"]
        return spec

    @property
    def container(self) -> dict[str, Any]:
        containers: list[dict[str, Any]] = self.pod["containers"]
        assert len(containers) == 1
        return containers[0]

    @property
    def config_text(self) -> str:
        text: str = self.one("ConfigMap")["data"]["config.yaml"]
        return text

    @property
    def config(self) -> dict[str, Any]:
        data: dict[str, Any] = yaml.safe_load(self.config_text)
        return data


@dataclass(frozen=True)
class Helm:
    path: Path

    def run(self, *args: str) -> str:
        proc = subprocess.run([str(self.path), *args], capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            # lint reports the problems on stdout and only a summary on stderr
            raise HelmError("\n".join(t for t in (proc.stdout.strip(), proc.stderr.strip()) if t))
        return proc.stdout

    def values_args(self, tmp_dir: Path, values: Iterable[Mapping[str, Any] | Path]) -> list[str]:
        args: list[str] = []
        for n, item in enumerate(values):
            if isinstance(item, Path):
                path = item
            else:
                path = tmp_dir / f"values-{n}.yaml"
                path.write_text(yaml.safe_dump(dict(item), sort_keys=False))
            args += ["--values", str(path)]
        return args

    def template(self, tmp_dir: Path, *values: Mapping[str, Any] | Path) -> Manifests:
        out = self.run(
            "template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION,
            *self.values_args(tmp_dir, values),
        )
        return Manifests([d for d in yaml.safe_load_all(out) if d])

    def lint(self, tmp_dir: Path, *values: Mapping[str, Any] | Path) -> str:
        return self.run("lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION,
                        *self.values_args(tmp_dir, values))

    def notes(self, tmp_dir: Path, *values: Mapping[str, Any] | Path) -> str:
        """NOTES.txt as `helm install` would print it (`helm template` skips NOTES, and a client-side
        install needs a cluster): a copy of the chart renders it as a template of its own."""
        chart = tmp_dir / "notes-chart"
        shutil.rmtree(chart, ignore_errors=True)
        shutil.copytree(CHART, chart)
        notes = (chart / "templates" / "NOTES.txt").read_text()
        (chart / "templates" / "_notes_under_test.tpl").write_text(
            '{{- define "notes-under-test" -}}\n' + notes + "\n{{- end }}\n")
        (chart / "templates" / "notes-under-test.yaml").write_text(
            'kind: Notes\ntext: {{ include "notes-under-test" . | toJson }}\n')
        out = self.run("template", RELEASE, str(chart), "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION,
                       "--show-only", "templates/notes-under-test.yaml", *self.values_args(tmp_dir, values))
        text: str = yaml.safe_load(out)["text"]
        return text


class Renderer:
    """`render(values...)`: the manifests; `render.error(values...)`: helm's message refusing them."""

    def __init__(self, helm: Helm, tmp_dir: Path) -> None:
        self.helm = helm
        self.tmp_dir = tmp_dir

    def __call__(self, *values: Mapping[str, Any] | Path) -> Manifests:
        return self.helm.template(self.tmp_dir, *values)

    def error(self, *values: Mapping[str, Any] | Path) -> str:
        """helm template's error message for values it must refuse."""
        with pytest.raises(HelmError) as info:
            self.helm.template(self.tmp_dir, *values)
        return str(info.value)

    def notes(self, *values: Mapping[str, Any] | Path) -> str:
        return self.helm.notes(self.tmp_dir, *values)

    def lint_error(self, *values: Mapping[str, Any] | Path) -> str:
        with pytest.raises(HelmError) as info:
            self.helm.lint(self.tmp_dir, *values)
        return str(info.value)
