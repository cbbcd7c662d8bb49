"""Loads `config/settings.yaml` and applies `SIETCH_<SECTION>_<KEY>` environment overrides."""

from __future__ import annotations

import ipaddress
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
    if isinstance(data.get("discord"), dict):
        _check_shards(data["discord"])
    if isinstance(data.get("metrics"), dict):
        _check_metrics(data["metrics"])
    if isinstance(data.get("recalculation"), dict):
        _check_recalculation(data["recalculation"])
    return data


def is_loopback(host: str) -> bool:
    """Whether `host` can only be reached from this machine: `localhost` or a loopback address."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip()).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def _check_metrics(metrics: dict[str, Any]) -> None:
    """The migration page shows every community's routing: opened beyond this machine, it needs a token."""
    token = metrics.setdefault("page_token", "")
    metrics.setdefault("report_seconds", 10.0)
    if metrics.get("port") and not is_loopback(str(metrics.get("host", ""))) and not str(token).strip():
        raise SettingsError(
            f"metrics.host is {metrics.get('host')!r}, reachable from other machines: set metrics.page_token"
            " (SIETCH_METRICS_PAGE_TOKEN) to a long random secret, or listen on 127.0.0.1"
        )


def _check_recalculation(recalculation: dict[str, Any]) -> None:
    share = recalculation.setdefault("max_busy_share", 1.0)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
        raise SettingsError(f"recalculation.max_busy_share is {share!r}: a share of the time, above 0 and at most 1")


def _check_shards(discord: dict[str, Any]) -> None:
    """`shard_count` and `shard_ids` as whole numbers; an empty `shard_ids` means every shard (one process).

    A process that names a shard outside the count, or one twice, would receive the wrong guilds or
    none: Discord refuses an IDENTIFY whose shard is not below the count.
    """
    count = discord.setdefault("shard_count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise SettingsError(f"discord.shard_count must be a whole number of 1 or more, got {count!r}")
    raw = discord.setdefault("shard_ids", [])
    if not isinstance(raw, list):
        raise SettingsError(f"discord.shard_ids must be a list of shard numbers such as 0,1; got {raw!r}")
    ids: list[int] = []
    for item in raw:
        shard = _whole_number(item)
        if shard is None:
            raise SettingsError(f"discord.shard_ids: {item!r} is not a shard number (expected e.g. 0,1)")
        if not 0 <= shard < count:
            raise SettingsError(
                f"discord.shard_ids: shard {shard} is outside 0..{count - 1} (discord.shard_count is {count})"
            )
        if shard in ids:
            raise SettingsError(f"discord.shard_ids: shard {shard} is listed twice")
        ids.append(shard)
    discord["shard_ids"] = ids


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


def _whole_number(value: Any) -> int | None:
    # YAML gives ints, an environment override gives strings; true and 1.0 are mistakes, not shard 1.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None
