"""Helpers for the tests on a real Kubernetes API server (scripts/local-k8s): kubectl and helm bound
to its kubeconfig, and a namespace per test.

The fixtures that use them are in tests/k8s/conftest.py. Importing this module has no side effects.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "helm" / "personalize-connector"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
LOCAL_K8S = REPO_ROOT / "scripts" / "local-k8s"
HELM_SCRIPT = REPO_ROOT / "scripts" / "helm"
RELEASE = "pkc"
FULLNAME = f"{RELEASE}-personalize-connector"
# Values every install starts from: a tracker id (the chart's default is empty).
BASE_VALUES: dict[str, Any] = {"config": {"personalize": {"tracking_id": "tracker-k8s"}}}


class CommandError(Exception):
    """kubectl or helm exited non-zero; the message is its stdout and stderr."""


@dataclass(frozen=True)
class Result:
    stdout: str
    stderr: str


def parse_env_lines(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", key):
            out[key] = value
    return out


@dataclass(frozen=True)
class Cluster:
    """The running control plane, from the KEY=value lines of `scripts/local-k8s up|status`."""

    info: dict[str, str]
    helm_path: Path

    @property
    def kubeconfig(self) -> str:
        return self.info["KUBECONFIG"]

    def _run(self, argv: list[str], stdin: str | None, timeout: float) -> Result:
        # helm's own caches next to the kubeconfig: nothing of the user's ~/.cache/helm is read or written.
        env = {**os.environ, "KUBECONFIG": self.kubeconfig,
               "HELM_CACHE_HOME": str(Path(self.kubeconfig).parent / "helm")}
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False, env=env)
        if proc.returncode != 0:
            raise CommandError("\n".join(t for t in (proc.stdout.strip(), proc.stderr.strip()) if t))
        return Result(proc.stdout, proc.stderr)

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 60) -> Result:
        return self._run([self.info["KUBECTL"], *args], stdin, timeout)

    def helm(self, *args: str, timeout: float = 240) -> Result:
        return self._run([str(self.helm_path), *args], None, timeout)

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout)
        return data

    def items(self, kinds: str, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        args = ["get", kinds, "-n", namespace, "-o", "json"]
        if selector:
            args += ["-l", selector]
        items: list[dict[str, Any]] = json.loads(self.kubectl(*args).stdout)["items"]
        return items


def values_file(tmp_dir: Path, name: str, values: Mapping[str, Any]) -> Path:
    path = tmp_dir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(dict(values), sort_keys=False))
    return path


@dataclass
class Namespace:
    """A fresh namespace on the cluster, and helm/kubectl calls scoped to it."""

    cluster: Cluster
    name: str
    tmp_dir: Path
    _files: list[Path] = field(default_factory=list)

    def values_args(self, *values: Mapping[str, Any] | Path) -> list[str]:
        args: list[str] = []
        for item in (BASE_VALUES, *values):
            path = item if isinstance(item, Path) else values_file(self.tmp_dir, f"values-{len(self._files)}", item)
            self._files.append(path)
            args += ["--values", str(path)]
        return args

    def helm(self, verb: str, *args: str, values: tuple[Mapping[str, Any] | Path, ...] = (),
             timeout: float = 240) -> Result:
        """`helm <verb> RELEASE CHART --namespace NS --values ...` for install/upgrade (args after)."""
        argv = [verb, RELEASE]
        if verb in ("install", "upgrade"):
            argv += [str(CHART), *self.values_args(*values)]
        return self.cluster.helm(*argv, "--namespace", self.name, *args, timeout=timeout)

    def install(self, *values: Mapping[str, Any] | Path) -> Result:
        return self.helm("install", "--wait", "--timeout", "180s", values=values)

    def get(self, kind: str, name: str = FULLNAME) -> dict[str, Any]:
        return self.cluster.get(kind, name, self.name)

    def release_objects(self) -> list[dict[str, Any]]:
        """Every object of the release in the namespace (what `helm get manifest` lists)."""
        manifest = self.cluster.helm("get", "manifest", RELEASE, "--namespace", self.name).stdout
        return [d for d in yaml.safe_load_all(manifest) if d]

    def running_pods(self) -> list[dict[str, Any]]:
        return [p for p in self.cluster.items("pods", self.name, f"app.kubernetes.io/instance={RELEASE}")
                if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]


def wait_until(check: Callable[[], Any], what: str, timeout: float = 90, interval: float = 0.3) -> Any:
    """Poll `check` until it returns something truthy; its last value or exception in the message."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except CommandError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last}")
