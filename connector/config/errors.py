"""Configuration errors, worded for the person who wrote the file: each offending key as a dotted
path (`batching.max_events_per_call`), what it allows, and never a secret's value."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import annotated_types
from pydantic import (
    BaseModel,
    ValidationError,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    SettingsError,
)

from connector.config.models import ENV_NESTED_DELIMITER, ENV_PREFIX, Settings
from connector.logs import mask_url_credentials


class ConfigError(Exception):
    """The configuration cannot be used; the message names every offending key."""




def describe_env_error(exc: SettingsError, env: Mapping[str, str]) -> str:
    """Name the PKC_* variable(s) whose value should be JSON and is not (never their values: they may
    hold secrets). pydantic-settings only says which top-level section failed."""
    problems = []
    for name, value in sorted(env.items()):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        loc = name[len(ENV_PREFIX):].lower().split(ENV_NESTED_DELIMITER)
        field = _field_at(loc)
        if field is None or not _takes_json(field.annotation):
            continue
        try:
            json.loads(value)
        except ValueError as error:
            problems.append(f"environment variable {name} (sets {'.'.join(loc)}) is not valid JSON: {error}")
    # One line: this is what `run` and `check` print before exiting.
    return "; ".join(problems) or f"cannot read the {ENV_PREFIX}* environment variables: {exc}"


def _takes_json(annotation: Any) -> bool:
    """Whether pydantic-settings decodes a variable for this field as JSON (lists, dicts, sections)."""
    if _models_in(annotation) or get_origin(annotation) in (list, dict):
        return True
    return any(_takes_json(arg) for arg in get_args(annotation))


def describe_validation_error(exc: ValidationError, path: str | Path | None) -> str:
    where = f" in {path}" if path is not None else ""
    lines = [f"invalid configuration{where} ({exc.error_count()} problem(s)):"]
    keys_told: set[str] = set()
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error["loc"]]
        field = _field_at(loc)
        key = _dotted(loc)
        # A value of neither member of `Literal["auto"] | int` fails both: one line says both.
        if error["type"] == "literal_error" and key in keys_told:
            continue
        keys_told.add(key)
        if error["type"] == "extra_forbidden":
            keys = ", ".join(_allowed_keys(loc[:-1]))
            lines.append(f"  {key}: unknown key; allowed keys here: {keys}")
            continue
        message = error["msg"].removeprefix("Value error, ")
        # A rule across sections names its key at the start of its message.
        if not loc and (named := re.match(r"^([\w.]+): (.*)$", message, re.DOTALL)):
            key, message = named.groups()
        # Literal errors already list the choices.
        allowed = _allowed_values(field) if field is not None and error["type"] != "literal_error" else None
        if allowed:
            message += f" (allowed: {allowed})"
        if field is not None and not _is_secret(field) and isinstance(error.get("input"), str | int | float):
            message += f"; got {error['input']!r}"
        lines.append(f"  {key}: {message}")
    return mask_url_credentials("\n".join(lines))


def _dotted(loc: list[str]) -> str:
    # Drop pydantic's union/type tags ("function-after[...]", "str", "int") from the path.
    parts = [p for p in loc if not ("[" in p or p in {"str", "int", "float", "bool", "list", "dict"}
                                    or p.startswith("constrained-"))]
    return ".".join(parts) or "(top level)"


def _walk(loc: list[str]) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """The model and field a pydantic error location points at, through lists and tagged unions."""
    model: type[BaseModel] | None = Settings
    field: FieldInfo | None = None
    for part in loc:
        if model is not None and part in model.model_fields:
            field = model.model_fields[part]
            model = _model_in(field.annotation)
        elif part.isdigit() or "[" in part or part.startswith("constrained-"):
            continue  # a list index or a pydantic type tag: same field
        elif field is not None and (tagged := _tagged_model(field.annotation, part)) is not None:
            model = tagged  # a discriminated union's tag, e.g. routes.0.items
        else:
            return None, None
    return model, field


def _field_at(loc: list[str]) -> FieldInfo | None:
    return _walk(loc)[1]


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    models = _models_in(annotation)
    return models[0] if models else None


def _tagged_model(annotation: Any, tag: str) -> type[BaseModel] | None:
    for model in _models_in(annotation):
        destination = model.model_fields.get("destination")
        if destination is not None and tag in _literal_args(destination.annotation):
            return model
    return None


def _allowed_keys(loc: list[str]) -> list[str]:
    model, _ = _walk(loc)
    return sorted(model.model_fields) if model is not None else []


def _allowed_values(field: FieldInfo) -> str | None:
    """'confluent | kafka-python', '1..10', '> 0', "'auto' | 1..256" from the field's Literal and
    numeric constraints."""
    literal = " | ".join(repr(v) for v in _literal_args(field.annotation))
    numbers = _range(field)
    return " | ".join(part for part in (literal, numbers) if part) or None


def _range(field: FieldInfo) -> str | None:
    lo: str | None = None
    hi: str | None = None
    for meta in [*field.metadata, *_nested_metadata(field.annotation)]:
        if isinstance(meta, annotated_types.Ge):
            lo = f"{meta.ge}.."
        elif isinstance(meta, annotated_types.Gt):
            lo = f"> {meta.gt}"
        elif isinstance(meta, annotated_types.Le):
            hi = f"{meta.le}"
        elif isinstance(meta, annotated_types.MinLen) and meta.min_length:
            lo = f"length {meta.min_length}.."
        elif isinstance(meta, annotated_types.MaxLen):
            hi = f"{meta.max_length}"
    if lo and hi:
        return f"{lo}{hi}" if lo.endswith("..") else f"{lo}, <= {hi}"
    if lo:
        return lo.removesuffix("..").join(("", " or more")) if lo.endswith("..") else lo
    return f"at most {hi}" if hi else None


def _literal_args(annotation: Any) -> tuple[Any, ...]:
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    for arg in get_args(annotation):
        found = _literal_args(arg)
        if found:
            return found
    return ()


def _nested_metadata(annotation: Any) -> list[Any]:
    # `Annotated[int, Field(...)] | None` keeps its constraints inside the union member.
    out: list[Any] = []
    for arg in get_args(annotation):
        for meta in getattr(arg, "__metadata__", ()):
            out.extend(meta.metadata if isinstance(meta, FieldInfo) else [meta])
    return out


def _is_secret(field: FieldInfo) -> bool:
    return "SecretStr" in repr(field.annotation)
