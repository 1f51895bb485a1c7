"""Run the process of a Pod the API server admitted, here, as its kubelet would start it.

From the stored Pod (never the chart's template) and the cluster's objects:

* the command: the container's ``command``/``args``, else the image's ENTRYPOINT/CMD (read from the
  repository's Dockerfile, which builds the chart's default image);
* the environment: ``envFrom`` (ConfigMaps/Secrets, with ``prefix``), then ``env`` (``value``,
  ``secretKeyRef``, ``configMapKeyRef``, ``fieldRef`` for the pod's name/namespace, with ``optional``
  and ``$(VAR)`` expansion), as Kubernetes resolves them;
* the volumes: ConfigMap and Secret volumes written out (``items``, ``subPath``) and emptyDirs;
* the user: the security context's ``runAsUser``/``runAsGroup``/``fsGroup``.

No path is rewritten: the process runs in a private mount namespace (``unshare -m``, needs root)
where each volume is bind-mounted at its ``mountPath``; a mount path whose parent does not exist on
this machine (``/etc/personalize-connector``) gets a copy of its nearest existing ancestor (``/etc``)
mounted over it first, so the rest of that directory is unchanged. A folder closed to other users
above the checkout or the interpreter (a mode-700 ``mktemp -d``, ``/root``) is covered by a tmpfs
holding just those paths (`reach_script`), never chmod-ed. ``setpriv`` then drops to the
pod's user and group. What differs from the container: PATH points at this virtualenv (the image's
Python) and PYTHONPATH at this checkout (the code under test), both set in `start`; the image's
WORKDIR and HOME (/home/app, absent here) are replaced by `/` and unset; readOnlyRootFilesystem and
resource limits are not enforced.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from k8s_support import REPO_ROOT, Cluster

DOCKERFILE = REPO_ROOT / "Dockerfile"
# Volume types whose content can be built from cluster objects here.
ALLOWED_VOLUMES = ("configMap", "secret", "emptyDir")


def image_entrypoint() -> tuple[list[str], list[str]]:
    """ENTRYPOINT and CMD (exec form) of the Dockerfile's last stage."""
    entrypoint: list[str] = []
    cmd: list[str] = []
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("FROM "):
            entrypoint, cmd = [], []
        elif line.startswith("ENTRYPOINT "):
            entrypoint = json.loads(line.removeprefix("ENTRYPOINT "))
        elif line.startswith("CMD "):
            cmd = json.loads(line.removeprefix("CMD "))
    assert entrypoint, f"no exec-form ENTRYPOINT in {DOCKERFILE}"
    return entrypoint, cmd


class ObjectData:
    """The data of the namespace's ConfigMaps and Secrets (Secrets decoded), fetched on first use."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self._cache: dict[tuple[str, str], dict[str, str] | None] = {}

    def get(self, kind: str, name: str) -> dict[str, str] | None:
        key = (kind, name)
        if key not in self._cache:
            found = self.cluster.items(kind + "s", self.namespace, None)
            by_name = {o["metadata"]["name"]: o for o in found}
            obj = by_name.get(name)
            if obj is None:
                self._cache[key] = None
            elif kind == "secret":
                self._cache[key] = {k: base64.b64decode(v).decode() for k, v in obj.get("data", {}).items()}
            else:
                self._cache[key] = dict(obj.get("data", {}))
        return self._cache[key]

    def key(self, kind: str, ref: dict[str, Any]) -> str | None:
        data = self.get(kind, ref["name"])
        optional = bool(ref.get("optional"))
        if data is None or ref["key"] not in data:
            assert optional, f"{kind} {ref['name']} key {ref['key']} is missing, not optional: the pod would not start"
            return None
        return data[ref["key"]]


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined variables are replaced, $$ escapes, others stay."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), value)


def resolve_env(pod: dict[str, Any], container: dict[str, Any], data: ObjectData) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            kind, ref = "configMap", source["configMapRef"]
        else:
            kind, ref = "secret", source["secretRef"]
        values = data.get(kind.lower(), ref["name"])
        assert values is not None or ref.get("optional"), f"envFrom {kind} {ref['name']} is missing"
        env.update({prefix + k: v for k, v in (values or {}).items()})
    fields = {"metadata.name": pod["metadata"]["name"], "metadata.namespace": pod["metadata"]["namespace"],
              "spec.nodeName": pod["spec"].get("nodeName", ""),
              "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "")}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = expand(var["value"], env)
            continue
        source = var.get("valueFrom", {})
        value: str | None
        if "secretKeyRef" in source:
            value = data.key("secret", source["secretKeyRef"])
        elif "configMapKeyRef" in source:
            value = data.key("configmap", source["configMapKeyRef"])
        elif "fieldRef" in source:
            value = fields[source["fieldRef"]["fieldPath"]]
        else:
            raise AssertionError(f"env {var['name']}: unsupported source {source}")
        if value is not None:
            env[var["name"]] = value
    return env


@dataclass(frozen=True)
class Mount:
    path: str      # the container's mountPath
    source: Path   # what this machine mounts there (a file for subPath mounts)
    read_only: bool


def write_volume(volume: dict[str, Any], data: ObjectData, root: Path) -> Path:
    """The volume's files under root/<name>, as the kubelet would lay them out (mode 0644)."""
    target: Path = root / str(volume["name"])
    target.mkdir(parents=True)
    kinds = [k for k in volume if k != "name"]
    assert len(kinds) == 1 and kinds[0] in ALLOWED_VOLUMES, f"volume {volume['name']}: {kinds} is not supported here"
    kind = kinds[0]
    if kind == "emptyDir":
        target.chmod(0o1777)
        return target
    spec = volume[kind]
    name = spec["name"] if kind == "configMap" else spec["secretName"]
    values = data.get(kind.lower(), name)
    assert values is not None or spec.get("optional"), f"volume {volume['name']}: {kind} {name} is missing"
    items = spec.get("items") or [{"key": k, "path": k} for k in (values or {})]
    for item in items:
        path = target / item["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text((values or {})[item["key"]])
        path.chmod(item.get("mode", spec.get("defaultMode", 0o644)) & 0o777)
    target.chmod(0o755)
    return target


def resolve_mounts(pod: dict[str, Any], container: dict[str, Any], data: ObjectData, root: Path) -> list[Mount]:
    volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
    written: dict[str, Path] = {}
    mounts: list[Mount] = []
    for mount in container.get("volumeMounts", []):
        name = mount["name"]
        if name not in written:
            written[name] = write_volume(volumes[name], data, root / "volumes")
        source = written[name] / mount["subPath"] if mount.get("subPath") else written[name]
        assert source.exists(), f"volumeMount {name} subPath {mount.get('subPath')} does not exist in the volume"
        mounts.append(Mount(mount["mountPath"], source, bool(mount.get("readOnly"))))
    return mounts


def mount_script(mounts: list[Mount], root: Path, opened: list[str] | None = None,
                 carried: list[Path] | None = None) -> str:
    """Shell commands (run inside `unshare -m`) that put every mount at its path; `opened` (from
    `reach_script`) goes first, while its views under `root` are not yet covered by a volume.
    `carried` (the code paths) stay reachable under a volume mounted over one of their ancestors:
    the chart's emptyDir at /tmp hides a checkout under /tmp (a `mktemp -d` clone, as CI makes)."""
    lines = ["set -eu", "mount --make-rprivate /", *(opened or [])]
    shadows: dict[str, Path] = {}
    for m in mounts:
        ancestor = Path(m.path).parent
        while not ancestor.exists():
            ancestor = ancestor.parent
        if Path(m.path).exists() or str(ancestor) in shadows:
            continue
        assert str(ancestor) != "/", f"cannot place {m.path}: no existing directory to copy below /"
        shadow = root / "shadows" / str(ancestor).strip("/").replace("/", "_")
        shadows[str(ancestor)] = shadow
        lines.append(f"cp -a {shlex.quote(str(ancestor))}/. {shlex.quote(str(shadow))}/")
    for base, shadow in shadows.items():
        shadow.mkdir(parents=True)
        for m in mounts:
            if Path(m.path).is_relative_to(base) and not Path(m.path).exists():
                inside = shadow / Path(m.path).relative_to(base)
                lines.append(f"mkdir -p {shlex.quote(str(inside.parent))}")
                lines.append(("touch " if m.source.is_file() else "mkdir -p ") + shlex.quote(str(inside)))
        lines.append(f"mount --bind {shlex.quote(str(shadow))} {shlex.quote(base)}")
    # A mount over a directory that holds the sources (/tmp over this test's tmp_path) goes last.
    ordered = sorted(mounts, key=lambda m: root.is_relative_to(m.path))
    for m in ordered:
        lines += carry_into(m, outermost(carried or []))
        lines.append(f"mount --rbind {shlex.quote(str(m.source))} {shlex.quote(m.path)}")
        if m.read_only:
            lines.append(f"mount -o remount,bind,ro {shlex.quote(m.path)}")
    return "\n".join(lines)


def outermost(paths: list[Path]) -> list[Path]:
    """The paths not inside another one (the virtualenv in the checkout comes with the checkout)."""
    return [p for p in paths if not any(p != q and p.is_relative_to(q) for q in paths)]


def carry_into(mount: Mount, paths: list[Path]) -> list[str]:
    """Shell lines that bind each path under `mount.path` into the volume's source at the same place
    before the volume is mounted (recursively) there, so the path survives being covered. What the
    volume's other contents are is unchanged; the binds live in this namespace only."""
    lines: list[str] = []
    for path in paths:
        if mount.source.is_dir() and path.is_relative_to(mount.path):
            inside = mount.source / path.relative_to(mount.path)
            lines += [f"mkdir -p {shlex.quote(str(inside))}",
                      f"mount --rbind {shlex.quote(str(path))} {shlex.quote(str(inside))}"]
    return lines


@dataclass(frozen=True)
class PodSpecRun:
    """Everything needed to start the admitted pod's container here."""

    argv: list[str]
    env: dict[str, str]
    mounts: list[Mount]
    user: int | None
    group: int | None
    fs_group: int | None
    grace_s: int
    ports: dict[str, int]              # containerPort by name
    probes: dict[str, dict[str, Any]]  # startupProbe / livenessProbe / readinessProbe


def prepare(cluster: Cluster, pod: dict[str, Any], root: Path) -> PodSpecRun:
    [container] = pod["spec"]["containers"]
    data = ObjectData(cluster, pod["metadata"]["namespace"])
    entrypoint, cmd = image_entrypoint()
    command = container.get("command") or entrypoint
    args = container.get("args") if "args" in container else ([] if container.get("command") else cmd)
    env = resolve_env(pod, container, data)
    argv = [expand(a, env) for a in [*command, *args]]
    pod_sc = pod["spec"].get("securityContext", {})
    ctr_sc = container.get("securityContext", {})
    return PodSpecRun(
        argv=argv, env=env, mounts=resolve_mounts(pod, container, data, root),
        user=ctr_sc.get("runAsUser", pod_sc.get("runAsUser")), group=ctr_sc.get("runAsGroup", pod_sc.get("runAsGroup")),
        fs_group=pod_sc.get("fsGroup"), grace_s=int(pod["spec"]["terminationGracePeriodSeconds"]),
        ports={p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p},
        probes={k: container[k] for k in ("startupProbe", "livenessProbe", "readinessProbe") if k in container},
    )


def can_run_here() -> str | None:
    """Why the pod's process cannot be started here (None: it can)."""
    if os.geteuid() != 0:
        return "running the pod's process in a private mount namespace needs root"
    for tool in ("unshare", "setpriv", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} (util-linux) not found"
    for path in code_paths():
        if (path.stat().st_mode & 0o005) != 0o005:
            return f"{path} is not readable and searchable by other users: the pod's non-root user cannot use it"
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"unshare -m is not permitted here: {probe.stderr.strip()}"
    return None


def code_paths() -> list[Path]:
    """What the pod's user must reach: this checkout, the virtualenv and the interpreter it links to."""
    return [REPO_ROOT, Path(sys.prefix), Path(sys.base_prefix).resolve()]


def closed_folder(path: Path) -> Path | None:
    """The topmost ancestor of `path` that other users cannot search (None: all can)."""
    for folder in reversed(path.parents):
        if not folder.stat().st_mode & 0o001:
            return folder
    return None


def reach_script(paths: list[Path], root: Path) -> list[str]:
    """Shell lines that open the way to `paths` for a non-root user, in this namespace only.

    A clone under a mode-700 directory (mktemp -d, or /root holding pyenv's interpreter) is closed
    to the pod's user. Rather than chmod the real folder, the closed folder is covered by a tmpfs
    (mode 755) in which each path is bind-mounted back from a view of the folder taken first.
    """
    lines: list[str] = []
    by_folder: dict[Path, list[Path]] = {}
    for path in outermost(paths):
        folder = closed_folder(path)
        if folder is not None:
            by_folder.setdefault(folder, []).append(path)
    for n, (folder, inside) in enumerate(sorted(by_folder.items())):
        view = root / "reach" / str(n)
        view.mkdir(parents=True)
        lines += [f"mount --rbind {shlex.quote(str(folder))} {shlex.quote(str(view))}",
                  f"mount -t tmpfs -o mode=755 pkc-reach {shlex.quote(str(folder))}"]
        for path in inside:
            rel = path.relative_to(folder)
            lines += [f"mkdir -p {shlex.quote(str(path))}",
                      f"mount --rbind {shlex.quote(str(view / rel))} {shlex.quote(str(path))}"]
    return lines


def start(run: PodSpecRun, root: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start the container's process; its pid is the connector's own (unshare, the launcher and
    setpriv each exec the next)."""
    script = root / "mounts.sh"
    opened = reach_script(code_paths(), root) if run.user not in (None, 0) else []
    script.write_text(mount_script(run.mounts, root, opened, code_paths()) + "\n")
    drop: list[str] = []
    if run.user is not None:
        drop = ["setpriv", f"--reuid={run.user}", f"--regid={run.group if run.group is not None else run.user}",
                f"--groups={run.fs_group}" if run.fs_group is not None else "--clear-groups", "--"]
    env = {
        **run.env,
        # Not the pod's: the image's interpreter is this virtualenv, the image's code this checkout.
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "PYTHONPATH": str(REPO_ROOT),
    }
    with log.open("wb") as out:
        return subprocess.Popen(["unshare", "-m", sys.executable, "-c", _LAUNCHER, str(script), *drop, *run.argv],
                                env=env, stdout=out, stderr=subprocess.STDOUT, cwd="/")


# Inside the namespace: the mounts (a shell script), then exec. Not `exec` from the shell: sh drops
# variables whose names are not identifiers, like PKC_KAFKA__CONFIG__sasl.password; a kubelet does not.
_LAUNCHER = ("import os, subprocess, sys; subprocess.run(['sh', sys.argv[1]], check=True); "
             "os.execvp(sys.argv[2], sys.argv[2:])")


def probe_url(run: PodSpecRun, probe: str) -> str:
    http = run.probes[probe]["httpGet"]
    port = http["port"]
    number = run.ports[port] if isinstance(port, str) else int(port)
    return f"{http.get('scheme', 'HTTP').lower()}://127.0.0.1:{number}{http.get('path', '/')}"


def probe_ok(url: str, timeout: float) -> bool:
    """The kubelet's rule: an HTTP status from 200 to 399 is a success."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= int(response.status) < 400
    except (urllib.error.URLError, OSError):
        return False


def stop(process: subprocess.Popen[bytes], grace_s: int) -> tuple[int, float]:
    """SIGTERM as the kubelet sends it; (exit code, seconds taken). SIGKILL after the grace period."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return -signal.SIGKILL, time.monotonic() - started
    return code, time.monotonic() - started
