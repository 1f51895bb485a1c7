"""Logs carry no secrets and no raw user or item ids (personal data in the AWS model)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from fixtures.pipeline import (
    canonical_schema,
    confluent_frame,
    connector_config,
    produce_raw,
    register,
    run_cli,
    write_config,
)

pytestmark = pytest.mark.integration

SCHEMA = canonical_schema()


def _event(i: int, marker: str, **extra: Any) -> dict[str, Any]:
    return {"eventId": f"e{i}", "trackingId": None, "sessionId": f"s{i % 3}", "userId": f"user-{marker}-{i % 3}",
            "eventType": "view", "eventValue": None, "itemId": f"item-{marker}-{i}", "properties": {},
            "sentAt": 1_700_000_000_000 + i, "recommendationId": None, "impression": [],
            "eventAttributionSource": None, **extra}


def test_logs_show_ids_only_hashed_and_never_secrets(
    stack: Any, new_topic: Any, group_id: str, registry_client: Any, start_emulator: Any, tracking_id: str,
    aws_env: None, tmp_path: Path,
) -> None:
    marker = uuid.uuid4().hex[:10]  # appears in every user and item id
    emulator = start_emulator()
    emulator.set_faults(reject_item_ids=[f"item-{marker}-4"])  # the service's message names the item
    topic = new_topic(partitions=1)
    schema_id = register(registry_client, f"{topic}-value", SCHEMA)
    values = [_event(i, marker) for i in range(10)]
    values[6]["properties"] = {"userId": f"user-{marker}-x"}  # a reserved key: dead-lettered at validate
    produce_raw(stack.bootstrap, topic, [(v["sessionId"].encode(), confluent_frame(schema_id, SCHEMA, v))
                                         for v in values])
    secret = f"s3cr3t-{marker}"
    registry_url = stack.registry_url.replace("http://", f"http://reader:{secret}@")
    config = connector_config(bootstrap=stack.bootstrap, registry_url=registry_url, emulator_url=emulator.url,
                              topics=[topic], group_id=group_id, tracking_id=tracking_id,
                              dlq_topic=new_topic(partitions=1, suffix="dlq"),
                              observability={"log_format": "json", "metrics_port": 0})
    result = run_cli(write_config(tmp_path, config), "--exit-when-idle", "3", "--log-level", "DEBUG",
                     "--log-format", "json")
    assert result.returncode == 0, result.stderr[-3000:]
    logs = result.stderr
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert any("dead-lettering" in line["message"] for line in lines), logs[-3000:]
    assert marker not in logs  # no raw user/item id, in any of the messages
    assert secret not in logs  # nor the registry credentials from the URL
    assert len(emulator.events(tracking_id)) == 8
