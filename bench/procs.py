"""Processes the benchmarks start: the local stack, emulators, and pinned subprocesses whose CPU and
memory are sampled from /proc while they run.

Every process started here is registered with a `Cleanup`, which stops exactly those processes (by
pid) and takes the stack down, also when a stage fails or the run is interrupted.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.settings import REPO_ROOT, BenchSettings

LOCAL_STACK = REPO_ROOT / "scripts" / "local-stack"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def bin_path(name: str) -> str:
    """A console script of this virtualenv (personalize-connector)."""
    return str(Path(sys.executable).with_name(name))


def aws_env() -> dict[str, str]:
    """Dummy credentials for the emulator (it checks that calls are signed, not by whom)."""
    env = dict(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_EC2_METADATA_DISABLED="true",
    )
    env.pop("AWS_PROFILE", None)
    env.pop("AWS_SESSION_TOKEN", None)
    return env


def pinned(cmd: Sequence[str], core: int | None) -> list[str]:
    return ["taskset", "-c", str(core), *cmd] if core is not None else list(cmd)


class Cleanup:
    """Stops what the benchmark started, in reverse order; safe to call twice."""

    def __init__(self) -> None:
        self._actions: list[tuple[str, Callable[[], None]]] = []

    def add(self, what: str, action: Callable[[], None]) -> None:
        self._actions.append((what, action))

    def run(self) -> None:
        while self._actions:
            what, action = self._actions.pop()
            try:
                action()
            except Exception as exc:
                print(f"bench: cleanup of {what} failed: {exc}", file=sys.stderr)


def stop_process(proc: subprocess.Popen[Any], timeout: float = 20.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------------------- stack


@dataclass(frozen=True)
class StackInfo:
    bootstrap: str
    registry_url: str
    started_here: bool
    pids: tuple[int, ...] = ()


def start_stack(s: BenchSettings, cleanup: Cleanup) -> StackInfo:
    """Start Kafka + the registry on the benchmark's own ports and state dir (or reuse given ones)."""
    if s.kafka_bootstrap and s.registry_url:
        return StackInfo(s.kafka_bootstrap, s.registry_url.rstrip("/"), started_here=False)
    state = s.work_dir / "stack"
    env = stack_env(s)

    def down() -> None:
        subprocess.run([str(LOCAL_STACK), "down"], env=env, capture_output=True, timeout=180, check=False)

    # A stack left by a killed earlier run (same state dir: the script only stops its own pids) goes
    # first; registered before `up`, so a half-started stack is taken down too.
    down()
    cleanup.add("the local stack", down)
    print(f"bench: starting the local stack (Kafka :{s.kafka_port}, registry :{s.registry_port}, state {state})",
          file=sys.stderr)
    up = subprocess.run([str(LOCAL_STACK), "up"], env=env, capture_output=True, text=True, timeout=1200,
                        check=False, stdin=subprocess.DEVNULL)
    if up.returncode != 0:
        raise RuntimeError(
            f"scripts/local-stack up failed (exit {up.returncode}); if a port is taken, set "
            f"BENCH_KAFKA_PORT / BENCH_KAFKA_CONTROLLER_PORT / BENCH_REGISTRY_PORT:\n{up.stderr.strip()}"
        )
    info = dict(line.split("=", 1) for line in up.stdout.splitlines() if re.match(r"^[A-Z_]+=", line))
    pids = []
    for name in ("kafka.pid", "registry.pid"):
        with contextlib.suppress(OSError, ValueError):
            pids.append(int((state / name).read_text().strip()))
    return StackInfo(info["KAFKA_BOOTSTRAP"], info["SCHEMA_REGISTRY_URL"].rstrip("/"), True, tuple(pids))


def stack_env(s: BenchSettings) -> dict[str, str]:
    """The environment that points scripts/local-stack at the benchmark's ports and state dir."""
    env = dict(os.environ)
    env.update(
        KAFKA_PORT=str(s.kafka_port),
        KAFKA_CONTROLLER_PORT=str(s.controller_port),
        REGISTRY_PORT=str(s.registry_port),
        LOCAL_STACK_DIR=str(s.work_dir / "stack"),
    )
    return env


def restart_broker(s: BenchSettings, down_s: float) -> int:
    """Stop the broker of a stack started by `start_stack`, keep it down `down_s`, start it again
    on the same data; returns the new broker's pid (the registry keeps running)."""
    env = stack_env(s)
    for command in ("kafka-stop", "kafka-start"):
        done = subprocess.run([str(LOCAL_STACK), command], env=env, capture_output=True, text=True, timeout=300,
                              check=False, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(f"scripts/local-stack {command} failed (exit {done.returncode}): {done.stderr.strip()}")
        if command == "kafka-stop":
            time.sleep(down_s)
    return int((s.work_dir / "stack" / "kafka.pid").read_text().strip())


def pin_pid(pid: int, core: int) -> bool:
    """Move every thread of a running process (a JVM) to one core."""
    done = subprocess.run(["taskset", "-a", "-p", "-c", str(core), str(pid)], capture_output=True, check=False)
    return done.returncode == 0


# ---------------------------------------------------------------------------------------- emulator


@dataclass
class Emulator:
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def _request(self, method: str, path: str, payload: Any = None, timeout: float = 120.0) -> bytes:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body: bytes = resp.read()
            return body

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self._request("GET", "/_emulator/stats"))
        return result

    def set_faults(self, **faults: Any) -> None:
        self._request("POST", "/_emulator/faults", faults)

    def reset(self) -> None:
        self._request("POST", "/_emulator/reset", {})

    def received(self, tracking_id: str) -> list[tuple[float, str, float, str | None]]:
        """(receivedAt, sessionId, sentAt, eventId) of every accepted event of one tracker."""
        out: list[tuple[float, str, float, str | None]] = []
        body = self._request("GET", f"/_emulator/events?trackingId={tracking_id}", timeout=600)
        for line in body.splitlines():
            if line:
                e = json.loads(line)
                out.append((float(e["receivedAt"]), e["sessionId"], float(e["sentAt"]), e.get("eventId")))
        return out


def start_emulator(
    s: BenchSettings, cleanup: Cleanup, name: str, *extra: str, core: int | None = None
) -> Emulator:
    log_path = s.work_dir / f"emulator-{name}.log"
    cmd = pinned([bin_path("personalize-connector"), "emulator", "--host", "127.0.0.1", "--port", "0", *extra], core)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
    cleanup.add(f"emulator {name} (pid {proc.pid})", lambda: stop_process(proc))
    assert proc.stdout is not None
    line = b""
    deadline = time.monotonic() + 30
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(proc.stdout.fileno(), 1) if ready else b""
        if not chunk:
            raise RuntimeError(f"emulator {name} did not start: {log_path.read_text(errors='replace')[-2000:]}")
        line += chunk
    match = re.search(rb"listening on (http://[^\s]+)", line)
    if match is None:
        raise RuntimeError(f"unexpected emulator start line {line!r}")
    return Emulator(proc, match.group(1).decode().rstrip("/"), log_path)


# ---------------------------------------------------------------------------------------- sampling


@dataclass
class Sample:
    t: float  # time.time()
    cpu_s: float  # utime + stime of the whole process (all threads)
    rss_kb: int
    hwm_kb: int  # VmHWM: peak RSS of the process so far


@dataclass
class Measured:
    """A finished subprocess: exit code, samples, totals from wait4's rusage, and its output files."""

    returncode: int
    wall_s: float
    samples: list[Sample]
    cpu_total_s: float
    # Peak RSS: the last VmHWM sampled (VmHWM only grows). Not wait4's ru_maxrss: across fork+exec
    # the kernel carries the parent's RSS into it, so it would report the runner's size.
    maxrss_kb: int
    stdout: str
    log_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def cpu_at(self, t: float) -> float:
        """Process CPU seconds used up to wall time `t`, interpolated between samples."""
        times = [x.t for x in self.samples]
        if not times:
            return 0.0
        i = bisect_left(times, t)
        if i == 0:
            return self.samples[0].cpu_s
        if i >= len(times):
            return self.samples[-1].cpu_s
        a, b = self.samples[i - 1], self.samples[i]
        frac = (t - a.t) / (b.t - a.t) if b.t > a.t else 0.0
        return a.cpu_s + frac * (b.cpu_s - a.cpu_s)

    def cpu_between(self, t0: float, t1: float) -> float:
        return max(0.0, self.cpu_at(t1) - self.cpu_at(t0))


def read_proc(pid: int) -> tuple[float, int, int] | None:
    """(CPU seconds, RSS kB, VmHWM kB) of a process from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    mem = {k: int(v.split()[0]) for k, _, v in (line.partition(":") for line in status.splitlines())
           if k in ("VmRSS", "VmHWM")}
    return cpu, mem.get("VmRSS", 0), mem.get("VmHWM", 0)


class Running:
    """A subprocess being sampled; `finish()` waits for it and returns what was measured."""

    def __init__(self, cmd: Sequence[str], log_path: Path, *, env: dict[str, str] | None = None,
                 interval_s: float = 0.1, on_sample: Callable[[Sample], None] | None = None) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.started = time.time()
        self.proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=self._log, env=env,
                                     stdin=subprocess.DEVNULL)
        self.samples: list[Sample] = []
        self._interval = interval_s
        self._on_sample = on_sample
        self._done = threading.Event()
        self._stdout: list[bytes] = []
        self._sampler = threading.Thread(target=self._sample_loop, daemon=True)
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._sampler.start()
        self._reader.start()

    def _sample_loop(self) -> None:
        while not self._done.is_set():
            got = read_proc(self.proc.pid)
            if got is not None:
                sample = Sample(time.time(), *got)
                self.samples.append(sample)
                if self._on_sample is not None:
                    self._on_sample(sample)
            self._done.wait(self._interval)

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for chunk in iter(lambda: self.proc.stdout.read(65536) if self.proc.stdout else b"", b""):
            self._stdout.append(chunk)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        # Not Popen.poll(): it would reap the child, and finish() needs wait4's rusage.
        if self.proc.returncode is not None:
            return False
        try:
            return os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
        except ChildProcessError:
            return False

    def terminate(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)

    def finish(self, timeout_s: float) -> Measured:
        """Wait (SIGTERM after `timeout_s`, SIGKILL 30 s later) and reap with wait4 for the rusage totals."""
        deadline = time.monotonic() + timeout_s
        term_sent: float | None = None
        while True:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                break
            now = time.monotonic()
            if term_sent is None and now > deadline:
                print(f"bench: pid {self.proc.pid} still running after {timeout_s:.0f}s; stopping it", file=sys.stderr)
                self.terminate()
                term_sent = now
            elif term_sent is not None and now > term_sent + 30:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGKILL)
            time.sleep(0.05)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.time() - self.started
        self._done.set()
        self._sampler.join()
        self._reader.join(timeout=10)
        self._log.close()
        return Measured(
            returncode=self.proc.returncode,
            wall_s=wall,
            samples=self.samples,
            cpu_total_s=usage.ru_utime + usage.ru_stime,
            maxrss_kb=max((s.hwm_kb for s in self.samples), default=0),
            stdout=b"".join(self._stdout).decode(errors="replace"),
            log_path=self.log_path,
        )


def tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""
