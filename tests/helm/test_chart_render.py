"""The rendered manifests: what the Deployment runs, how config and secrets reach the connector, scaling."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import CI_VALUES, FULLNAME, Manifests, Renderer

from connector.config import ConfigError, Settings, load_settings

CI_IDS = [p.stem for p in CI_VALUES]
ALL_VALUES: list[Path | None] = [None, *CI_VALUES]
ALL_IDS = ["default", *CI_IDS]

BASE: dict[str, Any] = {
    "config": {
        "kafka": {"bootstrap_servers": "broker:9092", "topics": ["interactions"]},
        "personalize": {"tracking_id": "tracker-1"},
    }
}


def merged(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Dicts merged the way several `--values` files are (later wins, maps merge recursively)."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), dict):
                out[key] = merged(out[key], value)
            else:
                out[key] = value
    return out


def coalesce(defaults: Mapping[str, Any], user: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's user-over-chart-defaults rule: a user null deletes a key the defaults have, else stays null."""
    out = dict(defaults)
    for key, value in user.items():
        if value is None and key in defaults:
            del out[key]
        elif isinstance(value, Mapping) and isinstance(defaults.get(key), Mapping):
            out[key] = coalesce(defaults[key], value)
        else:
            out[key] = value
    return out


def values_of(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def render_file(render: Renderer, path: Path | None) -> Manifests:
    return render(path) if path is not None else render()


def pod_env(m: Manifests, existing: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, str]:
    """The container's environment as the kubelet would build it, Secrets resolved.

    Secrets rendered by the chart are decoded; `existing` stands for Secrets the user created.
    """
    secrets = {s["metadata"]["name"]: s.get("data", {}) for s in m.of_kind("Secret")}
    env: dict[str, str] = {}
    for var in m.container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        ref = var["valueFrom"]["secretKeyRef"]
        if ref["name"] in secrets:
            data = secrets[ref["name"]]
            assert ref["key"] in data, f"{var['name']} refers to a key the chart's Secret lacks: {ref}"
            env[var["name"]] = base64.b64decode(data[ref["key"]]).decode()
        elif existing and ref["key"] in existing.get(ref["name"], {}):
            env[var["name"]] = existing[ref["name"]][ref["key"]]
        else:
            assert ref.get("optional") or existing is None, f"{var['name']}: no such Secret key {ref}"
    return env


def load_rendered(m: Manifests, tmp_path: Path, env: Mapping[str, str] | None = None) -> Settings:
    path = tmp_path / "config.yaml"
    path.write_text(m.config_text)
    return load_settings(path, env=dict(env or {}))


# ---- the pod ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("values", ALL_VALUES, ids=ALL_IDS)
def test_pod_is_hardened(render: Renderer, values: Path | None) -> None:
    m = render_file(render, values)
    pod_sc = m.pod["securityContext"]
    assert pod_sc["runAsNonRoot"] is True
    assert pod_sc["runAsUser"] != 0
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = m.container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sc["runAsNonRoot"] is True
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    # The read-only root filesystem needs a writable /tmp.
    tmp_mounts = [v for v in m.container["volumeMounts"] if v["mountPath"] == "/tmp"]
    assert len(tmp_mounts) == 1
    (tmp_volume,) = [v for v in m.pod["volumes"] if v["name"] == tmp_mounts[0]["name"]]
    assert "emptyDir" in tmp_volume
    assert m.pod["automountServiceAccountToken"] is False
    assert m.container["resources"]["requests"] and m.container["resources"]["limits"]["memory"]


@pytest.mark.parametrize("values", ALL_VALUES, ids=ALL_IDS)
def test_runs_the_connector_with_the_mounted_config_and_probes_its_health_endpoints(
    render: Renderer, values: Path | None
) -> None:
    m = render_file(render, values)
    c = m.container
    assert c["args"][:3] == ["run", "--config", "/etc/personalize-connector/config.yaml"]
    assert "command" not in c  # the image's ENTRYPOINT (personalize-connector) stays
    (mount,) = [v for v in c["volumeMounts"] if v["mountPath"] == "/etc/personalize-connector/config.yaml"]
    (volume,) = [v for v in m.pod["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == m.one("ConfigMap")["metadata"]["name"]
    assert mount["subPath"] == "config.yaml"

    port = m.config["observability"]["metrics_port"]
    (container_port,) = c["ports"]
    assert container_port == {"name": "metrics", "containerPort": port, "protocol": "TCP"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    service = m.one("Service")
    assert service["spec"]["ports"][0]["port"] == port
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert service["spec"]["selector"].items() <= m.deployment["spec"]["template"]["metadata"]["labels"].items()


def test_probes_can_be_tuned_and_switched_off(render: Renderer) -> None:
    m = render(BASE, {"livenessProbe": {"periodSeconds": 3}, "startupProbe": {"enabled": False}})
    assert m.container["livenessProbe"]["periodSeconds"] == 3
    assert "enabled" not in m.container["livenessProbe"]
    assert "startupProbe" not in m.container


@pytest.mark.parametrize(("grace", "margin", "expected"), [(30, 15, 45), (12.5, 15, 28), (0, 5, 5)])
def test_termination_grace_covers_the_connectors_drain(
    render: Renderer, grace: float, margin: int, expected: int
) -> None:
    m = render(BASE, {"config": {"shutdown": {"grace_period_s": grace}}, "terminationGraceMarginSeconds": margin})
    assert m.pod["terminationGracePeriodSeconds"] == expected
    assert m.config["shutdown"]["grace_period_s"] == grace


def test_default_image_is_the_charts_app_version(render: Renderer) -> None:
    chart = yaml.safe_load((Path(__file__).parents[2] / "helm/personalize-connector/Chart.yaml").read_text())
    assert render().container["image"].endswith(f":{chart['appVersion']}")
    digest = "sha256:" + "a" * 64
    assert render({"image": {"digest": digest}}).container["image"].endswith(f"@{digest}")


# ---- config and secrets -----------------------------------------------------------------------------


@pytest.mark.parametrize("values", ALL_VALUES, ids=ALL_IDS)
def test_configmap_is_the_values_config_and_the_connector_loads_it(
    render: Renderer, chart_values: dict[str, Any], values: Path | None, tmp_path: Path
) -> None:
    m = render_file(render, values)
    asked = coalesce(chart_values["config"], values_of(values).get("config", {}))
    rendered = m.config
    rate = rendered["personalize"].pop("max_requests_per_second")
    assert rate > 0
    assert rendered == asked

    env: dict[str, str] = {}
    if values is None:
        # The defaults leave the tracker empty on purpose: the connector refuses to start, naming it.
        with pytest.raises(ConfigError, match=r"personalize\.tracking_id: String should have at least 1"):
            load_rendered(m, tmp_path)
        env = {"PKC_PERSONALIZE__TRACKING_ID": "tracker-1"}
        asked["personalize"]["tracking_id"] = "tracker-1"
    settings = load_rendered(m, tmp_path, env)
    dumped = settings.model_dump(mode="json")
    for section, keys in asked.items():
        for key, value in keys.items():
            assert dumped[section][key] == value, f"{section}.{key}"
    assert settings.personalize.max_requests_per_second == rate


def test_null_in_values_reaches_the_connector_as_null(render: Renderer, tmp_path: Path) -> None:
    m = render(BASE, {"config": {"mapping": {"item_id": None, "event_type": None, "event_type_default": "click"}}})
    settings = load_rendered(m, tmp_path)
    assert settings.mapping.item_id is None
    assert settings.mapping.event_type is None
    assert settings.mapping.event_type_default == "click"


def test_inline_credentials_go_to_secrets_and_reach_the_connector_through_env(
    render: Renderer, tmp_path: Path
) -> None:
    kafka_password = "kafka-s3cr3t-Ω\"'$(x)"
    registry_password = "registry-s3cr3t"
    token = "bearer-s3cr3t"
    m = render(
        BASE,
        {
            "config": {"kafka": {"config": {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"}}},
            "kafkaCredentials": {"properties": {"sasl.username": "kafka-user", "sasl.password": kafka_password}},
            "schemaRegistryCredentials": {
                "basicAuthUser": "sr-user", "basicAuthPassword": registry_password, "bearerToken": token,
            },
        },
    )
    for secret in (kafka_password, registry_password, token, "kafka-user", "sr-user"):
        assert secret not in m.config_text
        assert secret not in yaml.safe_dump(m.deployment)
    assert {s["metadata"]["name"] for s in m.of_kind("Secret")} == {f"{FULLNAME}-kafka", f"{FULLNAME}-schema-registry"}

    env = pod_env(m)
    assert env["PKC_KAFKA__CONFIG__sasl.password"] == kafka_password
    settings = load_rendered(m, tmp_path, env)
    assert settings.kafka.config == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "kafka-user",
        "sasl.password": kafka_password,
    }
    assert settings.schema_registry.basic_auth_user == "sr-user"
    assert settings.schema_registry.basic_auth_password is not None
    assert settings.schema_registry.basic_auth_password.get_secret_value() == registry_password
    assert settings.schema_registry.bearer_token is not None
    assert settings.schema_registry.bearer_token.get_secret_value() == token


def test_existing_secrets_are_referenced_not_created(render: Renderer, tmp_path: Path) -> None:
    values = Path(__file__).parents[2] / "helm/personalize-connector/ci/confluent-cloud-values.yaml"
    m = render(values)
    assert not m.has("Secret")
    existing = {
        "pkc-kafka": {"sasl.username": "API_KEY", "sasl.password": "API_SECRET"},
        "pkc-schema-registry": {"basic-auth-user": "SR_KEY", "basic-auth-password": "SR_SECRET"},
    }
    env = pod_env(m, existing)
    settings = load_rendered(m, tmp_path, env)
    assert settings.kafka.config["sasl.username"] == "API_KEY"
    assert settings.kafka.config["sasl.password"] == "API_SECRET"
    assert settings.kafka.config["sasl.mechanism"] == "PLAIN"
    assert settings.schema_registry.basic_auth_user == "SR_KEY"
    assert settings.schema_registry.basic_auth_password is not None
    assert settings.schema_registry.basic_auth_password.get_secret_value() == "SR_SECRET"
    assert settings.schema_registry.bearer_token is None  # optional key absent from the Secret
    refs = [v["valueFrom"]["secretKeyRef"] for v in m.container["env"] if "valueFrom" in v]
    assert all(r["optional"] for r in refs if r["name"] == "pkc-schema-registry")


def test_existing_kafka_secret_with_other_key_names(render: Renderer) -> None:
    m = render(BASE, {"kafkaCredentials": {"existingSecret": "mine", "existingSecretKeys": {"sasl.password": "pw"}}})
    env = {v["name"]: v["valueFrom"]["secretKeyRef"] for v in m.container["env"] if "valueFrom" in v}
    assert env == {"PKC_KAFKA__CONFIG__sasl.password": {"name": "mine", "key": "pw"}}


@pytest.mark.parametrize("prop", ["sasl.password", "ssl.key.password", "sasl.oauthbearer.client.secret",
                                  "sasl.jaas.config"])
def test_credentials_in_the_configmap_are_refused(render: Renderer, prop: str) -> None:
    message = render.error(BASE, {"config": {"kafka": {"config": {prop: "x"}}}})
    assert f"config.kafka.config.{prop} looks like a credential" in message
    assert "kafkaCredentials" in message


@pytest.mark.parametrize("key", ["basic_auth_password", "bearer_token"])
def test_registry_secrets_are_not_config_keys(render: Renderer, key: str) -> None:
    message = render.error(BASE, {"config": {"schema_registry": {key: "x"}}})
    assert f"additional properties '{key}' not allowed" in message


def test_checksum_changes_with_the_config_only(render: Renderer) -> None:
    def checksums(*extra: Mapping[str, Any]) -> tuple[str, str]:
        annotations = render(BASE, *extra).deployment["spec"]["template"]["metadata"]["annotations"]
        return annotations["checksum/config"], annotations["checksum/secret"]

    config, secret = checksums()
    assert len(config) == 64
    assert checksums({"config": {"batching": {"linger_ms": 5}}})[0] != config
    assert checksums({"personalize": {"quotaRequestsPerSecond": 10}})[0] != config  # the computed rate
    assert checksums({"resources": {"requests": {"cpu": "1"}}}) == (config, secret)
    changed = checksums({"kafkaCredentials": {"properties": {"sasl.password": "new"}}})
    assert changed[0] == config
    assert changed[1] != secret


# ---- identity ---------------------------------------------------------------------------------------


def test_service_account_carries_the_irsa_role(render: Renderer) -> None:
    role = "arn:aws:iam::123456789012:role/personalize-connector"
    m = render(BASE, {"serviceAccount": {"roleArn": role, "annotations": {"team": "recs"}}})
    sa = m.one("ServiceAccount")
    assert sa["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": role, "team": "recs"}
    assert m.pod["serviceAccountName"] == sa["metadata"]["name"]
    assert render(BASE).one("ServiceAccount")["metadata"].get("annotations") is None


def test_existing_service_account(render: Renderer) -> None:
    m = render(BASE, {"serviceAccount": {"create": False, "name": "shared"}})
    assert not m.has("ServiceAccount")
    assert m.pod["serviceAccountName"] == "shared"


def test_invalid_role_arn_is_refused(render: Renderer) -> None:
    assert "/serviceAccount/roleArn" in render.error(BASE, {"serviceAccount": {"roleArn": "my-role"}})


# ---- scaling and the PutEvents rate -----------------------------------------------------------------


def test_fixed_replicas(render: Renderer) -> None:
    m = render(BASE, {"replicaCount": 3})
    assert m.deployment["spec"]["replicas"] == 3
    assert not m.has("ScaledObject")
    assert not m.has("HorizontalPodAutoscaler")
    # A rollout never runs more pods than the rate was divided by.
    assert m.deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0


def test_keda_owns_the_replica_count_and_scales_on_consumer_lag(render: Renderer) -> None:
    values = Path(__file__).parents[2] / "helm/personalize-connector/ci/keda-values.yaml"
    asked = values_of(values)
    m = render(values)
    assert "replicas" not in m.deployment["spec"]
    assert not m.has("HorizontalPodAutoscaler")
    so = m.one("ScaledObject")
    assert so["apiVersion"] == "keda.sh/v1alpha1"
    assert so["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": FULLNAME}
    assert so["spec"]["maxReplicaCount"] == asked["keda"]["maxReplicaCount"]
    (trigger,) = so["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert meta["bootstrapServers"] == asked["config"]["kafka"]["bootstrap_servers"]
    assert meta["consumerGroup"] == m.config["kafka"]["group_id"]
    assert meta["lagThreshold"] == str(asked["keda"]["lagThreshold"])
    assert meta["sasl"] == "scram_sha512"  # from sasl.mechanism SCRAM-SHA-512
    assert "tls" not in meta  # SASL_PLAINTEXT
    assert all(isinstance(v, str) for v in meta.values())
    auth = m.one("TriggerAuthentication")
    assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    assert refs == {"username": ("pkc-kafka", "sasl.username"), "password": ("pkc-kafka", "sasl.password")}


def test_keda_without_credentials_has_no_trigger_authentication(render: Renderer) -> None:
    m = render(BASE, {"keda": {"enabled": True},
                      "config": {"kafka": {"config": {"security.protocol": "SSL"}}}})
    (trigger,) = m.one("ScaledObject")["spec"]["triggers"]
    assert "authenticationRef" not in trigger
    assert trigger["metadata"]["tls"] == "enable"
    assert "sasl" not in trigger["metadata"]
    assert not m.has("TriggerAuthentication")


def test_hpa_owns_the_replica_count(render: Renderer) -> None:
    m = render(BASE, {"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 5}})
    assert "replicas" not in m.deployment["spec"]
    hpa = m.one("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == FULLNAME
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)


def test_keda_and_hpa_are_exclusive(render: Renderer) -> None:
    message = render.error(BASE, {"keda": {"enabled": True}, "autoscaling": {"enabled": True}})
    assert "keda.enabled and autoscaling.enabled are mutually exclusive" in message


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"replicaCount": 3},
        {"replicaCount": 0},
        {"replicaCount": 7, "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 6}},
        {"replicaCount": 7, "keda": {"enabled": True, "minReplicaCount": 0, "maxReplicaCount": 8}},
    ],
    ids=["default", "replicas-3", "replicas-0", "hpa-max-6", "keda-max-8"],
)
@pytest.mark.parametrize("quota", [1000, 999, 10.5])
def test_every_pod_is_given_the_group_quota_as_is(render: Renderer, extra: dict[str, Any], quota: float) -> None:
    """No division by replicas: the pods share the quota through the consumer group's assignment
    (a split by the maximum replica count left most of it unused below the maximum)."""
    m = render(BASE, {"personalize": {"quotaRequestsPerSecond": quota}}, extra)
    assert m.config["personalize"]["max_requests_per_second"] == quota


def test_rate_cannot_be_set_directly(render: Renderer) -> None:
    message = render.error(BASE, {"config": {"personalize": {"max_requests_per_second": 5}}})
    assert "additional properties 'max_requests_per_second' not allowed" in message


# ---- availability, monitoring, network ----------------------------------------------------------------


def test_pdb(render: Renderer) -> None:
    pdb = render(BASE).one("PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= render(BASE).deployment["spec"]["selector"][
        "matchLabels"].items()
    assert render(BASE, {"pdb": {"minAvailable": 2}}).one("PodDisruptionBudget")["spec"] == {
        "minAvailable": 2, "selector": pdb["spec"]["selector"]}
    assert not render(BASE, {"pdb": {"enabled": False}}).has("PodDisruptionBudget")


def test_service_monitor(render: Renderer) -> None:
    assert not render(BASE).has("ServiceMonitor")
    sm = render(BASE, {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}).one("ServiceMonitor")
    assert sm["metadata"]["labels"]["release"] == "prom"
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"


def test_network_policy(render: Renderer) -> None:
    assert not render(BASE).has("NetworkPolicy")
    ingress_only = render(BASE, {"networkPolicy": {"enabled": True}}).one("NetworkPolicy")["spec"]
    assert ingress_only["policyTypes"] == ["Ingress"]
    assert ingress_only["ingress"] == [{"ports": [{"port": "metrics", "protocol": "TCP"}]}]
    egress = render(BASE, {"networkPolicy": {"enabled": True, "egress": [{"ports": [{"port": 9092}]}]}})
    spec = egress.one("NetworkPolicy")["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert {"port": 53, "protocol": "UDP"} in spec["egress"][0]["ports"]
    assert spec["egress"][1] == {"ports": [{"port": 9092}]}


def test_notes_tell_how_to_check_the_flow(render: Renderer) -> None:
    notes = render.notes(BASE)
    assert f"port-forward service/{FULLNAME} 9400:9400" in notes
    for what in ("pkc_events_delivered_total", "pkc_dead_letters_total", "kafka-consumer-groups.sh",
                 "--group personalize-connector", "1000 requests/s for the whole consumer group"):
        assert what in notes
    assert "WARNING" not in notes
    assert "tracking_id is empty" in render.notes()
    keda = render.notes(BASE, {"keda": {"enabled": True, "maxReplicaCount": 4}})
    assert "1000 requests/s for the whole consumer group" in keda  # not divided by the 4 pods
    assert "scaled by KEDA on consumer-group lag" in keda
