"""The chart installed the way users install it: `helm install/upgrade/rollback/uninstall` against a
real kube-apiserver with RBAC and Pod Security admission enforcing `restricted` (scripts/local-k8s),
the pods scheduled by kube-scheduler and reported Running by kwok (nothing runs in them here; the
admitted pod's process is run for real by test_pod_runs.py)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_support import CHART, CI_VALUES, FULLNAME, RELEASE, CommandError, Namespace, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("k8s")]

KINDS_OF_DEFAULT_INSTALL = {"ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceAccount"}


def assert_no_pod_security_warning(stderr: str) -> None:
    assert "PodSecurity" not in stderr and "would violate" not in stderr, stderr


def assert_all_stored(ns: Namespace) -> list[dict[str, Any]]:
    """Every object of the release's manifest is what the API server stores (kind, name)."""
    objects = ns.release_objects()
    for obj in objects:
        group, _, version = obj["apiVersion"].rpartition("/")
        kind = f"{obj['kind']}.{version}.{group}" if group else obj["kind"]  # kubectl's fully qualified form
        stored = ns.get(kind, obj["metadata"]["name"])
        assert stored["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
        assert stored["metadata"]["namespace"] == ns.name
    return objects


def assert_available(ns: Namespace) -> dict[str, Any]:
    deployment = ns.get("deployment")
    conditions = {c["type"]: c["status"] for c in deployment["status"].get("conditions", [])}
    assert conditions.get("Available") == "True", deployment["status"]
    assert deployment["status"].get("availableReplicas") == deployment["spec"]["replicas"]
    return deployment


def test_default_install_is_admitted_under_restricted_and_becomes_available(namespace: Namespace) -> None:
    result = namespace.install()
    assert_no_pod_security_warning(result.stderr)
    objects = assert_all_stored(namespace)
    assert {o["kind"] for o in objects} == KINDS_OF_DEFAULT_INSTALL
    assert_available(namespace)
    [pod] = namespace.running_pods()
    assert pod["spec"]["nodeName"] == namespace.cluster.info["K8S_NODE"]
    # The namespace really enforces `restricted`: the same pod as root is refused, not only warned about.
    root_pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "as-root"},
                "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": {"runAsUser": 0}}]}}
    with pytest.raises(CommandError, match="violates PodSecurity \"restricted:latest\""):
        namespace.cluster.kubectl("create", "-n", namespace.name, "-f", "-", stdin=yaml.safe_dump(root_pod))


@pytest.mark.parametrize("values", CI_VALUES, ids=[p.stem for p in CI_VALUES])
def test_every_ci_values_file_installs(namespace: Namespace, values: Path) -> None:
    result = namespace.install(values)
    assert_no_pod_security_warning(result.stderr)
    objects = assert_all_stored(namespace)
    kinds = {o["kind"] for o in objects}
    if "keda" in values.stem:  # the CRDs are installed by scripts/local-k8s (docs/kubernetes.md)
        assert {"ScaledObject", "TriggerAuthentication"} <= kinds
    if "self-hosted" in values.stem:
        assert "ServiceMonitor" in kinds
    assert_available(namespace)


def pod_checksums(ns: Namespace) -> dict[str, str]:
    annotations = ns.get("deployment")["spec"]["template"]["metadata"]["annotations"]
    return {k: v for k, v in annotations.items() if k.startswith("checksum/")}


def rolled_to(ns: Namespace, checksum: str) -> bool:
    """One Running pod, carrying this config checksum, and the Deployment settled on it."""
    pods = ns.running_pods()
    deployment = ns.get("deployment")
    status = deployment["status"]
    return (len(pods) == 1 and pods[0]["metadata"]["annotations"]["checksum/config"] == checksum
            and status.get("updatedReplicas") == 1 and status.get("availableReplicas") == 1
            and status.get("observedGeneration") == deployment["metadata"]["generation"])


def test_upgrade_rolls_the_pod_rollback_restores_it_uninstall_leaves_nothing(namespace: Namespace) -> None:
    credentials = {"kafkaCredentials": {"properties": {"sasl.username": "user", "sasl.password": "secret"}},
                   "schemaRegistryCredentials": {"basicAuthUser": "reg", "basicAuthPassword": "reg-secret"}}
    namespace.install(credentials)
    first = pod_checksums(namespace)
    [first_pod] = namespace.running_pods()
    assert {s["metadata"]["name"] for s in namespace.cluster.items("secrets", namespace.name,
                                                                   f"app.kubernetes.io/instance={RELEASE}")} \
        == {f"{FULLNAME}-kafka", f"{FULLNAME}-schema-registry"}

    namespace.helm("upgrade", "--wait", "--timeout", "180s",
                   values=(credentials, {"config": {"batching": {"linger_ms": 250}}}))
    second = pod_checksums(namespace)
    assert second["checksum/config"] != first["checksum/config"]
    assert second["checksum/secret"] == first["checksum/secret"]
    wait_until(lambda: rolled_to(namespace, second["checksum/config"]), "the upgrade's rollout")
    [second_pod] = namespace.running_pods()
    assert second_pod["metadata"]["name"] != first_pod["metadata"]["name"]
    assert "linger_ms: 250" in namespace.get("configmap")["data"]["config.yaml"]

    namespace.helm("rollback", "1", "--wait", "--timeout", "180s")
    assert pod_checksums(namespace) == first
    wait_until(lambda: rolled_to(namespace, first["checksum/config"]), "the rollback's rollout")
    assert "linger_ms: 1000" in namespace.get("configmap")["data"]["config.yaml"]

    namespace.helm("uninstall", "--wait", "--timeout", "120s")

    def leftovers() -> set[str]:
        names = namespace.cluster.kubectl(
            "get", "all,configmaps,secrets,serviceaccounts,poddisruptionbudgets,networkpolicies,endpointslices",
            "-n", namespace.name, "-o", "name").stdout.split()
        # Only what Kubernetes itself puts in every namespace may remain.
        return set(names) - {"configmap/kube-root-ca.crt", "serviceaccount/default"}

    # The ReplicaSets and pods go by the garbage collector, just after helm returns.
    wait_until(lambda: not leftovers(), "nothing of the release to remain")
    assert namespace.cluster.helm("list", "-aq", "--namespace", namespace.name).stdout.strip() == ""


# (values, the chart value its message must name). Each breaks one rule of `restricted`.
BREAKING_RESTRICTED: list[tuple[str, dict[str, Any], str]] = [
    ("root-user", {"podSecurityContext": {"runAsUser": 0}}, "podSecurityContext.runAsUser"),
    ("container-root-user", {"securityContext": {"runAsUser": 0}}, "securityContext.runAsUser"),
    ("may-run-as-root", {"securityContext": {"runAsNonRoot": False}}, "securityContext.runAsNonRoot"),
    ("privilege-escalation", {"securityContext": {"allowPrivilegeEscalation": True}},
     "securityContext.allowPrivilegeEscalation"),
    # privileged implies privilege escalation (the API server refuses privileged without it)
    ("privileged", {"securityContext": {"privileged": True, "allowPrivilegeEscalation": True}},
     "securityContext.privileged"),
    ("capabilities-kept", {"securityContext": {"capabilities": {"drop": []}}}, "securityContext.capabilities.drop"),
    ("capability-added", {"securityContext": {"capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}}},
     "securityContext.capabilities.add"),
    ("seccomp-unconfined", {"podSecurityContext": {"seccompProfile": {"type": "Unconfined"}}},
     "podSecurityContext.seccompProfile.type"),
    ("host-path", {"extraVolumes": [{"name": "host", "hostPath": {"path": "/var/run"}}],
                   "extraVolumeMounts": [{"name": "host", "mountPath": "/host"}]}, "extraVolumes[0]"),
]


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def pod_of(deployment: dict[str, Any], bad: dict[str, Any]) -> dict[str, Any]:
    """The Deployment's pod with the bad values applied by hand (what the chart refuses to render)."""
    template = copy.deepcopy(deployment["spec"]["template"])
    spec = template["spec"]
    container = spec["containers"][0]
    spec["securityContext"] = merged(spec["securityContext"], bad.get("podSecurityContext", {}))
    container["securityContext"] = merged(container["securityContext"], bad.get("securityContext", {}))
    spec.pop("serviceAccountName")  # the namespace's `default`: the chart's own is not installed
    spec["volumes"] += bad.get("extraVolumes", [])
    container["volumeMounts"] += bad.get("extraVolumeMounts", [])
    return {"apiVersion": "v1", "kind": "Pod", "spec": spec,
            "metadata": {"name": "by-hand", "labels": template["metadata"]["labels"]}}


@pytest.mark.parametrize(("bad", "value_named"), [(b, v) for _, b, v in BREAKING_RESTRICTED],
                         ids=[i for i, _, _ in BREAKING_RESTRICTED])
def test_values_breaking_restricted_are_refused_naming_the_value(
    namespace: Namespace, bad: dict[str, Any], value_named: str,
) -> None:
    with pytest.raises(CommandError) as refused:
        namespace.helm("install", "--wait", "--timeout", "60s", values=(bad,))
    message = str(refused.value)
    assert value_named in message and 'Pod Security "restricted"' in message, message
    assert namespace.cluster.helm("list", "-q", "--namespace", namespace.name).stdout.strip() == ""
    assert not namespace.cluster.items("deployments", namespace.name)
    # The API server agrees: the same pod, built by hand from the default render, is refused.
    default = yaml.safe_load_all(namespace.cluster.helm(
        "template", RELEASE, str(CHART), "--namespace", namespace.name, *namespace.values_args(),
        "--kube-version", namespace.cluster.info["K8S_VERSION"], "--show-only", "templates/deployment.yaml").stdout)
    [deployment] = [d for d in default if d]
    wait_until(lambda: namespace.cluster.items("serviceaccounts", namespace.name), "the default ServiceAccount")
    with pytest.raises(CommandError, match="violates PodSecurity \"restricted:latest\""):
        namespace.cluster.kubectl("create", "--dry-run=server", "-n", namespace.name, "-f", "-",
                                  stdin=yaml.safe_dump(pod_of(deployment, bad)))


def test_pdb_irsa_annotation_and_network_policy_are_what_the_api_server_stores(namespace: Namespace) -> None:
    role = "arn:aws:iam::123456789012:role/personalize-putevents"
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    namespace.install({
        "replicaCount": 2,
        "pdb": {"minAvailable": 1},
        "serviceAccount": {"roleArn": role, "annotations": {"team": "recs"}},
        "networkPolicy": {"enabled": True, "metricsFrom": [monitoring],
                          "egress": [{"ports": [{"port": 9092}, {"port": 443}]}]},
    })
    pdb = namespace.get("poddisruptionbudget")
    assert pdb["spec"]["minAvailable"] == 1 and "maxUnavailable" not in pdb["spec"]
    selector = pdb["spec"]["selector"]["matchLabels"]
    pods = namespace.running_pods()
    assert len(pods) == 2 and all(selector.items() <= p["metadata"]["labels"].items() for p in pods)
    # kube-controller-manager's disruption controller judges the budget against the real pods.
    wait_until(lambda: namespace.get("poddisruptionbudget")["status"].get("disruptionsAllowed") == 1,
               "the PDB to allow one disruption of two pods")

    account = namespace.get("serviceaccount")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == role
    assert account["metadata"]["annotations"]["team"] == "recs"
    assert account["automountServiceAccountToken"] is False
    assert {p["spec"]["serviceAccountName"] for p in pods} == {FULLNAME}
    assert all(p["spec"]["automountServiceAccountToken"] is False for p in pods)
    assert all(not any(v.get("projected") for v in p["spec"]["volumes"]) for p in pods)  # no token mounted

    policy = namespace.get("networkpolicy")["spec"]
    assert policy["podSelector"]["matchLabels"] == selector
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"] == [{"from": [monitoring], "ports": [{"port": "metrics", "protocol": "TCP"}]}]
    assert policy["egress"] == [
        {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
        {"ports": [{"port": 9092, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}]},
    ]
    # The port the policy admits is the one the pods declare.
    assert all(p["spec"]["containers"][0]["ports"][0]["name"] == "metrics" for p in pods)
