"""How schema_registry settings become confluent-kafka SchemaRegistryClient configuration.

Basic auth and bearer tokens cannot be exercised against the local Apicurio (its auth needs an
OIDC server); HTTPS with a custom CA bundle is tested for real in
tests/integration/test_secure_kafka.py::test_the_registry_over_https_with_a_custom_ca_bundle.
"""

from __future__ import annotations

from pathlib import Path

from connector.app import registry_client, registry_client_config
from connector.config import Settings, load_settings


def _settings(tmp_path: Path, registry: str) -> Settings:
    path = tmp_path / "c.yaml"
    path.write_text(f"kafka: {{bootstrap_servers: b, topics: [t]}}\npersonalize: {{tracking_id: t}}\n"
                    f"schema_registry: {registry}\n")
    return load_settings(path, env={})


def test_basic_auth_ca_bundle_and_short_timeouts(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("a CA bundle")
    registry = (f"{{url: 'https://r.example.com', basic_auth_user: key, basic_auth_password: s3cret, "
                f"ca_location: {ca}}}")
    conf = registry_client_config(_settings(tmp_path, registry))
    assert conf == {"url": "https://r.example.com", "timeout": 5, "max.retries": 1, "retries.wait.ms": 100,
                    "basic.auth.user.info": "key:s3cret", "ssl.ca.location": str(ca)}


def test_a_bearer_token(tmp_path: Path) -> None:
    conf = registry_client_config(_settings(tmp_path, "{url: 'https://r.example.com', bearer_token: tok}"))
    assert conf is not None
    assert conf["bearer.auth.credentials.source"] == "STATIC_TOKEN" and conf["bearer.auth.token"] == "tok"


def test_the_client_accepts_the_configuration(tmp_path: Path) -> None:
    client = registry_client(_settings(tmp_path, "{url: 'http://localhost:1', basic_auth_user: k, "
                                                 "basic_auth_password: p}"))
    assert client is not None


def test_no_url_means_no_registry(tmp_path: Path) -> None:
    assert registry_client_config(_settings(tmp_path, "{}")) is None
