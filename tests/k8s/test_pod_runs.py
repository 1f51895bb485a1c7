"""The pod the API server admitted really runs: its command, args, environment (Secrets, ConfigMaps,
envFrom), mounted ConfigMap files and user, started here (tests/k8s/pod_process.py) against the local
Kafka stack and the emulator. It must deliver events, answer the probes the pod declares on the
ports it declares, and stop on SIGTERM within terminationGracePeriodSeconds with everything
committed: the chart's wiring (config keys, env names, mount paths, probe ports) end to end."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pod_process
import pytest
from fixtures.pipeline import canonical_schema, committed_and_end_offsets, confluent_frame, produce_raw, register
from k8s_support import Namespace, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("k8s")]

EVENTS = 60
SCHEMA = canonical_schema()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def event(i: int) -> dict[str, Any]:
    return {"eventId": f"e{i}", "trackingId": None, "sessionId": f"s{i % 7}", "userId": f"u{i % 5}",
            "eventType": "view", "eventValue": None, "itemId": f"i{i}", "properties": {},
            "sentAt": 1_700_000_000_000 + i, "impression": [], "eventAttributionSource": None}


def test_admitted_pod_delivers_answers_its_probes_and_stops_on_sigterm_with_all_committed(
    namespace: Namespace, stack: Any, new_topic: Any, group_id: str, emulator: Any, tracking_id: str,
    registry_client: Any, tmp_path: Path,
) -> None:
    reason = pod_process.can_run_here()
    if reason:
        pytest.skip(reason)
    sasl_bootstrap = stack.info.get("KAFKA_SASL_SSL_BOOTSTRAP")
    if not sasl_bootstrap:
        pytest.skip("the stack was given by KAFKA_BOOTSTRAP/SCHEMA_REGISTRY_URL: no SASL_SSL listener known")
    topic = new_topic(partitions=3)
    kube = namespace.cluster
    # What a user keeps outside the chart: the broker's CA in a ConfigMap (mounted with extraVolumes),
    # AWS credentials in a Secret (extraEnvFrom), the Personalize endpoint in a ConfigMap (extraEnv).
    ca = Path(stack.info["KAFKA_TLS_CA"]).read_text()
    kube.kubectl("create", "configmap", "kafka-ca", "-n", namespace.name, f"--from-literal=ca.pem={ca}")
    kube.kubectl("create", "secret", "generic", "aws", "-n", namespace.name,
                 "--from-literal=AWS_ACCESS_KEY_ID=test", "--from-literal=AWS_SECRET_ACCESS_KEY=test")
    kube.kubectl("create", "configmap", "endpoints", "-n", namespace.name, f"--from-literal=personalize={emulator.url}")
    metrics_port = free_port()
    namespace.install({
        "config": {
            "kafka": {"bootstrap_servers": sasl_bootstrap, "group_id": group_id, "topics": [topic],
                      "commit_interval_ms": 200,
                      "config": {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN",
                                 "ssl.ca.location": "/etc/personalize-connector/ca/ca.pem"}},
            "schema_registry": {"url": stack.registry_url},
            "personalize": {"tracking_id": tracking_id, "region": "us-east-1"},
            "batching": {"linger_ms": 200},
            "shutdown": {"grace_period_s": 10},
            "observability": {"metrics_port": metrics_port},
        },
        "kafkaCredentials": {"properties": {"sasl.username": stack.info["KAFKA_SASL_USERNAME"],
                                            "sasl.password": stack.info["KAFKA_SASL_PASSWORD"]}},
        "extraEnvFrom": [{"secretRef": {"name": "aws"}}],
        "extraEnv": [{"name": "PKC_PERSONALIZE__ENDPOINT_URL",
                      "valueFrom": {"configMapKeyRef": {"name": "endpoints", "key": "personalize"}}}],
        "extraVolumes": [{"name": "kafka-ca", "configMap": {"name": "kafka-ca"}}],
        "extraVolumeMounts": [{"name": "kafka-ca", "mountPath": "/etc/personalize-connector/ca", "readOnly": True}],
    })
    [pod] = namespace.running_pods()  # as stored: defaults and admission applied
    run = pod_process.prepare(kube, pod, tmp_path / "pod")
    # The wiring as the API server holds it, before running anything.
    assert run.argv == ["personalize-connector", "run", "--config", "/etc/personalize-connector/config.yaml"]
    assert run.env["PKC_KAFKA__CONFIG__sasl.password"] == stack.info["KAFKA_SASL_PASSWORD"]
    assert run.env["AWS_ACCESS_KEY_ID"] == "test" and run.env["PKC_PERSONALIZE__ENDPOINT_URL"] == emulator.url
    assert {m.path for m in run.mounts} == {"/etc/personalize-connector/config.yaml", "/tmp",
                                             "/etc/personalize-connector/ca"}
    assert (run.user, run.group) == (10001, 10001)
    assert run.ports == {"metrics": metrics_port}
    assert run.grace_s == 10 + 15

    schema_id = register(registry_client, f"{topic}-value", SCHEMA)
    produce_raw(stack.bootstrap, topic, [(f"s{i % 7}".encode(), confluent_frame(schema_id, SCHEMA, event(i)))
                                         for i in range(EVENTS)])
    log = tmp_path / "pod.log"
    process = pod_process.start(run, tmp_path / "pod", log)
    try:
        startup = pod_process.probe_url(run, "startupProbe")
        wait_until(lambda: process.poll() is not None or pod_process.probe_ok(startup, 2),
                   "the startup probe", timeout=60)
        assert process.poll() is None, log.read_text()[-3000:]
        wait_until(lambda: len(emulator.events(tracking_id)) >= EVENTS, f"{EVENTS} events at the emulator", timeout=90)
        readiness = pod_process.probe_url(run, "readinessProbe")
        wait_until(lambda: pod_process.probe_ok(readiness, run.probes["readinessProbe"]["timeoutSeconds"]),
                   "the readiness probe", timeout=30)
        liveness = pod_process.probe_url(run, "livenessProbe")
        assert pod_process.probe_ok(liveness, run.probes["livenessProbe"]["timeoutSeconds"])
        # Everything is delivered before the stop, so the drain's commit is what is checked below.
        time.sleep(0.5)
    finally:
        code, took = pod_process.stop(process, run.grace_s)
    output = log.read_text()
    assert code == 0, output[-3000:]
    assert took < run.grace_s, took
    assert sorted(e["eventId"] for e in emulator.events(tracking_id)) == sorted(f"e{i}" for i in range(EVENTS))
    committed, ends = committed_and_end_offsets(stack.bootstrap, group_id, topic)
    assert committed == ends, (committed, ends)
