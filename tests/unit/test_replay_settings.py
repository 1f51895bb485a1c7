"""`dlq replay` reads the dead-letter topic as one route's only topic: the interactions route of
kafka.topics by default, or the route named with --route."""

from __future__ import annotations

import pytest

from connector.config import ActionInteractionsRoute, Settings
from connector.tools.replay import UsageError, replay_settings

ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ACTIONS"


def settings(**personalize: str) -> Settings:
    return Settings.model_validate({
        "kafka": {"bootstrap_servers": "b", "topics": ["clicks"] if personalize else [], "group_id": "g"},
        "personalize": personalize,
        "dlq": {"topic": "shared-dlq", "max_consecutive_failures": 5},
        "routes": [
            {"name": "offers", "destination": "actions", "topics": ["actions"], "dataset_arn": ARN},
            {"name": "offer-clicks", "destination": "action_interactions", "topics": ["ai"],
             "tracking_id": "action-tracker", "dlq_topic": "ai-dlq", "mapping": {"action_id": "offer.id"}},
        ],
    })


def test_by_default_the_dead_letters_are_the_interactions_route_and_the_others_are_left_out() -> None:
    replaying = replay_settings(settings(tracking_id="t"), "shared-dlq", "g.dlq-replay")
    assert replaying.kafka.topics == ["shared-dlq"] and replaying.kafka.group_id == "g.dlq-replay"
    assert replaying.routes == [] and replaying.dlq.topic == "shared-dlq"
    assert replaying.dlq.max_consecutive_failures == 0 and replaying.dlq.max_failure_ratio == 0


def test_without_a_tracker_the_default_replay_is_refused() -> None:
    with pytest.raises(UsageError, match=r"personalize\.tracking_id is required"):
        replay_settings(settings(), "shared-dlq", "g.dlq-replay")


def test_a_named_route_reads_the_dead_letters_with_its_own_destination_and_mapping() -> None:
    replaying = replay_settings(settings(), "ai-dlq", "g.dlq-replay", "offer-clicks")
    [route] = replaying.effective_routes()
    assert isinstance(route, ActionInteractionsRoute)
    assert (route.name, route.topics, route.tracking_id) == ("offer-clicks", ["ai-dlq"], "action-tracker")
    assert route.mapping.action_id == "offer.id" and route.dlq_topic == "ai-dlq"
    assert replaying.kafka.topics == [] and replaying.dlq.topic == "ai-dlq"


def test_a_route_without_its_own_dead_letter_topic_fails_again_into_dlq_topic() -> None:
    [route] = replay_settings(settings(), "shared-dlq", "g", "offers").effective_routes()
    assert route.topics == ["shared-dlq"] and route.dlq_topic == "shared-dlq"


def test_an_unknown_route_is_a_usage_error_naming_the_routes() -> None:
    with pytest.raises(UsageError, match=r"--route 'sofa': no such route .* \(they are: offers, offer-clicks\)"):
        replay_settings(settings(), "ai-dlq", "g", "sofa")
