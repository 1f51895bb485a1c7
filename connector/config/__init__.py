"""One typed settings model: a YAML file, overridden key by key by `PKC_<SECTION>__<KEY>` variables.

    models   the sections and `Settings` (every key, its default, its rules)
    loading  `load_settings`: the file, then the variables over it, validated
    errors   `ConfigError`, and the messages that name each offending key
"""

from connector.config.errors import ConfigError
from connector.config.loading import load_settings
from connector.config.models import (
    ENTITY_REQUESTS_PER_SECOND,
    ENV_NESTED_DELIMITER,
    ENV_PREFIX,
    MASK,
    SAFE_KAFKA_CONFIG_KEYS,
    ActionInteractionMappingConfig,
    ActionInteractionsRoute,
    AnyRoute,
    BatchingConfig,
    DecodeConfig,
    DlqConfig,
    EntityMappingConfig,
    EntityRoute,
    EventsRoute,
    GlueConfig,
    KafkaConfig,
    MappingConfig,
    ObservabilityConfig,
    PersonalizeConfig,
    RouteConfig,
    SchemaRegistryConfig,
    Settings,
    ShutdownConfig,
)

__all__ = [
    "ENTITY_REQUESTS_PER_SECOND", "ENV_NESTED_DELIMITER", "ENV_PREFIX", "MASK", "SAFE_KAFKA_CONFIG_KEYS",
    "ActionInteractionMappingConfig", "ActionInteractionsRoute", "AnyRoute",
    "BatchingConfig", "ConfigError", "DecodeConfig", "DlqConfig", "EntityMappingConfig", "EntityRoute",
    "EventsRoute", "GlueConfig", "KafkaConfig", "MappingConfig", "ObservabilityConfig", "PersonalizeConfig",
    "RouteConfig", "SchemaRegistryConfig", "Settings", "ShutdownConfig", "load_settings",
]
