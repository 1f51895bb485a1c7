"""Kafka authentication that needs code rather than properties: AWS MSK IAM (SASL/OAUTHBEARER).

MSK's IAM auth takes a SigV4-presigned URL as the OAUTHBEARER token; the AWS signer library builds
it locally from the standard credential chain (IRSA, instance role, env), so no secret is stored in
the configuration. librdkafka calls the callback again before the token expires.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MSK_IAM_PROPERTIES = {"security.protocol": "SASL_SSL", "sasl.mechanism": "OAUTHBEARER"}


def msk_iam_oauth_cb(region: str) -> Callable[[str], tuple[str, float]]:
    """confluent-kafka's `oauth_cb`: (token, expiry in epoch seconds) for MSK in `region`."""
    from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

    def oauth_cb(_oauthbearer_config: str) -> tuple[str, float]:
        token, expiry_ms = MSKAuthTokenProvider.generate_auth_token(region)
        return token, expiry_ms / 1000

    return oauth_cb


class KafkaAuthError(Exception):
    """Authentication to Kafka cannot work with what this process has (said at start-up)."""


def confluent_auth_config(msk_iam_region: str | None) -> dict[str, Any]:
    """Client properties to add for the configured authentication (empty: properties only).

    Signs one token right away: without AWS credentials librdkafka would only report "OAuth token
    not set within 10 seconds" from inside the consumer's constructor.
    """
    if msk_iam_region is None:
        return {}
    oauth_cb = msk_iam_oauth_cb(msk_iam_region)
    try:
        oauth_cb("")
    except Exception as exc:
        raise KafkaAuthError(
            f"kafka.msk_iam_region: cannot sign an MSK IAM token for {msk_iam_region}: "
            f"{type(exc).__name__}: {exc} (AWS credentials come from the standard chain: "
            "environment, profile, IRSA web identity, instance role)"
        ) from None
    return {**MSK_IAM_PROPERTIES, "oauth_cb": oauth_cb}
