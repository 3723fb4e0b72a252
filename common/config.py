"""Loading YAML configuration files with errors a person can act on: the file, the field and the reason."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)
# libyaml's parser when PyYAML was built with it (its wheels are, on x86 and on the Pi's arm64): reading the
# site files of 7,692 schools took 10 s with the pure-Python one.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file, the field and the reason."""


def load_yaml_model(path: Path, model: type[Model]) -> Model:
    """Read ``path`` and validate it as ``model``; `ConfigError` names the file, field and reason."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the file ({error.strerror})") from None
    try:
        data = yaml.load(text, Loader=_SAFE_LOADER)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"{path}: not valid YAML{line}: {getattr(error, 'problem', error)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of fields at the top, found {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{path}: {describe_validation_error(error)}") from None


def describe_validation_error(error: ValidationError, limit: int = 5) -> str:
    """``field.path: reason`` for the first few errors of a pydantic validation."""
    parts = []
    for item in error.errors()[:limit]:
        where = ".".join(str(part) for part in item["loc"]) or "(top)"
        parts.append(f"field '{where}': {item['msg']}")
    more = error.error_count() - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
