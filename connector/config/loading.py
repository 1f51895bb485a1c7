"""Loading the settings: the YAML file, then PKC_* variables over it, validated into `Settings`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    ValidationError,
)
from pydantic_settings import (
    SettingsError,
)

from connector.config.errors import ConfigError, describe_env_error, describe_validation_error
from connector.config.models import LOADING, Settings


def load_settings(path: str | Path | None, env: Mapping[str, str] | None = None) -> Settings:
    """Read the YAML file (if any), apply PKC_* overrides from `env` (default os.environ), validate."""
    data = _read_yaml(Path(path)) if path is not None else {}
    token = LOADING.set((data, env))
    try:
        return Settings()  # type: ignore[call-arg]  # required sections come from the sources
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, path)) from None
    except SettingsError as exc:  # a PKC_* variable of a list/dict/section that is not JSON
        raise ConfigError(describe_env_error(exc, os.environ if env is None else env)) from None
    finally:
        LOADING.reset(token)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        # Byte position only: the bytes around it may be part of a secret.
        raise ConfigError(f"{path} is not UTF-8 text (invalid byte at position {exc.start}); "
                          "YAML config files must be UTF-8") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections (kafka:, personalize:, ...), "
                          f"not a {type(data).__name__}")
    return data
