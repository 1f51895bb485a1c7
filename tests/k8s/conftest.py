"""Fixtures for the tests on a real Kubernetes API server: the control plane of scripts/local-k8s
(etcd, kube-apiserver with RBAC and Pod Security `restricted`, controller-manager, scheduler, kwok).

``k8s`` (session) finds or starts the control plane once per pytest run, the way tests/fixtures/
stack.py does for Kafka:

* ``scripts/local-k8s status`` says one is up (same ``LOCAL_K8S_DIR``): reuse it, never stop it;
* otherwise ``scripts/local-k8s up`` (which builds the binaries once per machine, ~13 min cold on 2
  cores), and ``scripts/local-k8s down`` when the last session using it ends (the same
  ``.lock`` / ``.users`` / ``.started-by-tests`` files next to its state dir as the Kafka stack).

Without Go and without cached binaries the tests are skipped with the script's message.
``namespace``: a fresh namespace per test, deleted after it. Importing has no side effects.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from k8s_support import HELM_SCRIPT, LOCAL_K8S, Cluster, Namespace, parse_env_lines

# `up` may build everything first: ~13 min on 2 idle cores, more on a busy machine.
UP_TIMEOUT_S = float(os.environ.get("LOCAL_K8S_BUILD_TIMEOUT", "2700"))


def _script(command: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LOCAL_K8S), command], capture_output=True, text=True, timeout=timeout,
                          check=False, stdin=subprocess.DEVNULL)


def _state_dir() -> Path:
    """The control plane's state dir, as scripts/local-k8s computes it."""
    if os.environ.get("LOCAL_K8S_DIR"):
        return Path(os.environ["LOCAL_K8S_DIR"])
    return Path(os.environ.get("TMPDIR") or "/tmp") / "personalize-connector-k8s"


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _nobody_else_uses(users: Path) -> bool:
    with users.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


def _last_line(text: str, fallback: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else fallback


@pytest.fixture(scope="session")
def helm_path() -> Path:
    proc = subprocess.run([str(HELM_SCRIPT), "--path"], capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        message = _last_line(proc.stderr, f"exit {proc.returncode}")
        if "go not found" in message:
            pytest.skip(f"Kubernetes tests need helm: {message}")
        pytest.fail(f"scripts/helm failed: {message}")
    return Path(proc.stdout.strip())


@pytest.fixture(scope="session")
def k8s(helm_path: Path) -> Iterator[Cluster]:
    state_dir = _state_dir()
    state_dir.parent.mkdir(parents=True, exist_ok=True)
    lock, users, started_by_tests = (state_dir.with_name(state_dir.name + suffix)
                                     for suffix in (".lock", ".users", ".started-by-tests"))
    with users.open("a") as handle:
        with _exclusive(lock):
            status = _script("status", timeout=60)
            if status.returncode == 0 and _nobody_else_uses(users):
                started_by_tests.unlink(missing_ok=True)  # running, and no session uses it: not ours
            if status.returncode == 0:
                info = parse_env_lines(status.stdout)
            else:
                up = _script("up", timeout=UP_TIMEOUT_S)
                if up.returncode != 0:
                    _script("down", timeout=120)  # what a failed `up` may have left
                    message = _last_line(up.stderr, f"exit {up.returncode}")
                    if "go not found" in message:
                        pytest.skip(f"Kubernetes tests need the control plane: {message}")
                    pytest.fail(f"scripts/local-k8s up failed: {message}", pytrace=False)
                info = parse_env_lines(up.stdout)
                started_by_tests.write_text(f"{os.getpid()}\n")
            fcntl.flock(handle, fcntl.LOCK_SH)
        try:
            yield Cluster(info, helm_path)
        finally:
            with _exclusive(lock):
                fcntl.flock(handle, fcntl.LOCK_UN)
                if started_by_tests.exists() and _nobody_else_uses(users):
                    down = _script("down", timeout=120)
                    started_by_tests.unlink(missing_ok=True)
                    if down.returncode != 0:
                        print(f"scripts/local-k8s down failed: {down.stderr.strip()}")


_RUN_ID = f"{time.strftime('%H%M%S')}-{uuid.uuid4().hex[:4]}"
_COUNTER = itertools.count()


@pytest.fixture
def namespace(k8s: Cluster, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Namespace]:
    slug = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:30].strip("-")
    name = f"t{_RUN_ID}-{next(_COUNTER)}-{slug}"[:63].strip("-")
    k8s.kubectl("create", "namespace", name)
    try:
        yield Namespace(k8s, name, tmp_path)
    finally:
        # helm's own release Secrets go with the namespace; nothing waits for the deletion.
        k8s.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")
