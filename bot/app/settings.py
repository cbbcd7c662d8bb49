"""Loads `config/settings.yaml` and applies `SIETCH_<SECTION>_<KEY>` environment overrides."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PATH = Path("config/settings.yaml")
ENV_PREFIX = "SIETCH_"


class SettingsError(Exception):
    """The settings file or an override is unusable; the message says which and why."""


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings as nested dicts. Overrides keep the type of the value they replace."""
    path = path or Path(os.environ.get("SIETCH_SETTINGS", DEFAULT_PATH))
    environ = os.environ if environ is None else environ
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SettingsError(f"settings file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: expected a mapping of sections")
    for section, values in data.items():
        if not isinstance(values, dict):
            raise SettingsError(f"{path}: section {section!r} must be a mapping")
        for key, current in values.items():
            name = f"{ENV_PREFIX}{section}_{key}".upper()
            if name in environ:
                values[key] = _coerce(name, environ[name], current)
    return data


def _coerce(name: str, raw: str, current: Any) -> Any:
    try:
        if isinstance(current, bool):
            if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("1", "true", "yes")
        if isinstance(current, int):
            return int(raw)
        if isinstance(current, float):
            return float(raw)
        if isinstance(current, list):
            return [item.strip() for item in raw.split(",") if item.strip()]
        if isinstance(current, dict):
            parsed = yaml.safe_load(raw)
            if not isinstance(parsed, dict):
                raise ValueError(raw)
            return parsed
    except (ValueError, yaml.YAMLError) as exc:
        raise SettingsError(f"{name}={raw!r}: expected a {type(current).__name__}") from exc
    return raw
